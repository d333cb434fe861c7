"""The GPU model's one reader, NVML (nvidia-ml-py, imported as pynvml).

`probe_nvml_facts` turns whatever NVML says — or how it fails — into the plain data of
`duplex.machine` (`NvmlFacts`, `GpuInfo`) that checks, planning and the torch choice read; tests hand
in recorded facts or load a stand-in NVML library (tests/support/fakenvml.py) instead.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .machine import GpuInfo, NvmlFacts

NVIDIA_PCI_VENDOR = "0x10de"


def nvidia_pci_devices(sysfs: str | os.PathLike = "/sys") -> int:
    """NVIDIA display controllers (PCI class 0x03xxxx) the kernel sees, driver or not."""
    count = 0
    for dev in Path(sysfs, "bus", "pci", "devices").glob("*"):
        try:
            vendor = (dev / "vendor").read_text().strip()
            klass = (dev / "class").read_text().strip()
        except OSError:
            continue
        if vendor == NVIDIA_PCI_VENDOR and klass.startswith("0x03"):
            count += 1
    return count


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def probe_nvml_facts(environ: dict[str, str] | None = None, *, nvml=None,
                     sysfs: str | os.PathLike = "/sys") -> NvmlFacts:
    """Ask NVML once; every failure becomes data (error_code + NVML's message), never an exception.
    A failing call on one GPU (memory info is NOT_SUPPORTED on some unified-memory parts) is noted
    on that GPU and the probe goes on; only init, the driver version and the device count are fatal."""
    environ = dict(os.environ if environ is None else environ)
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    pci = nvidia_pci_devices(sysfs)
    if nvml is None:
        try:
            import pynvml as nvml  # heavy: loads the NVML library; only a probe needs it
        except ImportError as exc:
            return NvmlFacts(error=f"nvidia-ml-py is not installed ({exc})", nvidia_pci_devices=pci, visible=visible)
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        return NvmlFacts(error_code=getattr(exc, "value", None), error=str(exc), nvidia_pci_devices=pci,
                         visible=visible)
    notes: list[str] = []
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        cuda = nvml.nvmlSystemGetCudaDriverVersion_v2()
        devices = [d for index in range(nvml.nvmlDeviceGetCount()) for d in _devices(nvml, index, notes)]
    except nvml.NVMLError as exc:
        return NvmlFacts(error_code=getattr(exc, "value", None), error=str(exc), nvidia_pci_devices=pci,
                         visible=visible)
    finally:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError:
            pass
    ordered = cuda_order(devices, environ.get("CUDA_DEVICE_ORDER"))
    seen = cuda_visible(ordered, visible)
    return NvmlFacts(driver, cuda, tuple(seen), nvidia_pci_devices=pci, visible=visible,
                     hidden=len(ordered) - len(seen), notes=tuple(notes))


def _devices(nvml, index: int, notes: list[str]) -> list[GpuInfo]:
    """GPU `index` as CUDA devices: itself, or its MIG instances when MIG mode is on."""
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
    except nvml.NVMLError as exc:
        notes.append(f"GPU {index}: left out, NVML cannot open it ({exc})")
        return []
    gpu = _device(nvml, handle, index, None)
    try:
        mig_on = nvml.nvmlDeviceGetMigMode(handle)[0] == 1
    except nvml.NVMLError:  # NOT_SUPPORTED (no MIG on this GPU) or an old driver without the call
        mig_on = False
    if not mig_on:
        if gpu.problem:
            notes.append(f"{gpu.label} ({gpu.name}): {gpu.problem}")
        return [gpu]
    instances = []
    try:
        slots = nvml.nvmlDeviceGetMaxMigDeviceCount(handle)
    except nvml.NVMLError as exc:
        notes.append(f"GPU {index} ({gpu.name}): MIG mode is on but its instances cannot be listed ({exc})")
        return []
    for slot in range(slots):
        try:
            child = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except nvml.NVMLError:  # NOT_FOUND: an empty slot
            continue
        instance = _device(nvml, child, index, slot, parent=gpu)
        if instance.problem:
            notes.append(f"{instance.label} ({instance.name}): {instance.problem}")
        instances.append(instance)
    if not instances:
        notes.append(f"GPU {index} ({gpu.name}) is in MIG mode with no MIG instances: CUDA cannot use it "
                     "until instances are created (`sudo nvidia-smi mig -cgi ... -C`) or MIG is turned off "
                     f"(`sudo nvidia-smi -i {index} -mig 0`)")
    return instances


def _device(nvml, handle, index: int, mig: int | None, parent: GpuInfo | None = None) -> GpuInfo:
    problems = []

    def ask(what: str, call, fallback):
        try:
            return call(handle)
        except nvml.NVMLError as exc:
            problems.append(f"{what}: {exc}")
            return fallback
    name = _text(ask("name", nvml.nvmlDeviceGetName, parent.name if parent else f"GPU {index}"))
    capability = tuple(ask("compute capability", nvml.nvmlDeviceGetCudaComputeCapability,
                           parent.capability if parent else (0, 0)))
    uuid = ask("UUID", nvml.nvmlDeviceGetUUID, None)
    memory = ask("memory info", nvml.nvmlDeviceGetMemoryInfo, None)
    total, free = (int(memory.total), int(memory.free)) if memory is not None else (None, None)
    return GpuInfo(index, name, capability, total, free, _text(uuid) if uuid else None, mig,
                   "; ".join(problems) or None)


def cuda_order(devices: list[GpuInfo], order: str | None) -> list[GpuInfo]:
    """The order CUDA numbers devices in. NVML lists GPUs by PCI bus id, which is CUDA's order with
    CUDA_DEVICE_ORDER=PCI_BUS_ID. CUDA's default, FASTEST_FIRST, is an undocumented heuristic: here
    the newest compute capability first, then the most memory, ties (identical GPUs) in PCI order;
    on a mixed host that is an approximation, which is why duplex hands services UUIDs, never indices."""
    if (order or "").strip().upper() == "PCI_BUS_ID":
        return list(devices)
    return sorted(devices, key=lambda g: (-g.sm, -(g.memory_total or 0)))


def cuda_visible(devices: list[GpuInfo], visible: str | None) -> list[GpuInfo]:
    """CUDA_VISIBLE_DEVICES as CUDA reads it: indices into CUDA's order, GPU-/MIG- UUIDs (a unique
    prefix is enough), in the order given; the first entry that names no device (-1, an index out of
    range, an unknown or ambiguous UUID) ends the list. Unset: every device; empty: none."""
    if visible is None:
        return list(devices)
    out: list[GpuInfo] = []
    for token in (t.strip() for t in visible.split(",")):
        if re.fullmatch(r"[+-]?\d+", token):
            number = int(token)
            found = [devices[number]] if 0 <= number < len(devices) else []
        elif token.startswith(("GPU-", "MIG-")):
            found = [d for d in devices if d.uuid and d.uuid.startswith(token)]
        else:
            found = []
        if len(found) != 1:
            break
        if found[0] not in out:
            out.append(found[0])
    return out


def gpu_count() -> int:
    """Number of GPUs NVML sees; 0 when the library or driver is absent."""
    return len(probe_nvml_facts().gpus)
