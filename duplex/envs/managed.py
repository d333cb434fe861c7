"""A managed CPython from uv (`uv python install`) when the machine has none an env admits.

A machine whose own python3 is 3.13 or newer (Debian 13, Fedora 41, current Homebrew) runs duplex
fine but has nothing for the service envs (3.10-3.12). uv fetches a relocatable CPython build
(python-build-standalone) into its own folder, where discovery then finds it. On by default, as in
uv itself; UV_PYTHON_DOWNLOADS=never (or manual) turns it off, UV_PYTHON_INSTALL_MIRROR points it at
a mirror.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import deque
from typing import Callable

from ..errors import EnvError
from ..syntax import VERSION_ONLY
from .interpreters import Interpreter, NoInterpreterError, discover, install_hint
from .pythons import managed_request, suggest

# What uv prints when it cannot reach the download server (DNS, refused, timeout, UV_OFFLINE).
_OFFLINE = ("dns error", "failed to lookup address", "error sending request", "connection refused",
            "network unreachable", "timed out", "operation timed out", "network connectivity is disabled")


def downloads_allowed(environ: dict[str, str] | None = None) -> bool:
    """uv's own switch: `never` and `manual` mean no download the user did not type themselves."""
    value = (os.environ if environ is None else environ).get("UV_PYTHON_DOWNLOADS", "automatic")
    return value.strip().lower() not in ("never", "manual")


def find_or_fetch(spec: str, env: str, *, python: str | None, prefer: str | None,
                  progress: Callable[[str], None]) -> Interpreter:
    """The interpreter an env gets (see `discover`); when the machine has none in range, one that
    `uv python install` fetches, unless the user turned uv's downloads off or named a path."""
    try:
        return discover(spec, env, python=python, prefer=prefer)
    except NoInterpreterError as missing:
        if python and not VERSION_ONLY.fullmatch(python):
            raise
        if not downloads_allowed():
            missing.fix = (f"{missing.fix}; or unset UV_PYTHON_DOWNLOADS (now "
                           f"{os.environ['UV_PYTHON_DOWNLOADS']!r}) to let `inv setup` fetch one with uv")
            raise
        fetch(managed_request(spec, python, prefer), env, progress, hint=python or suggest(spec, prefer))
        return discover(spec, env, python=python, prefer=prefer)


def fetch(request: str, env: str, progress: Callable[[str], None], *, hint: str = "3.11",
          timeout: float = 900) -> None:
    """Run `uv python install REQUEST`, its lines shown as progress; a failure is one EnvError."""
    shown = f"uv python install '{request}'"
    progress(f"{env}: no Python in range on this machine: fetching a managed CPython ({shown})")
    tail: deque[str] = deque(maxlen=12)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "uv", "python", "install", request],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise EnvError(f"{env}: cannot run uv to fetch a Python ({exc})", fix=install_hint(hint)) from None
    try:
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                tail.append(line)
                if not line.startswith(("warning:", "  cause:", "  Caused by:")):
                    progress(f"{env}: {line.strip()}")
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise EnvError(f"{env}: `{shown}` was still downloading after {timeout:.0f} s, stopped",
                       fix=f"run `{shown}` yourself to see it, then rerun `inv setup`") from None
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if code == 0:
        return
    text = "\n".join(tail).lower()
    last = next((line.strip().removeprefix("cause:").strip() for line in reversed(tail)
                 if line.strip()), "no output")
    if any(mark in text for mark in _OFFLINE):
        raise EnvError(f"{env}: no Python in range on this machine, and `{shown}` could not reach its "
                       f"download server (offline?): {last}",
                       fix=install_hint(hint) + "; or point UV_PYTHON_INSTALL_MIRROR at a reachable mirror "
                                            "of python-build-standalone")
    raise EnvError(f"{env}: `{shown}` failed: {last}", fix=install_hint(hint))
