"""The published Compose file, run for real with Compose v2 on the local engine: health gates the
start, the CPU services answer (speech through the frontend to asr), `down -v` leaves nothing."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
import uuid

import pytest

from duplex.publish import publish, target_plan
from duplex.publish.validate import compose_command
from duplex.stack import load_stack
from tests.publish.conftest import copy_default
from tests.run.test_parity import post_file
from tests.support.net import free_port
from tests.support.speech import PHRASES, synthesize, word_error_rate
from tests.support.tools import tool

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def leftovers(project: str) -> dict[str, list[str]]:
    found = {}
    for kind in ("ps -a", "volume ls", "network ls"):
        out = subprocess.run([tool("docker"), *kind.split(), "-q", "--filter", f"label=com.docker.compose.project={project}"],
                             capture_output=True, text=True, check=True).stdout.split()
        found[kind.split()[0]] = out
    return found


def test_published_compose_file_runs_the_cpu_services(tmp_path):
    stack = load_stack(copy_default(tmp_path / "src", "pubtest"))
    # the suite's base image (tests/conftest.py: the official one via the engine's mirror, else air-gapped)
    base = {k: v for k, v in os.environ.items() if k == "DUPLEX_BASE_IMAGE"}
    report = publish(target_plan(stack, environ=base), out=tmp_path / "src" / "deploy")
    assert report.validated["compose"].startswith("docker compose 2.")
    project = f"pubtest-{uuid.uuid4().hex[:8]}"
    ports = {"asr": free_port(), "frontend": free_port()}
    env = {**os.environ, "DUPLEX_PORT_ASR": str(ports["asr"]), "DUPLEX_PORT_FRONTEND": str(ports["frontend"]),
           "DOCKER_BUILDKIT": "0"}  # the classic builder shares its layer cache with `inv run`
    compose = [*compose_command(), "-p", project, "-f", "compose.yaml", "-f", "compose.cpu.yaml"]
    cwd = tmp_path / "src" / "deploy"
    try:
        t0 = time.monotonic()
        up = subprocess.run([*compose, "up", "-d", "--wait", "--wait-timeout", "300"], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=540)
        took = time.monotonic() - t0
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        print(f"compose up --wait (build cached): {took:.1f}s")
        ps = subprocess.run([*compose, "ps", "--format", "json"], cwd=cwd, env=env, capture_output=True,
                            text=True, check=True).stdout
        rows = [json.loads(line) for line in ps.splitlines() if line.strip()]
        health = {r["Service"]: r["Health"] for r in rows}
        assert health == {"asr": "healthy", "frontend": "healthy"}  # moshi: `gpu` profile, not here
        speech = synthesize(PHRASES[0], tmp_path / "hello.wav")
        code, body = post_file(f"http://127.0.0.1:{ports['frontend']}/api/transcribe", speech)
        assert code == 200 and word_error_rate(PHRASES[0], body["text"]) <= 0.25, body
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['frontend']}/api/config", timeout=10) as resp:
            assert json.loads(resp.read())["asr_url"] == "http://asr:8000"
        user = subprocess.run([*compose, "exec", "-T", "asr", "sh", "-c", "id -u; touch /cache/huggingface/w && echo ok"],
                              cwd=cwd, env=env, capture_output=True, text=True)
        assert user.stdout.split() == ["1000", "ok"], user.stderr  # non-root, cache volume writable
        ports_seen = subprocess.run([tool("docker"), "port", f"{project}-asr-1"], capture_output=True, text=True).stdout
        assert f"127.0.0.1:{ports['asr']}" in ports_seen and "0.0.0.0" not in ports_seen
    finally:
        down = subprocess.run([*compose, "down", "-v", "--remove-orphans"], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    assert leftovers(project) == {"ps": [], "volume": [], "network": []}
