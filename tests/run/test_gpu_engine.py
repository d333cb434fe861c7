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


@pytest.fixture(scope="module")
def gpu_engine(tmp_path_factory):
    engine = GpuEngine(tmp_path_factory.mktemp("gpu-engine"))
    try:
        yield engine.start(BASE)
    finally:
        engine.stop()


def test_inv_run_requests_the_placed_gpu_from_the_engines_nvidia_driver(gpu_engine, fake_nvml, tmp_path):
    port = free_port()
    (tmp_path / "server.py").write_text(SERVER)
    (tmp_path / "gpu.Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "stack.toml").write_text(textwrap.dedent(f"""
        [stack]
        name = "gpuhost"
        base_image = "{BASE}"
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
