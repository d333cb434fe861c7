"""Find a Python interpreter inside an env's allowed range (never outside 3.10-3.12)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from packaging.version import Version

from ..errors import EnvError
from ..syntax import VERSION_ONLY
from .pythons import SUPPORTED_TEXT, admits_supported, allows, parse_range, suggest

_PROBE = "import sys; print('%d.%d.%d' % sys.version_info[:3]); print(sys.executable)"


class NoInterpreterError(EnvError):
    """No interpreter on the machine fits the env's range (one may still be fetched with uv)."""


@dataclass(frozen=True)
class Interpreter:
    path: Path
    version: str  # "3.11.7"
    source: str  # "--python", "PATH", "pyenv", "uv", "py launcher"

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


def check_range(spec: str, env: str) -> None:
    """Refuse a range that excludes every supported Python before looking for one."""
    if not admits_supported(spec):
        raise EnvError(f"env {env!r}: python = {spec!r} allows no Python that duplex supports ({SUPPORTED_TEXT})",
                       fix=f"set envs.{env}.python to a version in {SUPPORTED_TEXT}, e.g. \"3.11\", in stack.toml")


def install_hint(version: str = "3.11") -> str:
    minor = ".".join(version.split(".")[:2])  # package names know the series, not the patch
    return (f"install Python {version}: `pyenv install {version}`, `uv python install {version}`, "
            f"`sudo apt-get install python{minor}-venv` or `brew install python@{minor}` "
            f"(Windows: `py install {version}`), then rerun; or pass --python /path/to/python{minor}")


def probe(path: str | os.PathLike, source: str) -> Interpreter | None:
    """Ask the interpreter itself; a shim or a broken binary simply yields None."""
    try:
        out = subprocess.run([str(path), "-I", "-S", "-c", _PROBE], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = out.stdout.split()
    if out.returncode != 0 or len(lines) < 2:
        return None
    return Interpreter(Path(path), lines[0], source)


def candidates(environ: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """(path, source) for every interpreter the machine offers: PATH, pyenv, uv-managed, the py launcher."""
    environ = dict(os.environ if environ is None else environ)
    home = Path(environ.get("HOME") or Path.home())
    found: list[tuple[str, str]] = []
    names = [f"python3.{m}" for m in range(8, 15)] + ["python3", "python"]
    for folder in environ.get("PATH", "").split(os.pathsep):
        if folder and "shims" not in Path(folder).parts:  # pyenv shims: found below by version instead
            found += [(str(Path(folder) / n), "PATH") for n in names if (Path(folder) / n).is_file()]
    pyenv = Path(environ.get("PYENV_ROOT") or home / ".pyenv") / "versions"
    found += [(str(p), "pyenv") for p in sorted(pyenv.glob("*/bin/python3"))]
    xdg = Path(environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    uv_dir = Path(environ.get("UV_PYTHON_INSTALL_DIR") or xdg / "uv" / "python")
    found += [(str(p), "uv") for p in sorted(uv_dir.glob("cpython-*/bin/python3"))]
    found += [(str(p), "uv") for p in sorted(uv_dir.glob("cpython-*/python.exe"))]
    if sys.platform == "win32" and shutil.which("py"):
        out = subprocess.run(["py", "-0p"], capture_output=True, text=True)
        found += [(m.group(1), "py launcher") for m in re.finditer(r"\s(\S+python\.exe)\s*$", out.stdout, re.M)]
    seen, unique = set(), []
    for path, source in found:
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            unique.append((path, source))
    return unique


def discover(spec: str, env: str, *, python: str | None = None, prefer: str | None = None,
             environ: dict[str, str] | None = None) -> Interpreter:
    """The interpreter an env gets: --python if given (refused when out of range), else the best match.

    Best match: the version the lock was resolved for (``prefer``, e.g. '3.11') when allowed, else the
    newest allowed. Nothing out of range is ever used silently.
    """
    check_range(spec, env)
    wanted = f"{spec} (env {env!r}; duplex supports {SUPPORTED_TEXT})"
    if python and not VERSION_ONLY.fullmatch(python):
        path = shutil.which(python) or python
        found = probe(path, "--python")
        if found is None:
            raise EnvError(f"--python {python}: not a working Python interpreter", fix=install_hint())
        if not allows(spec, found.version):
            raise EnvError(f"--python {python} is Python {found.version}, outside the allowed range {wanted}",
                           fix=install_hint(prefer or "3.11"))
        return found
    if python:  # a version: look for it among what the machine has
        if not allows(spec, python + (".0" if python.count(".") == 1 else "")):
            raise EnvError(f"--python {python} is outside the allowed range {wanted}", fix=install_hint(prefer or "3.11"))
        spec = f"{parse_range(spec)},{parse_range(python)}"
    with ThreadPoolExecutor(max_workers=8) as pool:
        probed = [i for i in pool.map(lambda c: probe(*c), candidates(environ)) if i]
    fitting = [i for i in probed if allows(spec, i.version)]
    if not fitting:
        seen = ", ".join(f"{i.version} ({i.path}, {i.source})" for i in probed) or "none"
        raise NoInterpreterError(f"no Python in {wanted} was found; found: {seen}",
                                 fix=install_hint(python or suggest(spec, prefer)))

    def rank(i: Interpreter):
        return (i.minor == prefer, Version(i.version))
    return max(fitting, key=rank)
