"""Warm reload: edits re-import the app inside a process that keeps its models (docs/warm-reload.md).

The reloader itself lives in `duplex/standalone/warm/` (runner.py and its warm_*.py siblings): scripts that run
inside the service's venv, which has no duplex (stdlib, uvicorn, watchfiles when present), started
by file path, not modules of this package (that folder has no __init__.py; its README says why).
This module is the duplex side: where that script is and how the plan calls it (pure).
"""

from __future__ import annotations

import signal

from ..standalone import HERE

RUNNER = HERE / "warm" / "runner.py"
# what the runner's supervisor does on each (kept equal to runner.py's RELOAD_CODE and RELOAD_MODEL)
RELOAD_SIGNALS = {"code": signal.SIGUSR1, "model": signal.SIGUSR2}


def is_warm(command: list[str]) -> bool:
    """A native service's argv that runs the warm reloader."""
    return str(RUNNER) in command


def command(app: str, host: str, port: int, watch: list[str], preload: str | None = None) -> list[str]:
    """argv for a native service with reload = "warm" ("python" = the env's interpreter)."""
    argv = ["python", str(RUNNER), "--app", app, "--host", host, "--port", str(port)]
    for folder in watch:
        argv += ["--watch", folder]
    if preload:
        argv += ["--preload", preload]
    return argv
