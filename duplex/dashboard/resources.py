"""CPU, memory and GPU memory of a service's processes: psutil for the processes (a native
service's process group, a container's processes as the host sees them), NVML's per-process
accounting for the GPU memory (host pids, so a container's pids map as they are)."""

from __future__ import annotations

import psutil

_procs: dict[int, psutil.Process] = {}  # kept between samples: cpu_percent needs the previous one


def group_pids(pid: int) -> list[int]:
    """The leader and all its descendants (uvicorn's reload worker, the log pump's service)."""
    try:
        leader = psutil.Process(pid)
        return [pid, *(p.pid for p in leader.children(recursive=True))]
    except psutil.Error:
        return []


def usage(pids: list[int]) -> dict:
    """{"cpu": percent of one core, summed, "memory": resident bytes, "started": epoch of the oldest}."""
    cpu, rss, started = 0.0, 0, None
    for pid in pids:
        proc = _procs.get(pid)
        try:
            if proc is None or not proc.is_running():
                proc = _procs[pid] = psutil.Process(pid)
                proc.cpu_percent(None)  # the first call only starts the measurement
            with proc.oneshot():
                cpu += proc.cpu_percent(None)
                rss += proc.memory_info().rss
                started = min(started or proc.create_time(), proc.create_time())
        except psutil.Error:
            _procs.pop(pid, None)
    for gone in set(_procs) - set(pids) - {p for p in _procs if _procs[p].is_running()}:
        _procs.pop(gone, None)
    return {"cpu": round(cpu, 1), "memory": rss, "started": started}


def gpu_processes() -> dict[int, list[dict]] | None:
    """{pid: [{"gpu": index, "name": ..., "used": bytes}]} from NVML's compute process accounting;
    None where NVML is absent or does not answer (no GPU: the page shows no GPU columns)."""
    try:
        import pynvml  # heavy: loads the NVML library; absent on hosts without the driver
        pynvml.nvmlInit()  # each sample: a driver restart or a new description is seen
    except Exception:  # noqa: BLE001 - no NVML library, no driver: no GPU figures
        return None
    found: dict[int, list[dict]] = {}
    try:
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else name
            try:
                procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
            except pynvml.NVMLError:
                continue  # this GPU cannot tell (a MIG parent, an old driver): the others still can
            for p in procs:
                found.setdefault(p.pid, []).append({"gpu": index, "name": name, "used": p.usedGpuMemory})
    except Exception:  # noqa: BLE001 - a GPU fell off the bus mid-sample: what was read stands
        pass
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass
    return found


def gpu_memory(pids: list[int], table: dict[int, list[dict]] | None) -> list[dict] | None:
    """The GPU memory the service's processes use, per GPU: [{"gpu", "name", "used"}]."""
    if table is None:
        return None
    per: dict[int, dict] = {}
    for pid in pids:
        for entry in table.get(pid, ()):
            slot = per.setdefault(entry["gpu"], {"gpu": entry["gpu"], "name": entry["name"], "used": 0})
            slot["used"] += entry["used"] or 0
    return sorted(per.values(), key=lambda e: e["gpu"])
