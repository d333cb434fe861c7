"""docker: the real engine, a DOCKER_HOST pointing nowhere, GPU runtime presence, base images."""

from __future__ import annotations

import os
import socket
import time

import pytest

from checks import docker
from duplex import engine

from .conftest import by_name, make

pytestmark = pytest.mark.docker
# The suite's base image (tests/conftest.py): the official one via the engine's mirror, else the air-gapped one.
BASE = os.environ.get("DUPLEX_BASE_IMAGE", "python:3.11-slim-bookworm")


def engine_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k.startswith("DOCKER_") or k == "DUPLEX_BASE_IMAGE"}
    env.update(extra)
    return env


def test_the_running_engine_answers_and_the_base_image_is_there(tmp_path):
    _, _, ctx = make(tmp_path, environ=engine_env())
    facts = engine.probe_docker(ctx.environ, engine.wanted_images(ctx.plan), "pf")
    assert facts.reachable and facts.version and "runc" in facts.runtimes
    assert facts.images == {BASE: True}
    results = by_name(docker.check(ctx, facts, host_gpus=0))
    assert results["docker.engine"].status == "pass" and facts.version in results["docker.engine"].detail
    assert results["docker.image.api"].status == "pass" and BASE in results["docker.image.api"].detail


def test_docker_host_pointing_nowhere_fails_fast_with_a_fix(tmp_path, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for host in (f"tcp://127.0.0.1:{port}", f"unix://{tmp_path}/no.sock"):
        monkeypatch.setenv("DOCKER_HOST", host)
        _, _, ctx = make(tmp_path / port.__str__(), environ={"DOCKER_HOST": host})
        started = time.perf_counter()
        facts = engine.probe_docker(ctx.environ, [BASE], "pf", timeout=2)
        assert time.perf_counter() - started < 3
        assert not facts.reachable and host in facts.error
        result = docker.check(ctx, facts, host_gpus=0)[0]
        assert result.name == "docker.engine" and result.status == "fail"
        assert "DOCKER_HOST" in result.fix and "--native" in result.fix


def test_missing_base_image_is_named_with_the_script_that_builds_it(tmp_path):
    _, _, ctx = make(tmp_path, environ={**engine_env(), "DUPLEX_BASE_IMAGE": "duplex/nothing:0"})
    assert engine.wanted_images(ctx.plan) == ["duplex/nothing:0"]
    facts = engine.probe_docker(ctx.environ, engine.wanted_images(ctx.plan), "pf")
    result = by_name(docker.check(ctx, facts, 0))["docker.image.api"]
    assert result.status in ("warn", "fail") and "duplex/nothing:0" in result.detail
    assert "scripts/base-image.sh" in result.fix and "DUPLEX_BASE_IMAGE" in result.fix
    _, _, run_ctx = make(tmp_path / "r", environ={**engine_env(), "DUPLEX_BASE_IMAGE": "duplex/nothing:0"},
                         for_run=True)
    assert by_name(docker.check(run_ctx, facts, 0))["docker.image.api"].status == "fail"


def test_gpu_container_without_nvidia_runtime_names_the_error_users_would_meet(tmp_path):
    _, _, ctx = make(tmp_path, environ=engine_env(), services=["api", "voice"], api_gpu="optional",
                     voice_gpu="required")
    facts = engine.probe_docker(ctx.environ, engine.wanted_images(ctx.plan), "pf")
    assert "nvidia" not in facts.runtimes and not facts.gpu_hook  # this engine has no NVIDIA toolkit
    results = by_name(docker.check(ctx, facts, host_gpus=1))
    voice = results["docker.gpu.voice"]
    assert voice.status == "fail" and 'could not select device driver "" with capabilities: [[gpu]]' in voice.detail
    assert "nvidia-ctk runtime configure" in voice.fix and "cdi generate" in voice.fix
    assert results["docker.gpu.api"].status == "warn"
    with_runtime = engine.DockerFacts(True, "unix:///x", version="27", runtimes=("runc", "nvidia"), images={BASE: True})
    assert by_name(docker.check(ctx, with_runtime, 1))["docker.gpu.voice"].status == "pass"
    with_cdi = engine.DockerFacts(True, "unix:///x", version="27", cdi_nvidia=True, images={BASE: True})
    assert "CDI" in by_name(docker.check(ctx, with_cdi, 1))["docker.gpu.voice"].detail


def test_cdi_spec_files_are_read(tmp_path):
    (tmp_path / "nvidia.yaml").write_text("cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: \"0\"\n")
    assert engine._cdi([str(tmp_path)]) and not engine._cdi([str(tmp_path / "none")])


def test_native_mode_without_containers_skips_docker(tmp_path):
    _, _, ctx = make(tmp_path, native=True, services=["api"])
    assert docker.check(ctx, None, 0)[0].status == "skip"


def test_a_prebuilt_image_that_runs_as_root_is_named(tmp_path):
    """duplex's Dockerfiles run as the host's UID; an `image =` runs as its own USER: root warns."""
    import io

    import docker as sdk
    client = sdk.from_env()
    user_image = "duplex-test/as-user:1"
    client.images.build(fileobj=io.BytesIO(f"FROM {BASE}\nUSER 1000:1000\n".encode()), tag=user_image, rm=True)
    text = """
    [stack]
    name = "pf"

    [services.root]
    image = "{root}"
    command = ["sleep", "60"]
    modes = ["container"]
    port = 18450

    [services.user]
    image = "{user}"
    command = ["sleep", "60"]
    modes = ["container"]
    port = 18451
    """.replace("{root}", BASE).replace("{user}", user_image)
    try:
        _, _, ctx = make(tmp_path, environ=engine_env(), text=text)
        facts = engine.probe_docker(ctx.environ, engine.wanted_images(ctx.plan), "pf")
        assert facts.image_users == {BASE: "", user_image: "1000:1000"}
        results = by_name(docker.check(ctx, facts, host_gpus=0))
        root, user = results["docker.image.root"], results["docker.image.user"]
        assert root.status == "warn" and "runs as root" in root.detail and "USER 1000" in root.fix
        assert user.status == "pass" and "1000:1000" in user.detail
    finally:
        client.images.remove(user_image, force=True)
        client.close()
