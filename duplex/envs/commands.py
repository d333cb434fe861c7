"""The one subprocess wrapper for env work: list arguments, quoted echo, output kept for errors."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import EnvError

Progress = Callable[[str], None]
# Anything that looks like a credential is masked before a command or its output is shown.
_SECRET = re.compile(r"(hf_[A-Za-z0-9]{6,}|(?<=://)[^/\s:@]+:[^/\s@]+(?=@)|(?i:token=)\S+)")


def mask(text: str) -> str:
    """Hide tokens and URL passwords: duplex never prints a secret."""
    return _SECRET.sub("***", text)


def quoted(args: Sequence[str | os.PathLike]) -> str:
    return mask(" ".join(shlex.quote(str(a)) for a in args))


def tail(text: str, lines: int = 25) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return mask("\n".join("    " + line for line in kept))


def run(args: Sequence[str | os.PathLike], *, what: str, fix: str | None = None,
        cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run a tool to completion; on failure raise EnvError naming the step, the command and its output."""
    argv = [str(a) for a in args]
    try:
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as exc:
        raise EnvError(f"{what}: {argv[0]} was not found", fix=fix) from exc
    except subprocess.TimeoutExpired as exc:
        raise EnvError(f"{what}: `{quoted(argv)}` did not finish within {timeout:.0f} s", fix=fix) from exc
    if proc.returncode != 0:
        raise CommandFailed(what, argv, proc, fix)
    return proc


class CommandFailed(EnvError):
    """A tool exited non-zero; ``output`` holds its stdout and stderr for callers that classify it."""

    def __init__(self, what: str, argv: list[str], proc: subprocess.CompletedProcess, fix: str | None):
        self.argv = argv
        self.returncode = proc.returncode
        self.output = (proc.stdout or "") + "\n" + (proc.stderr or "")
        super().__init__(f"{what} failed (exit {proc.returncode}): {quoted(argv)}\n{tail(self.output)}", fix=fix)
