"""A second Docker engine of the test's own that believes it has NVIDIA GPUs.

dockerd registers its NVIDIA device driver (what `--gpus` / DeviceRequest(capabilities=[["gpu"]])
select) when `nvidia-container-runtime-hook` is on its PATH at start; when a container asks for GPUs,
the engine writes NVIDIA_VISIBLE_DEVICES (the requested device ids, or "all") into the container's
OCI spec and adds the hook as a prestart hook, which runc runs. The stand-in hook here records what
it was handed (the hook's arguments and the container's NVIDIA_* variables) and lets the container
start: the real engine, the real request, the real hook call; no GPU.

The engine has its own data root, exec root, pid file and socket, and a default bridge of its own
that the fixture creates (`--bridge=dxgpuNNNN`). Not `--bridge=none`: a dockerd started with it
deletes the host's `docker0` (moby's removeDefaultBridgeInterface), the shared engine's bridge, and
every later container start there fails with "could not find bridge docker0". It is stopped
(SIGTERM, then SIGKILL) and its bridge deleted when the fixture ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.support.tools import tool

HOOK = """#!/usr/bin/python3
import json, sys
state = json.load(sys.stdin)
with open(state["bundle"] + "/config.json") as f:
    spec = json.load(f)
env = [e for e in spec.get("process", {}).get("env", []) if e.startswith("NVIDIA_")]
with open(%r, "a") as out:
    out.write(json.dumps({"args": sys.argv[1:], "id": state.get("id"), "env": env}) + "\\n")
"""


class GpuEngine:
    def __init__(self, folder: Path):
        self.folder = folder
        self.bin = folder / "bin"
        self.log = folder / "hook.log"
        self.sock = Path(f"/tmp/duplex-gpu-{os.getpid()}.sock")
        self.host = f"unix://{self.sock}"
        self.bridge = f"dxgpu{os.getpid() % 10000}"  # an interface name: 15 characters at most
        self.proc: subprocess.Popen | None = None

    def start(self, base_image: str | None, extra: tuple[str, ...] = ()) -> "GpuEngine":
        """`base_image`: copied in from the shared engine (None: none); `extra`: more dockerd
        flags (tests/support/registry.py adds --registry-mirror)."""
        self.bin.mkdir(parents=True, exist_ok=True)
        hook = self.bin / "nvidia-container-runtime-hook"
        hook.write_text(HOOK % str(self.log))
        hook.chmod(0o755)
        self.log.write_text("")
        env = {**os.environ, "PATH": f"{self.bin}:/usr/sbin:/usr/bin:/sbin:/bin"}
        exec_root = self.exec_root = Path(f"/tmp/dxgpu-{os.getpid()}")
        ip = tool("ip")
        subprocess.run([ip, "link", "add", self.bridge, "type", "bridge"], check=True)
        subprocess.run([ip, "addr", "add", f"10.213.{os.getpid() % 250}.1/24", "dev", self.bridge], check=True)
        subprocess.run([ip, "link", "set", self.bridge, "up"], check=True)
        self.proc = subprocess.Popen(
            [tool("dockerd"), "--data-root", str(self.folder / "data"), "--exec-root", str(exec_root),
             "--pidfile", str(self.folder / "dockerd.pid"), "--host", self.host, f"--bridge={self.bridge}",
             "--iptables=false", "--ip-masq=false", *extra],
            env=env, stdout=open(self.folder / "dockerd.log", "w"), stderr=subprocess.STDOUT,
            start_new_session=True)
        import docker
        deadline = time.monotonic() + 60
        while True:
            try:
                docker.DockerClient(base_url=self.host, timeout=5).ping()
                break
            except Exception as err:  # noqa: BLE001 - not up yet
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the test's dockerd did not start:\n"
                                       + (self.folder / "dockerd.log").read_text()[-3000:]) from err
                time.sleep(0.3)
        if base_image is None:
            return self
        save = subprocess.Popen([tool("docker"), "save", base_image], stdout=subprocess.PIPE)
        subprocess.run([tool("docker"), "load"], stdin=save.stdout, env={**os.environ, "DOCKER_HOST": self.host},
                       check=True, capture_output=True)
        save.wait()
        return self

    def hook_calls(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def stop(self) -> None:
        if self.proc is None:
            subprocess.run([tool("ip"), "link", "delete", self.bridge], check=False, capture_output=True)
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        # dockerd leaves its default network namespace mounted under the exec root: unmount it first
        subprocess.run([tool("umount"), "-l", str(self.exec_root / "netns" / "default")], check=False,
                       capture_output=True)
        subprocess.run(["rm", "-rf", str(self.folder / "data"), str(self.exec_root)], check=False)
        subprocess.run([tool("ip"), "link", "delete", self.bridge], check=False, capture_output=True)
        self.sock.unlink(missing_ok=True)
