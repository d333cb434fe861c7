"""What the machine offers, as plain data: planning takes it, `duplex.host` reads it from the host.

Pure: no probing happens here, so the plan can import it (tests build Machines by hand).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DuplexError

DEFAULT_HUB = "https://huggingface.co"

# Host variables the plan reads or passes through; nothing else of the host leaks into services.
PASSTHROUGH = ("HF_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE", "CUDA_VISIBLE_DEVICES",
               "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS")  # a collector's auth


GIB = 1024 ** 3


@dataclass(frozen=True)
class GpuInfo:
    """One CUDA device: a whole GPU, or one MIG instance of a GPU in MIG mode (CUDA sees each
    instance as a device of its own, never the parent)."""

    index: int  # NVML's index of the GPU (its parent's for a MIG instance): PCI bus order
    name: str
    capability: tuple[int, int]  # (9, 0) for an H100; (0, 0) when NVML would not say
    memory_total: int | None = 0  # bytes; None when NVML does not report it (unified-memory parts)
    memory_free: int | None = 0  # bytes; None when unknown
    uuid: str | None = None  # GPU-... for a GPU, MIG-... for a MIG instance
    mig: int | None = None  # the instance's MIG device index on GPU `index`; None for a whole GPU
    problem: str | None = None  # a device call that failed, in NVML's words

    @property
    def sm(self) -> int:
        return self.capability[0] * 10 + self.capability[1]

    @property
    def device_id(self) -> str:
        """How the NVIDIA container toolkit and CDI specs name it: "1", or "0:2" for MIG device 2 of GPU 0."""
        return str(self.index) if self.mig is None else f"{self.index}:{self.mig}"

    @property
    def cuda_id(self) -> str:
        """What CUDA_VISIBLE_DEVICES takes for it regardless of CUDA_DEVICE_ORDER: its UUID (else the index)."""
        return self.uuid or self.device_id

    @property
    def label(self) -> str:
        return f"GPU {self.index}" + (f" MIG {self.mig}" if self.mig is not None else "")


@dataclass(frozen=True)
class NvmlFacts:
    """What NVML said: driver, CUDA driver version (12040 = 12.4), the GPUs CUDA will see (after
    CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER, as CUDA reads them); or why it could not."""

    driver_version: str | None = None
    cuda_driver: int | None = None
    gpus: tuple[GpuInfo, ...] = ()
    error_code: int | None = None  # pynvml.NVML_ERROR_* (12 = library not found, 18 = version mismatch)
    error: str | None = None  # NVML's own words, or why pynvml could not be used
    nvidia_pci_devices: int = 0  # NVIDIA display/3D controllers the kernel lists in /sys
    visible: str | None = None  # CUDA_VISIBLE_DEVICES as it was
    hidden: int = 0  # devices NVML lists that CUDA_VISIBLE_DEVICES hides
    notes: tuple[str, ...] = ()  # per-GPU trouble that did not stop the probe (a failed call, MIG without instances)

    @property
    def ok(self) -> bool:
        return self.error is None and self.error_code is None

    @property
    def cuda_text(self) -> str:
        value = self.cuda_driver
        return f"{value // 1000}.{value % 1000 // 10}" if value else "unknown"


@dataclass(frozen=True)
class Machine:
    """The facts planning needs. Tests build these by hand; `probe_machine` reads the real ones."""

    gpu_count: int = 0
    nvidia_runtime: bool = False  # docker can hand GPUs to containers
    gpu_request: str = "nvidia"  # how: "nvidia" (the engine's NVIDIA device driver) or "cdi" (CDI specs only)
    gpus: tuple[GpuInfo, ...] = ()  # the CUDA devices NVML lists (GPUs, MIG instances): placement picks from them
    hf_home: str = str(Path.home() / ".cache" / "huggingface")
    hf_hub_cache: str | None = None  # only when set apart from HF_HOME
    uid: int = 1000
    gid: int = 1000
    env: dict[str, str] = field(default_factory=dict)  # host variables (PASSTHROUGH, DUPLEX_*)
    torch: str = "cpu"  # what torch = "auto" resolves to here: the CUDA variant that fits the driver
    torch_envs: dict[str, str] = field(default_factory=dict)  # per env, when the stack was known (its range, locks)
    torch_notes: dict[str, str] = field(default_factory=dict)  # env -> why that variant; or why no build fits

    def torch_for(self, env: str | None) -> str:
        """The variant `torch = "auto"` resolves to for this env."""
        return self.torch_envs.get(env or "", self.torch)


def hf_home(environ: dict[str, str]) -> str:
    """The Hugging Face home as huggingface_hub computes it (HF_HOME, else XDG, else ~/.cache)."""
    if environ.get("HF_HOME"):
        return str(Path(environ["HF_HOME"]).expanduser())
    xdg = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(xdg).expanduser() / "huggingface")


def hf_offline(environ: dict[str, str]) -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it (1/ON/YES/TRUE, any case)."""
    return environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hf_endpoint(environ: dict[str, str]) -> str:
    """HF_ENDPOINT (a mirror) or the public hub, checked where it enters: an http(s) URL, or an
    error that says so (not a traceback from deep inside a download, nor "could not reach garbage")."""
    value = (environ.get("HF_ENDPOINT") or "").strip()
    if not value:
        return DEFAULT_HUB
    if not re.match(r"^https?://[^/\s]+", value) or any(c.isspace() or ord(c) < 32 for c in value):
        shown = re.sub(r"(://)[^/\s@]*@", r"\1***@", value)  # as duplex.redact.strip_url (which imports us)
        raise DuplexError(f"HF_ENDPOINT={shown!r} is not an http(s) URL",
                          fix="set it to your mirror's address, e.g. HF_ENDPOINT=http://127.0.0.1:8090, "
                              "or unset it for huggingface.co")
    return value.rstrip("/")


def seconds_from(environ: dict[str, str], name: str, default: float, high: float = 600.0) -> float:
    """A number of seconds from a variable such as DUPLEX_PREFLIGHT_TIMEOUT: finite, positive and
    at most `high`, or an error naming the variable (inf once reached the Docker client as a time)."""
    raw = environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= high):
        raise DuplexError(f"{name}={raw!r} is not a number of seconds from 0 to {high:g}",
                          fix=f"set it to e.g. {name}={default:g}, or unset it")
    return value
