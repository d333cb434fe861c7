"""System libraries an env needs (libopus ...): found via ctypes, and needed only when no wheel bundles them."""

from __future__ import annotations

import ctypes.util
import json
import os
import platform
import subprocess
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import bounded
from ..errors import EnvError
from .commands import Progress


@dataclass(frozen=True)
class SystemLib:
    name: str
    soname: str  # what ctypes.util.find_library looks for
    packages: dict[str, str]  # package manager -> what to install (runtime, headers, pkg-config)
    bundled_by: tuple[str, ...] = field(default=())  # PyPI packages whose wheels link it in


LIBS = {
    "opus": SystemLib("opus", "opus", {
        "apt": "sudo apt-get install -y libopus0 libopus-dev pkg-config",
        "dnf": "sudo dnf install -y opus opus-devel pkgconf-pkg-config",
        "pacman": "sudo pacman -S opus pkgconf",
        "brew": "brew install opus pkg-config",
        "vcpkg": "vcpkg install opus",
    }, bundled_by=("sphn",)),
}


def lib(name: str) -> SystemLib:
    return LIBS.get(name) or SystemLib(name, name, {
        "apt": f"sudo apt-get install -y lib{name}-dev pkg-config", "dnf": f"sudo dnf install -y {name}-devel",
        "pacman": f"sudo pacman -S {name}", "brew": f"brew install {name}", "vcpkg": f"vcpkg install {name}"})


def find(name: str) -> str | None:
    """The shared library's file name when the loader can find it (ctypes.util.find_library)."""
    return ctypes.util.find_library(lib(name).soname)


def package_manager(system: str | None = None, os_release: str | None = None) -> str | None:
    system = system or platform.system()
    if system == "Darwin":
        return "brew"
    if system == "Windows":
        return "vcpkg"
    if os_release is None:
        try:
            os_release = Path("/etc/os-release").read_text()
        except OSError:
            os_release = ""
    ids = " ".join(line.split("=", 1)[1].strip('"') for line in os_release.splitlines()
                   if line.startswith(("ID=", "ID_LIKE=")))
    for words, manager in (("debian ubuntu", "apt"), ("fedora rhel centos", "dnf"), ("arch", "pacman")):
        if any(w in ids.split() for w in words.split()):
            return manager
    return None


def install_hint(name: str, manager: str | None) -> str:
    commands = lib(name).packages
    if manager in commands:
        return commands[manager]
    return "install it with your package manager: " + "; ".join(f"{k}: `{v}`" for k, v in commands.items())


def why_needed(name: str, pins: dict[str, str], has_wheel: Callable[[str, str], bool | None]) -> tuple[bool | None, str]:
    """(needed, reason): a library that only a package's build needs is moot where a wheel bundles it.

    needed is None when it cannot be told (the index was not reachable)."""
    bundlers = [p for p in lib(name).bundled_by if p in pins]
    if not bundlers:
        return True, f"the env asks for lib{name} and no pinned package bundles it"
    for pkg in bundlers:
        wheel = has_wheel(pkg, pins[pkg])
        if wheel is None:
            return None, f"could not check whether {pkg} {pins[pkg]} has a wheel for this platform"
        if not wheel:
            return True, f"{pkg} {pins[pkg]} has no wheel for this platform, so it builds from source against lib{name}"
    return False, f"{', '.join(f'{p} {pins[p]}' for p in bundlers)} ship wheels for this platform with lib{name} linked in"


PAGE_LIMIT = 16 << 20  # a project's JSON page on the index (sphn's is tens of KiB)


def pypi_has_wheel(python: Path, timeout: float = 10, index: str | None = None) -> Callable[[str, str], bool | None]:
    """A wheel check against the index's JSON simple API (PEP 691) for the tags the target interpreter accepts.
    The page must arrive whole within bounded.DEADLINE_READS x `timeout` (30 s by default) and under
    PAGE_LIMIT, else the answer is None ("could not check"): a stalled or trickling index cannot hold setup."""
    index = (index or os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple").rstrip("/")
    # heavy: packaging.utils loads the wheel-tag module (platform, sysconfig): only a missing library asks
    from packaging.utils import parse_wheel_filename
    from packaging.version import Version

    def check(name: str, version: str) -> bool | None:
        try:
            out = subprocess.run([str(python), "-c", "from pip._vendor.packaging import tags\n"
                                  "print(' '.join(str(t) for t in tags.sys_tags()))"],
                                 capture_output=True, text=True, timeout=timeout)
            request = urllib.request.Request(f"{index}/{name}/",
                                             headers={"Accept": "application/vnd.pypi.simple.v1+json"})
            body, _ = bounded.get(request, timeout, PAGE_LIMIT)
            files = [f["filename"] for f in json.loads(body)["files"]]
        except Exception:  # noqa: BLE001 - any failure to ask is "could not check", never a failed setup
            return None
        accepted = set(out.stdout.split())
        if not accepted:
            return None
        for filename in files:
            if filename.endswith(".whl"):
                _, wheel_version, _, wheel_tags = parse_wheel_filename(filename)
                if wheel_version == Version(version) and {str(t) for t in wheel_tags} & accepted:
                    return True
        return False
    return check


def check(names: list[str], env: str, pins: dict[str, str], has_wheel, progress: Progress,
          finder: Callable[[str], str | None] = find) -> list[str]:
    """Raise for a missing library the env needs; return warnings for what could not be decided."""
    warnings = []
    for name in names:
        found = finder(name)
        if found:
            progress(f"{env}: system library {name}: found ({found})")
            continue
        needed, reason = why_needed(name, pins, has_wheel)
        hint = install_hint(name, package_manager())
        if needed is False:
            progress(f"{env}: system library {name}: not installed, not needed here: {reason}")
        elif needed is None:
            warnings.append(f"lib{name} is not installed and {reason}; if the install builds from source, "
                            f"install it: {hint}")
        else:
            raise EnvError(f"env {env!r}: the system library lib{name} is not installed ({reason})", fix=hint)
    return warnings
