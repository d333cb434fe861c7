"""tls = true: the plan switches every scheme, and a real `inv run --native --tls` serves verified https."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from duplex.asr_stream import read_pcm, stream_pcm
from duplex.machine import Machine
from duplex.plan import CERTS_IN_CONTAINER, plan
from duplex.run.smoke_apps import SAMPLE
from duplex.stack import load_stack
from tests.conftest import ROOT
from tests.support.net import free_port
from tests.support.stackcopy import copy_stack

GPU_BOX = Machine(gpu_count=1, nvidia_runtime=True, hf_home="/data/hf")


def test_tls_plan_switches_schemes_commands_and_mounts_in_both_modes():
    stack = load_stack(ROOT / "stack.toml")
    certs = f"{stack.root}/.duplex/certs/{stack.name}"
    native = plan(stack, GPU_BOX, native=True, tls=True)
    front, asr, moshi = (native.services[n] for n in ("frontend", "asr", "moshi"))
    assert front.url.startswith("https://") and front.health.url.startswith("https://")
    assert front.health.ca == f"{certs}/bundle.pem"
    assert front.environment["services__asr__https__0"].startswith("https://127.0.0.1:")
    assert "services__asr__http__0" not in front.environment
    assert front.environment["ASR_URL"].startswith("https://")
    assert front.environment["MOSHI_WS_URL"].startswith("wss://")  # moshi serves TLS too
    assert front.environment["SSL_CERT_FILE"] == f"{certs}/bundle.pem"
    assert front.command[front.command.index("--ssl-certfile") + 1] == f"{certs}/cert.pem"
    # asr opts into warm reload, which has no TLS yet: it restarts instead, and the plan says so.
    assert asr.command[:4] == ["python", "-m", "uvicorn", "servers.asr.app:app"]
    assert any("asr: warm reload does not serve TLS" in w for w in native.warnings)
    # moshi (a container): `--ssl DIR` with the folder mounted read-only where the container sees it.
    assert moshi.command[-2:] == ["--ssl", CERTS_IN_CONTAINER]
    assert moshi.health.url.startswith("wss://")
    assert any(m.source == certs and m.target == CERTS_IN_CONTAINER and m.read_only for m in moshi.mounts)
    plain = plan(stack, GPU_BOX, native=True)
    assert plain.services["frontend"].environment["MOSHI_WS_URL"].startswith("ws://")
    assert "--ssl" not in plain.services["moshi"].command
    assert not any("does not serve TLS" in w for w in plain.warnings)


def _inv(root: Path, env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args], cwd=root,
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_inv_run_tls_serves_verified_https_and_the_frontend_reaches_asr_over_it(tmp_path):
    root = copy_stack(tmp_path / "stack", "tlsrun")
    ports = {"asr": free_port(), "frontend": free_port()}
    env = {**os.environ, "DUPLEX_STACK": str(root / "stack.toml"),
           **{f"DUPLEX_PORT_{n.upper()}": str(p) for n, p in ports.items()}}
    refused = _inv(root, env, "run", "--native", "--tls", "--detach", "--skip-preflight")
    assert refused.returncode == 1 and "run `inv certs` first" in refused.stderr
    made = _inv(root, env, "certs", "--json")
    assert made.returncode == 0, made.stderr
    ca = json.loads(made.stdout)["ca"]
    try:
        up = _inv(root, env, "run", "--native", "--tls", "--detach", "--skip-preflight")
        assert up.returncode == 0, up.stdout + up.stderr
        context = ssl.create_default_context(cafile=ca)  # only the local CA: proves the chain
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
                "Content-Type: audio/wav\r\n\r\n").encode() + SAMPLE.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(f"https://localhost:{ports['frontend']}/api/transcribe", data=body,
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(request, context=context, timeout=60) as resp:
            answer = json.loads(resp.read())
        assert "hello" in answer["text"]  # frontend -> asr over https, verified with SSL_CERT_FILE
        # live transcription as a remote browser does it: wss to the frontend, relayed over wss to asr
        pcm, rate = read_pcm(SAMPLE)
        run = asyncio.run(stream_pcm(f"wss://localhost:{ports['frontend']}/api/stream", pcm, rate,
                                     ssl_context=context, realtime=False))
        assert run.close_code == 1000 and "hello" in run.text, (run.close_code, run.close_reason, run.events)
        status = _inv(root, env, "status", "--json")
        rows = json.loads(status.stdout)
        rows = rows if isinstance(rows, list) else rows.get("services", rows)
        assert {r["name"]: r["healthy"] for r in rows} == {"asr": True, "frontend": True}
    finally:
        _inv(root, env, "stop", "--all", timeout=120)


@pytest.mark.docker
def test_inv_run_tls_in_a_container_serves_verified_https(tmp_path):
    """Container mode: the cert folder is mounted at /certs and readable by the image's non-root user."""
    root = copy_stack(tmp_path / "stack", "tlsbox")
    port = free_port()
    env = {**os.environ, "DUPLEX_STACK": str(root / "stack.toml"), "DUPLEX_PORT_ASR": str(port)}
    made = _inv(root, env, "certs", "--json")
    assert made.returncode == 0, made.stderr
    ca = json.loads(made.stdout)["ca"]
    key = root / ".duplex" / "certs" / "tlsbox" / "key.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    try:
        up = _inv(root, env, "run", "--tls", "--services", "asr", "--detach", "--skip-preflight", timeout=900)
        assert up.returncode == 0, up.stdout + up.stderr
        context = ssl.create_default_context(cafile=ca)
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/health", context=context, timeout=10) as resp:
            assert json.loads(resp.read())["backend"] == "pocketsphinx"
    finally:
        _inv(root, env, "stop", "--all", timeout=120)
    assert key.stat().st_mode & 0o777 == 0o600  # the host's own key is left as it was
