"""The smoke row for the engine's GPUs: `nvidia-smi` in a throwaway container, asked for the GPUs the
way the container runner asks this engine."""

from __future__ import annotations

import time
from typing import Callable

from ..engine import connect
from ..errors import EngineError
from .containers import device_request
from .smoke_results import SmokeResult


def gpu_check(nvidia_runtime: bool, image: str, connect: Callable | None = None,
              timeout: float = 60.0, form: str = "nvidia") -> Callable[[], SmokeResult]:
    """`nvidia-smi` in a container given every GPU, asked the way the runner asks this engine
    (`form`: the machine's gpu_request, "nvidia" or "cdi"); the NVIDIA runtime, or the CDI spec,
    mounts the tool in."""
    def run() -> SmokeResult:
        started = time.monotonic()

        def result(status: str, reason: str, detail: dict | None = None) -> SmokeResult:
            return SmokeResult("gpu", "nvidia-smi", status, round(time.monotonic() - started, 3), reason,
                               detail or {})
        if not nvidia_runtime:
            return result("skip", "no NVIDIA container runtime here (no GPU seen by NVML, or Docker "
                                  "without nvidia-container-toolkit): nothing to hand a GPU to")
        try:
            from docker.errors import DockerException  # heavy: docker loads only for the GPU check
            client = (connect or _default_connect)()
            out = _run_removed(client, image, device_request(form), timeout)
        except EngineError as exc:
            return result("fail", str(exc))
        except DockerException as exc:
            return result("fail", f"nvidia-smi in {image} failed: {str(exc)[:300]}")
        gpus = [line.strip() for line in out.decode("utf-8", "replace").splitlines() if line.strip()]
        return result("pass", f"{len(gpus)} GPU(s) in a container from {image}: " + "; ".join(gpus),
                      {"gpus": gpus, "image": image})
    return run


def _run_removed(client, image: str, request, timeout: float) -> bytes:
    """Create, start, wait, read, and always remove: `containers.run(remove=True)` keeps the container
    when the engine refuses the start (an unknown device driver), one more with every smoke."""
    from docker.errors import ContainerError  # heavy: docker loads only for the GPU check
    container = client.containers.create(
        image, ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
        device_requests=[request], environment={"NVIDIA_DRIVER_CAPABILITIES": "compute,utility"})
    try:
        container.start()
        code = (container.wait(timeout=timeout) or {}).get("StatusCode")
        out = container.logs(stdout=True, stderr=True)
        if code != 0:
            raise ContainerError(container, code, "nvidia-smi", image, out.decode("utf-8", "replace")[-300:])
        return out
    finally:
        try:
            container.remove(force=True)
        except Exception:  # noqa: BLE001 - the row says what failed; a leftover is the engine's to report
            pass


def _default_connect():
    return connect()
