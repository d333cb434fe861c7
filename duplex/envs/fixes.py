"""Named post-install fixes that run against a built env: idempotent, verified, recorded in the stamp."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import EnvError
from ..standalone import HERE
from .commands import Progress, run


@dataclass(frozen=True)
class FixResult:
    name: str
    changed: bool
    message: str


# The fix itself is a script the env's Python runs (duplex/standalone/lhotse_fix.py: why, what, how), so the
# NeMo image applies the very same file at build time.
LHOTSE_SCRIPT = HERE / "lhotse_fix.py"
VERIFY = ("from lhotse import CutSet\nfrom lhotse.dataset import SimpleCutSampler\n"
          "SimpleCutSampler(CutSet(), max_duration=10.0)\nprint('SimpleCutSampler ok')\n")


def lhotse(python: Path, progress: Progress) -> FixResult:
    """Patch exactly the data_source=None call where the installed lhotse still has it, then verify."""
    facts = json.loads(run([python, "-I", LHOTSE_SCRIPT], what="applying the lhotse fix").stdout)
    if facts["lhotse"] and facts["torch"] and "nothing to fix" not in facts["message"]:
        progress(f"lhotse fix: verifying with a SimpleCutSampler (lhotse {facts['lhotse']}, torch {facts['torch']})")
        run([python, "-c", VERIFY], what="verifying the lhotse fix (building a SimpleCutSampler)",
            fix="lhotse fails in a way the fix does not cover: pin lhotse>=1.32.2 in the env's requirements.in")
    return FixResult("lhotse", facts["changed"], facts["message"])


FIXES: dict[str, Callable[[Path, Progress], FixResult]] = {"lhotse": lhotse}


def check_names(names: list[str] | tuple[str, ...], env: str) -> None:
    unknown = [n for n in names if n not in FIXES]
    if unknown:
        raise EnvError(f"env {env!r}: unknown fix {', '.join(map(repr, unknown))}; known fixes: {', '.join(FIXES)}",
                       fix=f"correct envs.{env}.fixes in stack.toml")


def apply(python: Path, names, env: str, progress: Progress) -> list[FixResult]:
    check_names(names, env)
    results = []
    for name in names:
        progress(f"{env}: fix {name}")
        result = FIXES[name](python, progress)
        progress(f"{env}: fix {name}: {result.message}")
        results.append(result)
    return results
