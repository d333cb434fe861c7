"""The real Docker engine and base image that container mode stands on (CI starts both)."""

from __future__ import annotations

import os
import socket
import time
import urllib.request
from pathlib import Path

import docker
import pytest

pytestmark = pytest.mark.docker

BASE_IMAGE = os.environ.get("DUPLEX_BASE_IMAGE", "duplex/python:3.11-bookworm")
UID = 1000  # the Dockerfiles' default `duplex` user


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    # No skip: a missing engine is a broken machine, and CI (.ci/run) always starts one.
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except docker.errors.DockerException as exc:
        problem = str(exc)
    else:
        problem = None
    if problem:
        pytest.fail(f"Docker engine not reachable ({problem}); start it with `bash scripts/docker-engine.sh`",
                    pytrace=False)
    yield client
    client.close()


@pytest.fixture(scope="module")
def base_image(client: docker.DockerClient) -> str:
    try:
        client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"base image {BASE_IMAGE} is missing; build it with `bash scripts/base-image.sh`",
                    pytrace=False)
    return BASE_IMAGE


def test_engine_answers_through_the_sdk(client: docker.DockerClient) -> None:
    assert client.ping() is True
    info = client.info()
    assert info["Driver"] == "overlay2"
    # The SDK negotiates down to the engine's API (Debian's 20.10 engine speaks 1.41).
    assert tuple(int(p) for p in client.version()["ApiVersion"].split(".")) >= (1, 41)


def test_base_image_runs_python_311_as_non_root(client: docker.DockerClient, base_image: str) -> None:
    out = client.containers.run(
        base_image, ["python3", "-c", "import os, sys, ssl, venv; print(os.getuid(), os.getgid(), *sys.version_info[:2])"],
        user=f"{UID}:{UID}", remove=True)
    assert out.decode().split() == [str(UID), str(UID), "3", "11"]
    # What the Dockerfiles rely on: useradd (passwd), a venv with pip, the CA store.
    out = client.containers.run(
        base_image, ["sh", "-c", "command -v useradd && python3 -m venv --without-pip /tmp/v "
                                 "&& python3 -c 'import ensurepip; print(ensurepip.version())' "
                                 "&& test -s /etc/ssl/certs/ca-certificates.crt && echo ok"],
        remove=True)
    assert out.decode().strip().endswith("ok")


def test_bind_mount_owned_by_the_user_is_readable(client: docker.DockerClient, base_image: str,
                                                  tmp_path: Path) -> None:
    # Like the shared HF cache: private to its owner (0700/0600), mounted read-only.
    cache = tmp_path / "huggingface"
    (cache / "hub").mkdir(parents=True)
    (cache / "hub" / "model.bin").write_text("weights\n")
    for path in (cache, cache / "hub", cache / "hub" / "model.bin"):
        path.chmod(0o700 if path.is_dir() else 0o600)
        if os.getuid() == 0:
            os.chown(path, UID, UID)
    mounts = {str(cache): {"bind": "/cache/huggingface", "mode": "ro"}}
    out = client.containers.run(base_image, ["cat", "/cache/huggingface/hub/model.bin"],
                                user=f"{os.getuid() or UID}", volumes=mounts, remove=True)
    assert out.decode() == "weights\n"


def test_published_port_on_loopback(client: docker.DockerClient, base_image: str) -> None:
    with socket.socket() as s:  # a free host port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    container = client.containers.run(base_image, ["python3", "-m", "http.server", "8000"], detach=True,
                                      user=f"{UID}:{UID}", ports={"8000/tcp": ("127.0.0.1", port)})
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                    assert resp.status == 200
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        container.remove(force=True)
