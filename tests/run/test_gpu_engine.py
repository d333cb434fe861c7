"""A real `inv run` asks a real Docker engine for the GPU that placement chose, and the engine hands
the request to NVIDIA's runtime hook: the engine is a second dockerd of this test's own with a
stand-in hook on its PATH (tests/support/gpu_engine.py), NVML the stand-in library serving "two L40S,
GPU 0 busy". What the engine recorded (the device request) and what the hook was given
(NVIDIA_VISIBLE_DEVICES) are read back."""

from __future__ import annotations

import json
import os
import textwrap

import pytest

from tests.conftest import run_inv
from tests.support import fakenvml
from tests.support.gpu_engine import GpuEngine
from tests.support.net import free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow]
BASE = "duplex/python:3.11-bookworm"

SERVER = """
import http.server, json, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({k: v for k, v in os.environ.items() if k.startswith(("NVIDIA_", "CUDA_"))}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), H).serve_forever()
"""
DOCKERFILE = """
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY server.py /app/server.py
CMD ["python3", "/app/server.py"]
"""


def _gpu_stack(tmp_path, name: str, base: str) -> int:
    """A one-service stack in `tmp_path` whose `voice` needs a GPU, in a container; its port."""
    port = free_port()
    (tmp_path / "server.py").write_text(SERVER)
    (tmp_path / "gpu.Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "stack.toml").write_text(textwrap.dedent(f"""
        [stack]
        name = "{name}"
        base_image = "{base}"
        [envs.tiny]
        [services.voice]
        env = "tiny"
        command = ["python3", "/app/server.py"]
        port = {port}
        health = "/health"
        modes = ["container"]
        dockerfile = "gpu.Dockerfile"
        gpu = "required"
        start_timeout = 60
        [services.voice.environment]
        PORT = "{port}"
        """))
    return port


@pytest.fixture(scope="module")
def gpu_engine(tmp_path_factory):
    engine = GpuEngine(tmp_path_factory.mktemp("gpu-engine"))
    try:
        yield engine.start(BASE)
    finally:
        engine.stop()


def test_inv_run_requests_the_placed_gpu_from_the_engines_nvidia_driver(gpu_engine, fake_nvml, tmp_path):
    port = _gpu_stack(tmp_path, "gpuhost", BASE)
    env = {"DUPLEX_STACK": str(tmp_path / "stack.toml"), "DOCKER_HOST": gpu_engine.host,
           "PATH": f"{gpu_engine.bin}:{os.environ['PATH']}",  # the hook beside the engine, as the toolkit installs it
           **fakenvml.host_env(fake_nvml, "two_l40s_one_busy", tmp_path)}
    config = run_inv("config", "--json", env=env, cwd=tmp_path)
    voice = json.loads(config.stdout)["services"][0]
    assert voice["gpu"] and voice["gpu_devices"] == ["1"] and voice["gpu_request"] == "nvidia", config.stderr
    try:
        proc = run_inv("run", "--detach", env=env, cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        import docker
        client = docker.DockerClient(base_url=gpu_engine.host)
        container = client.containers.get("duplex-gpuhost-voice")
        requests = container.attrs["HostConfig"]["DeviceRequests"]
        assert requests == [{"Driver": "", "Count": 0, "DeviceIDs": ["1"], "Capabilities": [["gpu"]],
                             "Options": {}}]
        calls = gpu_engine.hook_calls()
        assert calls and calls[-1]["args"] == ["prestart"]
        assert "NVIDIA_VISIBLE_DEVICES=1" in calls[-1]["env"]  # what the engine's NVIDIA driver handed the hook
        import urllib.request
        seen = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read())
        assert seen.get("NVIDIA_VISIBLE_DEVICES") == "1"  # inside the container: the GPU placement gave it
    finally:
        run_inv("stop", "--all", env=env, cwd=tmp_path)


SMI = """#!/bin/sh
# what nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader prints, for the GPUs it was given
echo "NVIDIA L40S, 550.54.15, 46068 MiB ($NVIDIA_VISIBLE_DEVICES)"
"""


def test_inv_smoke_asks_the_engine_for_the_gpu_as_the_runner_does(gpu_engine, fake_nvml, tmp_path):
    """`inv smoke`'s GPU row goes through the same request as the services (containers.device_request):
    the engine's NVIDIA driver here, every GPU, handed to the hook; the image's stand-in nvidia-smi
    answers with what it was given, and the row's container is gone afterwards."""
    import docker
    client = docker.DockerClient(base_url=gpu_engine.host)
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "nvidia-smi").write_text(SMI)
    (tmp_path / "img" / "Dockerfile").write_text(f"FROM {BASE}\nCOPY nvidia-smi /usr/local/bin/nvidia-smi\n"
                                                 "RUN chmod 755 /usr/local/bin/nvidia-smi\n")
    client.images.build(path=str(tmp_path / "img"), tag="duplex-test/smi:1", rm=True)
    _gpu_stack(tmp_path, "gpusmoke", "duplex-test/smi:1")
    env = {"DUPLEX_STACK": str(tmp_path / "stack.toml"), "DOCKER_HOST": gpu_engine.host,
           "PATH": f"{gpu_engine.bin}:{os.environ['PATH']}",
           **fakenvml.host_env(fake_nvml, "two_l40s_one_busy", tmp_path)}
    try:
        proc = run_inv("run", "--detach", env=env, cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        before = len(gpu_engine.hook_calls())
        smoke = run_inv("smoke", "--services", "gpu", "--json", env=env, cwd=tmp_path, timeout=120)
        assert smoke.returncode == 0, smoke.stdout + smoke.stderr
        (row,) = json.loads(smoke.stdout)["results"]
        assert row["name"] == "gpu" and row["status"] == "pass", row
        assert "NVIDIA L40S, 550.54.15, 46068 MiB (all)" in row["reason"]
        assert "NVIDIA_VISIBLE_DEVICES=all" in gpu_engine.hook_calls()[before]["env"]
        assert [c for c in client.containers.list(all=True) if c.image.tags == ["duplex-test/smi:1"]] == []
    finally:
        run_inv("stop", "--all", env=env, cwd=tmp_path)
