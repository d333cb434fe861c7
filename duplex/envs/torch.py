"""Which PyTorch build an env gets: a pure choice from the driver and GPU facts NVML gave (duplex.gpu)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import EnvError
from ..gpu import GpuInfo, NvmlFacts

INDEX = "https://download.pytorch.org/whl/{variant}"


@dataclass(frozen=True)
class Variant:
    """One PyTorch wheel build: its CUDA runtime, the driver it needs, the GPU code it carries."""

    name: str
    cuda: tuple[int, int]
    min_driver: str  # Linux driver for CUDA minor-version compatibility (the major version binds)
    sm: tuple[int, ...]  # compute capabilities with kernels (SASS) in the wheels, e.g. 86 = sm_86


_OLD_SM = (50, 60, 61, 70, 75, 80, 86, 90)
# From PyTorch's release matrix and the wheels' torch.cuda.get_arch_list(); CUDA 13 itself drops < sm_75.
VARIANTS = {v.name: v for v in (
    Variant("cu118", (11, 8), "450.80.02", (37, *_OLD_SM)),
    Variant("cu121", (12, 1), "525.60.13", _OLD_SM),
    Variant("cu124", (12, 4), "525.60.13", _OLD_SM),
    Variant("cu126", (12, 6), "525.60.13", _OLD_SM),
    Variant("cu128", (12, 8), "525.60.13", (75, 80, 86, 90, 100, 120)),
    Variant("cu129", (12, 9), "525.60.13", (75, 80, 86, 90, 100, 120)),
    Variant("cu130", (13, 0), "580.65.06", (75, 80, 86, 90, 100, 110, 120)),
)}
# The CUDA variants each torch release publishes (major, minor) -> variants; newer releases are
# assumed to publish what the newest known one does.
RELEASES = {
    (2, 4): ("cu118", "cu121", "cu124"), (2, 5): ("cu118", "cu121", "cu124"),
    (2, 6): ("cu118", "cu124", "cu126"), (2, 7): ("cu118", "cu126", "cu128"),
    (2, 8): ("cu126", "cu128", "cu129"), (2, 9): ("cu126", "cu128", "cu130"),
}


@dataclass(frozen=True)
class TorchChoice:
    variant: str  # "cpu", "cu128", ... or "none" (no torch in this env)
    reason: str
    warnings: tuple[str, ...] = field(default=())

    @property
    def index_url(self) -> str | None:
        return None if self.variant == "none" else INDEX.format(variant=self.variant)


def offered(torch_version: str | None) -> tuple[str, ...]:
    """CUDA variants published for a torch version (newest known when unknown)."""
    found = re.match(r"(\d+)\.(\d+)", torch_version or "")
    key = (int(found.group(1)), int(found.group(2))) if found else max(RELEASES)
    return RELEASES.get(key, RELEASES[max(RELEASES)] if key > max(RELEASES) else ())


def runs_on(variant: Variant, gpu: GpuInfo) -> bool:
    """SASS for sm_XY runs on sm_XZ with Z >= Y (same major): sm_80 kernels serve an sm_89 card."""
    return any(sm // 10 == gpu.sm // 10 and sm <= gpu.sm for sm in variant.sm)


def _driver_major(probe: NvmlFacts) -> int | None:
    if probe.cuda_driver:
        return probe.cuda_driver // 1000
    return None


def problems(variant: Variant, probe: NvmlFacts) -> list[str]:
    """Why a variant cannot run here (empty when it can)."""
    out = []
    major = _driver_major(probe)
    if major is not None and major < variant.cuda[0]:
        out.append(f"the driver supports CUDA {_cuda_text(probe.cuda_driver)}, {variant.name} needs CUDA "
                   f"{variant.cuda[0]}.x (driver >= {variant.min_driver})")
    missing = [g for g in probe.gpus if not runs_on(variant, g)]
    if missing:
        out.append(f"{variant.name} wheels carry no kernels for " +
                   ", ".join(f"{g.name} (sm_{g.sm})" for g in missing))
    return out


def choose(mode: str, probe: NvmlFacts | None, torch_version: str | None = None) -> TorchChoice:
    """The variant for ``torch = mode`` ('none', 'cpu', 'auto' or 'cuXXX') on this machine."""
    if mode in ("none", "cpu"):
        return TorchChoice(mode, "no torch in this env" if mode == "none" else "torch = \"cpu\" was asked for")
    probe = probe or NvmlFacts()
    if mode != "auto":
        if mode not in VARIANTS:
            raise EnvError(f"torch = {mode!r} is not a PyTorch variant duplex knows ({', '.join(VARIANTS)})",
                           fix="use 'auto', 'cpu' or one of those variants")
        if torch_version and mode not in offered(torch_version):
            raise EnvError(f"torch {torch_version} is not published for {mode}; it is for: "
                           f"{', '.join(offered(torch_version)) or 'none known'}",
                           fix="pick one of those with --torch, or pin another torch version")
        trouble = problems(VARIANTS[mode], probe) if probe.cuda_driver else []
        return TorchChoice(mode, f"torch = {mode!r} was asked for", tuple(trouble))
    if not probe.cuda_driver or not probe.gpus:
        return TorchChoice("cpu", "no NVIDIA driver or GPU was found (NVML), so the CPU build")
    names = offered(torch_version)
    if not names:
        raise EnvError(f"torch {torch_version} predates the variants duplex knows", fix="pin torch >= 2.4")
    rejected = []
    for name in sorted(names, key=lambda n: VARIANTS[n].cuda, reverse=True):
        why = problems(VARIANTS[name], probe)
        if not why:
            gpus = ", ".join(f"{g.name} (sm_{g.sm})" for g in probe.gpus)
            skipped = f"; newer ones do not fit: {'; '.join(rejected)}" if rejected else ""
            return TorchChoice(name, f"newest variant the driver (CUDA {_cuda_text(probe.cuda_driver)}) "
                                     f"and every GPU ({gpus}) support{skipped}")
        rejected.append("; ".join(why))
    raise EnvError("no PyTorch CUDA build fits this machine: " + "; ".join(rejected),
                   fix=_refusal_fix(names, probe))


def _refusal_fix(names: tuple[str, ...], probe: NvmlFacts) -> str:
    major = _driver_major(probe) or 0
    newest = max((VARIANTS[n] for n in names), key=lambda v: v.cuda)
    if major < newest.cuda[0]:
        return (f"update the NVIDIA driver to >= {newest.min_driver}, or set torch = \"cpu\" "
                f"(or --torch cpu) for this env")
    return ("hide the unsupported GPU with CUDA_VISIBLE_DEVICES, pin a torch release whose wheels "
            "still support it, or set torch = \"cpu\" for this env")


def _cuda_text(value: int | None) -> str:
    return f"{value // 1000}.{value % 1000 // 10}" if value else "unknown"
