"""What the machine offers, as plain data: planning takes it, `duplex.probe` reads it from the host.

Pure: no probing happens here, so the plan can import it (tests build Machines by hand).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .gpu import GpuInfo

# Host variables the plan reads or passes through; nothing else of the host leaks into services.
PASSTHROUGH = ("HF_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE", "CUDA_VISIBLE_DEVICES",
               "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS")  # a collector's auth


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
