"""Two ways to build a venv from a hash-pinned lock, one interface: uv (fast) or virtualenv + pip."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

from ..errors import EnvError
from ..layout import python_in
from .commands import CommandFailed, run
from .layout import os_problem, tool_os_error


def uv_command() -> list[str] | None:
    """uv as duplex's own dependency (`python -m uv`, found whether or not the venv is on PATH),
    else a uv on PATH; None when there is neither."""
    if importlib.util.find_spec("uv"):
        return [sys.executable, "-m", "uv"]
    found = shutil.which("uv")
    return [found] if found else None


class Uv:
    name = "uv"

    @staticmethod
    def available() -> bool:
        return uv_command() is not None

    def _uv(self) -> list[str]:
        return uv_command() or ["uv"]

    def create(self, interpreter: Path, target: Path) -> None:
        run([*self._uv(), "venv", "--quiet", "--seed", "--python", interpreter, target],
            what=f"creating a venv with uv at {target}")

    def install(self, target: Path, lock: Path, *, find_links: list[str], index: str | None) -> None:
        args = [*self._uv(), "pip", "install", "--require-hashes", "--python", python_in(target), "-r", lock]
        for link in find_links:
            args += ["--find-links", link]
        if index:
            args += ["--extra-index-url", index, "--index-strategy", "unsafe-best-match"]
        run(args, what=f"installing {lock.name} with uv")


class Pip:
    name = "pip"

    @staticmethod
    def available() -> bool:
        return True  # virtualenv, or the interpreter's own venv + ensurepip

    def create(self, interpreter: Path, target: Path) -> None:
        if importlib.util.find_spec("virtualenv"):
            run([sys.executable, "-m", "virtualenv", "--quiet", "--python", interpreter, target],
                what=f"creating a venv with virtualenv at {target}")
        else:
            run([interpreter, "-m", "venv", target], what=f"creating a venv at {target}",
                fix="install the venv module for that Python (Debian: `sudo apt-get install python3.X-venv`)")

    def install(self, target: Path, lock: Path, *, find_links: list[str], index: str | None) -> None:
        args = [python_in(target), "-m", "pip", "install", "--require-hashes", "--no-input",
                "--disable-pip-version-check", "-r", lock]
        for link in find_links:
            args += ["--find-links", link]
        if index:
            args += ["--extra-index-url", index]
        run(args, what=f"installing {lock.name} with pip")


INSTALLERS = {"uv": Uv, "pip": Pip, "virtualenv": Pip}


def pick(name: str | None):
    """The requested installer, or uv when available, else virtualenv + pip."""
    if name is None:
        return Uv() if Uv.available() else Pip()
    if name not in INSTALLERS:
        raise EnvError(f"unknown installer {name!r}; choose one of: uv, pip (virtualenv + pip)")
    chosen = INSTALLERS[name]()
    if not chosen.available():
        raise EnvError(f"installer {name!r} is not available", fix="`pip install uv`, or use --installer pip")
    return chosen


def explain(err: CommandFailed, env: str, lock: Path, relock: str, *, step: str, where: Path) -> EnvError:
    """Turn an installer failure into what happened and what to do."""
    text = err.output
    detail = str(err).split("\n", 1)[-1]
    trouble = tool_os_error(text)  # disk full, read-only, permission denied: the tool's line says where
    if trouble:
        return os_problem(trouble[0], env, step, where, trouble[1])
    if "DO NOT MATCH THE HASHES" in text or "Hash mismatch" in text:
        return EnvError(f"env {env!r}: a downloaded file does not match the hash in {lock.name}\n{detail}",
                        fix=f"re-lock with `{relock}`; if it persists the index serves a changed or wrongly "
                            "hashed file (the PyTorch index has done so): pin another version of that package")
    if "No matching distribution" in text or "not found in the package registry" in text \
            or "was not found in the provided package locations" in text:
        return EnvError(f"env {env!r}: a pinned package is missing from the index\n{detail}",
                        fix=f"check the index / find-links settings, or re-lock with `{relock}`")
    if any(s in text for s in ("Failed to fetch", "error sending request", "ConnectionError",
                               "Network is unreachable", "Failed to download")):
        return EnvError(f"env {env!r}: the package index is unreachable\n{detail}",
                        fix="check the network or proxy (behind a TLS-intercepting proxy set SSL_CERT_FILE and "
                            "PIP_CERT to its CA bundle) and rerun")
    if "Hashes are required" in text or "missing from some requirements" in text:
        return EnvError(f"env {env!r}: {lock.name} is incomplete (a requirement has no hash)\n{detail}",
                        fix=f"regenerate it with `{relock}`")
    return err
