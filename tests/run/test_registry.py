"""Base images from a real registry (Debian's docker-registry on 127.0.0.1), pinned by digest, and
`inv publish --push` into it: the default `FROM python:3.11-slim-bookworm` pulled through the
engine's Docker Hub mirror, images.lock written and moved, the three ways a base image cannot come
(digest gone, registry down, no such name) as one line each with nothing built, and a pushed
Compose file that pulls its images back and runs."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest
import yaml

from duplex.publish.validate import compose_command
from tests.support.gpu_engine import GpuEngine
from tests.support.net import free_port
from tests.support.registry import AIR_GAPPED, OFFICIAL, Registry, engine_mirror, push_as
from tests.support.tools import tool

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """The test's registry, holding the air-gapped base under the official name."""
    reg = Registry(tmp_path_factory.mktemp("registry")).start()
    push_as(AIR_GAPPED, f"{reg.host}/library/{OFFICIAL}")
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def hub(registry, tmp_path_factory):
    """(environ, mirror URL) of an engine whose Docker Hub mirror serves the official image: CI's
    own engine (.ci/run), else a second engine of the test's own with `registry` as its mirror."""
    mirror = engine_mirror()
    if mirror:
        yield {}, mirror
        return
    engine = GpuEngine(tmp_path_factory.mktemp("hub-engine")).start(None, ("--registry-mirror", registry.url))
    try:  # its bridge has no NAT: builds reach PyPI from the host's network
        yield {"DOCKER_HOST": engine.host, "DUPLEX_BUILD_NETWORK": "host"}, registry.url
    finally:
        engine.stop()


def docker(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([tool("docker"), *args], capture_output=True, text=True, check=check,
                          env={**os.environ, **(env or {})}, timeout=300)


def own_stack(toy, name: str, base: str | None = None) -> None:
    toy.edit('name = "toy"', f'name = "{name}"' + (f'\nbase_image = "{base}"' if base else ""))


def test_default_base_is_pulled_through_the_mirror_and_pinned_by_digest(hub, toy):
    environ, mirror = hub
    toy.env.pop("DUPLEX_BASE_IMAGE", None)  # the default path: each env's official image
    toy.env.update(environ)
    served = Registry.at(mirror).digest("library/python", OFFICIAL.split(":")[1])
    present = docker("image", "inspect", OFFICIAL, env=environ, check=False).returncode == 0

    pre = toy.inv("preflight", "--services", "api", "--json")
    check = next(r for r in json.loads(pre.stdout) if r["name"] == "docker.image.api")
    assert check["status"] == "pass", check
    if not present:  # the registry said how much the first build pulls
        assert "the registry has it" in check["detail"] and "MB to pull" in check["detail"], check

    run = toy.inv("run", "--detach", "--services", "api", timeout=400)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    said = run.stdout + run.stderr
    assert f"{OFFICIAL}: pinned to {served}" in said
    if not present:
        assert "Pulling from library/python" in said and "base image pulled in" in said, said
    assert f'[images."{OFFICIAL}"]\ndigest = "{served}"' in (toy.root / "images.lock").read_text()
    assert toy.get("api", "/health") == {"status": "ok"}
    digests = docker("image", "inspect", "--format", "{{json .RepoDigests}}", f"python@{served}", env=environ).stdout
    assert f"python@{served}" in digests  # the engine holds it by the pinned digest

    again = toy.inv("lock", "--images")  # nothing moved: same digest, no rewrite
    assert again.returncode == 0 and "pinned to" not in again.stdout + again.stderr, again.stdout + again.stderr


def test_lock_images_moves_the_pin_when_the_tag_moves(registry, toy):
    base = f"{registry.host}/dx23/python:moving"
    first = push_as(AIR_GAPPED, base)
    own_stack(toy, "dx23lock", base)
    toy.env.pop("DUPLEX_BASE_IMAGE", None)
    assert toy.inv("lock", "--images").returncode == 0
    assert f'digest = "{first}"' in (toy.root / "images.lock").read_text()
    build = subprocess.run([tool("docker"), "build", "-q", "-t", "dx23/moved:1", "-"], check=True, text=True,
                           input=f"FROM {AIR_GAPPED}\nLABEL dx23.moved={uuid.uuid4().hex}\n", capture_output=True)
    try:
        second = push_as("dx23/moved:1", base)
    finally:
        docker("rmi", "dx23/moved:1", check=False)
    assert build.returncode == 0 and second != first
    moved = toy.inv("lock", "--images")
    assert moved.returncode == 0, moved.stderr
    assert f"pinned to {second} (was {first[:19]}…)" in moved.stdout + moved.stderr
    assert f'digest = "{second}"' in (toy.root / "images.lock").read_text()


@pytest.mark.parametrize("case", ["digest gone", "registry down", "no such image"])
def test_a_base_image_that_cannot_come_is_one_line_and_nothing_is_built(registry, toy, case):
    stack = f"dx23f{['digest gone', 'registry down', 'no such image'].index(case)}"
    toy.env.pop("DUPLEX_BASE_IMAGE", None)
    if case == "digest gone":
        base = f"{registry.host}/dx23/lost:1"
        digest = push_as(AIR_GAPPED, base)
        own_stack(toy, stack, base)
        assert toy.inv("lock", "--images").returncode == 0
        registry.delete("dx23/lost", digest)  # what a retention policy does to an old digest
        expect, fix = "the registry no longer serves the pinned digest", "`inv lock --images`"
    elif case == "registry down":
        own_stack(toy, stack, f"127.0.0.1:{free_port()}/dx23/python:3.11")
        expect, fix = "no registry answered for", "scripts/base-image.sh"
    else:
        own_stack(toy, stack, f"{registry.host}/dx23/nope:1")
        expect, fix = "does not exist in", "scripts/base-image.sh"
    run = toy.inv("run", "--detach", "--services", "api")
    assert run.returncode == 1, run.stdout + run.stderr
    lines = [line for line in run.stderr.splitlines() if expect in line]
    assert len(lines) == 1 and "docker.image.api" in lines[0], run.stderr
    assert fix in run.stderr and "Traceback" not in run.stderr
    if case != "digest gone":  # both ways out: the registry, or the air-gapped image
        assert "DUPLEX_BASE_IMAGE=duplex/python:3.11-bookworm" in run.stderr
        assert not (toy.root / "images.lock").exists()  # nothing pinned that no registry has
    assert docker("image", "inspect", f"duplex-{stack}-api:dev", check=False).returncode != 0
    assert not docker("ps", "-aq", "--filter", f"label=dev.duplex.root={toy.root}").stdout.strip()


def test_publish_push_then_compose_pulls_the_images_back_and_both_answer(registry, toy, tmp_path):
    own_stack(toy, "dx23pub")
    (toy.root / "app.py").write_text((toy.root / "app.py").read_text() + f"# {uuid.uuid4().hex}\n")  # images of its own
    prefix = f"{registry.host}/dx23"
    down = toy.inv("publish", "--registry", f"127.0.0.1:{free_port()}/dx23", "--push", "--compose",
                   "--services", "web")
    assert down.returncode == 1 and "no image registry answers" in down.stderr and "nothing was built" in down.stderr
    assert not (toy.root / "deploy").exists()

    pub = toy.inv("publish", "--registry", prefix, "--push", "--compose", "--services", "web", timeout=400)
    assert pub.returncode == 0, pub.stdout[-3000:] + pub.stderr[-3000:]
    doc = yaml.safe_load((toy.root / "deploy" / "compose.yaml").read_text())
    refs = {name: doc["services"][name]["image"] for name in ("api", "web")}
    for name, ref in refs.items():
        repo, _, digest = ref.partition("@")
        assert repo.startswith(f"{prefix}/duplex-dx23pub-{name}:") and "build" not in doc["services"][name]
        assert registry.digest(f"dx23/duplex-dx23pub-{name}", repo.rsplit(":", 1)[1]) == digest
    for name, ref in refs.items():  # nothing of them left here: compose must pull
        docker("rmi", ref.split("@")[0], f"duplex-dx23pub-{name}:dev", check=False)
        assert docker("image", "inspect", ref, check=False).returncode != 0

    project = f"dx23pub-{uuid.uuid4().hex[:6]}"
    compose = [*compose_command(), "-p", project, "-f", "compose.yaml"]
    cwd = toy.root / "deploy"
    try:
        up = subprocess.run([*compose, "up", "-d", "--wait", "--wait-timeout", "120"], cwd=cwd, env=toy.env,
                            capture_output=True, text=True, timeout=300)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        assert toy.get("api", "/health") == {"status": "ok"} and toy.get("web", "/health") == {"status": "ok"}
        assert toy.get("web", "/env")["PEER_URL"] == "http://api:18501"
        for ref in refs.values():
            assert docker("image", "inspect", ref, check=False).returncode == 0  # pulled back by digest
    finally:
        subprocess.run([*compose, "down", "-v", "--rmi", "all"], cwd=cwd, env=toy.env, capture_output=True,
                       timeout=120)
