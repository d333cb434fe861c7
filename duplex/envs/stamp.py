"""The env stamp: what a built env was made from, so an unchanged env is reused and a changed one rebuilt."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

STAMP = ".duplex-stamp.json"


@dataclass(frozen=True)
class Stamp:
    lock: str  # the lock file, relative to the project root
    lock_sha256: str
    python: str  # the base interpreter the venv was made from
    python_version: str
    torch: str  # variant: none, cpu, cu128 ...
    fixes: tuple[str, ...] = ()
    installer: str = ""
    fix_results: tuple[str, ...] = field(default=(), compare=False)
    torch_reason: str = field(default="", compare=False)  # why that variant (driver, GPUs, or asked for)


def read(venv: Path) -> Stamp | None:
    try:
        data = json.loads((venv / STAMP).read_text(encoding="utf-8"))
        data["fixes"] = tuple(data.get("fixes", ()))
        data["fix_results"] = tuple(data.get("fix_results", ()))
        return Stamp(**data)
    except (OSError, ValueError, TypeError):
        return None


def write(venv: Path, stamp: Stamp) -> None:
    tmp = venv / (STAMP + ".tmp")
    tmp.write_text(json.dumps(asdict(stamp), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, venv / STAMP)


def stale_reason(stamp: Stamp | None, *, lock: str, lock_sha256: str, torch: str, fixes: tuple[str, ...],
                 python_ok) -> str | None:
    """None when the env can be reused as it is, else why it must be rebuilt."""
    if stamp is None:
        return "no stamp (never built by duplex, or the build was interrupted)"
    if stamp.lock != lock:
        return f"built from {stamp.lock}, now {lock}"
    if stamp.lock_sha256 != lock_sha256:
        return f"{lock} changed"
    if stamp.torch != torch:
        return f"torch variant changed: {stamp.torch} -> {torch}"
    if tuple(stamp.fixes) != tuple(fixes):
        return f"fixes changed: {list(stamp.fixes)} -> {list(fixes)}"
    if not Path(stamp.python).exists():
        return f"its interpreter {stamp.python} is gone"
    if not python_ok(stamp.python_version):
        return f"Python {stamp.python_version} is not what is asked for now"
    return None
