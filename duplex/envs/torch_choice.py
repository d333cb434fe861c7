"""Which torch build one env of a stack gets here: what the env asks of torch (its requirements.in
pin or range, each variant lock's pin) handed to the pure choice in duplex.envs.torch_builds."""

from __future__ import annotations

from pathlib import Path

from ..gpu import probe_nvml_facts
from ..machine import NvmlFacts
from ..textfile import read_text
from . import lock as lock_mod
from .torch_builds import TorchChoice, TorchWanted, choose, cpu_only


def _spec(spec, attr, default):
    return getattr(spec, attr, default) if spec is not None else default


def torch_choice(root: Path, name: str, spec, *, torch: str | None = None, probe: NvmlFacts | None = None) -> TorchChoice:
    mode = torch or _spec(spec, "torch", "none")
    if mode == "auto" and probe is None:
        probe = probe_nvml_facts()
    # the env's requirements and locks (a file per variant) are read only when the choice looks at them
    asks = mode not in ("none", "cpu") and not (mode == "auto" and cpu_only(probe))
    wanted = torch_wanted(root, name, spec) if asks else TorchWanted(env=name)
    return choose(mode, probe, wanted=wanted)


def torch_wanted(root: Path, name: str, spec) -> TorchWanted:
    """What env `name` asks of torch: requirements.in's pin or range, and each variant lock's pin."""
    # heavy: packaging.requirements loads the marker and wheel-tag parsers (platform, sysconfig), which
    # `inv config` and `inv setup` on a machine without a GPU never need
    from packaging.requirements import InvalidRequirement, Requirement
    req = lock_mod.requirements_path(root, name, spec)
    pin = allowed = None
    if req.is_file():
        for line in lock_mod.logical_lines(read_text(req, what="requirements file")):
            try:
                parsed = Requirement(line.split(" #")[0].strip())
            except InvalidRequirement:
                continue
            if parsed.name.lower() == "torch":
                allowed = str(parsed.specifier) or None
                exact = [s.version for s in parsed.specifier if s.operator in ("==", "===") and "*" not in s.version]
                pin = exact[0].split("+")[0] if exact else None
    locked = {}
    for lock in req.parent.glob(f"{req.stem}.*.lock") if req.parent.is_dir() else ():
        variant = lock.name[len(req.stem) + 1:-len(".lock")]
        version = lock_mod.pins(read_text(lock, what="lock file")).get("torch")
        if version and variant != "cpu":
            locked[variant] = version.split("+")[0]
    return TorchWanted(pin=pin, allowed=allowed, locked=locked, env=name)
