"""Named post-install fixes that run against a built env: idempotent, verified, recorded in the stamp."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.version import Version

from ..errors import EnvError
from .commands import Progress, run


@dataclass(frozen=True)
class FixResult:
    name: str
    changed: bool
    message: str


# lhotse's CutSampler (and the stateless sampler) pass data_source=None to torch's Sampler, which
# torch >= 2.10 no longer accepts: "TypeError: object.__init__() takes exactly one argument".
# Upstream fixed it in lhotse PR #1543 by calling super().__init__() with no argument.
LHOTSE_CALL = re.compile(r"super\(\)\.__init__\(\s*data_source\s*=\s*None\s*\)")
TORCH_WITHOUT_DATA_SOURCE = Version("2.10")
_FACTS = """
import importlib.metadata as md, importlib.util, json
def version(name):
    try: return md.version(name)
    except md.PackageNotFoundError: return None
spec = importlib.util.find_spec("lhotse")
print(json.dumps({"lhotse": version("lhotse"), "torch": version("torch"),
                  "where": list(spec.submodule_search_locations) if spec else []}))
"""
VERIFY = ("from lhotse import CutSet\nfrom lhotse.dataset import SimpleCutSampler\n"
          "SimpleCutSampler(CutSet(), max_duration=10.0)\nprint('SimpleCutSampler ok')\n")


def lhotse(python: Path, progress: Progress) -> FixResult:
    """Patch exactly the data_source=None call where the installed lhotse still has it, then verify."""
    facts = json.loads(run([python, "-I", "-c", _FACTS], what="inspecting lhotse and torch").stdout)
    if not facts["lhotse"]:
        return FixResult("lhotse", False, "lhotse is not installed in this env: nothing to fix")
    if not facts["torch"] or Version(facts["torch"]).release[:2] < TORCH_WITHOUT_DATA_SOURCE.release:
        return FixResult("lhotse", False, f"torch {facts['torch'] or '(none)'} still accepts "
                                          "Sampler(data_source=...): nothing to fix")
    patched = []
    for folder in facts["where"]:
        for source in sorted((Path(folder) / "dataset" / "sampling").rglob("*.py")):
            text = source.read_text(encoding="utf-8")
            new = LHOTSE_CALL.sub("super().__init__()", text)
            if new != text:
                tmp = source.with_suffix(".py.duplex-tmp")
                tmp.write_text(new, encoding="utf-8")
                tmp.replace(source)
                for cached in (source.parent / "__pycache__").glob(source.stem + ".*.pyc"):
                    cached.unlink(missing_ok=True)
                patched.append(source.relative_to(folder).as_posix())
    progress(f"lhotse fix: verifying with a SimpleCutSampler (lhotse {facts['lhotse']}, torch {facts['torch']})")
    run([python, "-c", VERIFY], what="verifying the lhotse fix (building a SimpleCutSampler)",
        fix="lhotse fails in a way the fix does not cover: pin lhotse>=1.32.2 in the env's requirements.in")
    if patched:
        return FixResult("lhotse", True, f"patched super().__init__(data_source=None) in lhotse "
                                         f"{facts['lhotse']}: {', '.join(patched)}")
    return FixResult("lhotse", False, f"lhotse {facts['lhotse']} is already fixed: nothing to do")


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
