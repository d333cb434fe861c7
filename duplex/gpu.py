"""The GPU model and its one reader, NVML (nvidia-ml-py, imported as pynvml).

`probe_nvml_facts` turns whatever NVML says — or how it fails — into plain data (`NvmlFacts`) that
checks, planning and the torch choice read; recorded facts (tests/checks/fixtures) stand in for a
GPU machine.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

NVIDIA_PCI_VENDOR = "0x10de"
GIB = 1024 ** 3


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    capability: tuple[int, int]  # (9, 0) for an H100
    memory_total: int = 0  # bytes
    memory_free: int = 0  # bytes

    @property
    def sm(self) -> int:
        return self.capability[0] * 10 + self.capability[1]


@dataclass(frozen=True)
class NvmlFacts:
    """What NVML said: driver, CUDA driver version (12040 = 12.4), visible GPUs; or why it could not."""

    driver_version: str | None = None
    cuda_driver: int | None = None
    gpus: tuple[GpuInfo, ...] = ()
    error_code: int | None = None  # pynvml.NVML_ERROR_* (12 = library not found, 18 = version mismatch)
    error: str | None = None  # NVML's own words, or why pynvml could not be used
    nvidia_pci_devices: int = 0  # NVIDIA display/3D controllers the kernel lists in /sys
    visible: str | None = None  # CUDA_VISIBLE_DEVICES as it was

    @property
    def ok(self) -> bool:
        return self.error is None and self.error_code is None

    @property
    def cuda_text(self) -> str:
        value = self.cuda_driver
        return f"{value // 1000}.{value % 1000 // 10}" if value else "unknown"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "NvmlFacts":
        gpus = tuple(GpuInfo(**{**g, "capability": tuple(g["capability"])}) for g in data.get("gpus", ()))
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}  # "_recorded" notes and such
        return cls(**{**known, "gpus": gpus})


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
    """Ask NVML once; every failure becomes data (error_code + NVML's message), never an exception."""
    environ = dict(os.environ if environ is None else environ)
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    pci = nvidia_pci_devices(sysfs)
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError as exc:
            return NvmlFacts(error=f"nvidia-ml-py is not installed ({exc})", nvidia_pci_devices=pci, visible=visible)
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        return NvmlFacts(error_code=getattr(exc, "value", None), error=str(exc), nvidia_pci_devices=pci,
                         visible=visible)
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        cuda = nvml.nvmlSystemGetCudaDriverVersion_v2()
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(GpuInfo(index, _text(nvml.nvmlDeviceGetName(handle)),
                                tuple(nvml.nvmlDeviceGetCudaComputeCapability(handle)),
                                int(memory.total), int(memory.free)))
    except nvml.NVMLError as exc:
        return NvmlFacts(error_code=getattr(exc, "value", None), error=str(exc), nvidia_pci_devices=pci,
                         visible=visible)
    finally:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError:
            pass
    if visible is not None and re.fullmatch(r"[\d,\s]*", visible):
        keep = [int(i) for i in visible.split(",") if i.strip()]
        gpus = [gpus[i] for i in keep if i < len(gpus)]
    return NvmlFacts(driver, cuda, tuple(gpus), nvidia_pci_devices=pci, visible=visible)


def gpu_count() -> int:
    """Number of GPUs NVML sees; 0 when the library or driver is absent."""
    return len(probe_nvml_facts().gpus)
