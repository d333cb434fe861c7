"""From an unpacked release, keep only the `moshi` package and its licence files."""

from __future__ import annotations

import ast
import os
import shutil
import stat
from pathlib import Path

from .errors import UnknownReleaseError, UnsafeSourceError, VendorError

LICENCE_PREFIXES = ("license", "licence", "copying", "notice")
JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".git")


def find_package(unpacked: Path) -> Path:
    """The shallowest `moshi/` folder with an __init__.py (sdist: moshi-X/moshi, wheel: moshi,
    upstream git repo: moshi/moshi)."""
    found = sorted((p.parent for p in Path(unpacked).rglob("moshi/__init__.py")
                    if ".git" not in p.parts and "tests" not in p.parts),
                   key=lambda p: (len(p.parts), str(p)))
    if not found:
        raise VendorError(f"no `moshi` package (moshi/__init__.py) in {Path(unpacked).name}",
                          fix="point at a moshi release: the sdist, the wheel, or the kyutai-labs/moshi repo")
    return found[0]


def find_licences(unpacked: Path, package: Path) -> list[Path]:
    """LICENSE* beside the package, else in a wheel's *.dist-info (licenses/), else up to the top."""
    unpacked = Path(unpacked)
    places = [package.parent]
    places += sorted(unpacked.glob("*.dist-info/licenses")) + sorted(unpacked.glob("*.dist-info"))
    here = package.parent
    while here != unpacked and unpacked in here.parents:
        here = here.parent
        places.append(here)
    for place in places:
        found = sorted(p for p in place.iterdir() if p.is_file() and p.name.lower().startswith(LICENCE_PREFIXES))
        if found:
            return found
    raise VendorError("the release carries no licence file (LICENSE*)",
                      fix="vendor a release that ships its licence; vendoring code without one is not allowed")


def package_version(package: Path) -> str | None:
    """`__version__` from moshi/__init__.py, read without importing it."""
    try:
        tree = ast.parse((package / "__init__.py").read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__" for t in node.targets):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                return node.value.value
    return None


def assemble(unpacked: Path, dest: Path, version: str, tag: str) -> list[str]:
    """Copy moshi/ and the licences into ``dest``; refuse a release whose version is not the tag's."""
    package = find_package(unpacked)
    found = package_version(package)
    if found and found != version:
        raise UnknownReleaseError(f"the release holds moshi {found}, not {version} (tag {tag})",
                                  fix=f"use `--tag v{found}`, or fetch the release that tag names")
    licences = find_licences(unpacked, package)
    check_links(Path(unpacked), package, licences)  # before anything is copied
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(package, dest / "moshi", ignore=JUNK, symlinks=True)
    for licence in licences:
        shutil.copy2(licence, dest / licence.name)
    return [p.name for p in licences]


_REFUSED = ("nothing was vendored and third_party/moshi is unchanged; replace the link with the file it "
            "points to (or remove it), or take the release from the package index (`--source pypi`)")


def check_links(unpacked: Path, package: Path, licences: list[Path]) -> None:
    """What extract.py refuses in an archive, for sources that arrive as a folder (--from DIR, a git
    checkout): the package and licences must really lie in the source, every link in the package
    (copied as a link) must stay inside the package, and no link may be absolute; no devices,
    FIFOs or sockets (copying a FIFO would hang)."""
    source = os.path.realpath(unpacked)
    for top in (package, *licences):
        _check(top, source, "the source", top.relative_to(unpacked).as_posix())
    tree = os.path.realpath(package)
    for dirpath, dirnames, filenames in os.walk(package):  # linked folders are not entered: checked here
        for name in (*dirnames, *filenames):
            path = Path(dirpath) / name
            _check(path, tree, "the moshi package", path.relative_to(unpacked).as_posix())


def _check(path: Path, inside: str, what: str, shown: str) -> None:
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        target = os.readlink(path)
        if os.path.isabs(target):
            raise UnsafeSourceError(f"link {shown} -> {target} is absolute", fix=_REFUSED)
        try:
            real = os.path.realpath(path, strict=True)  # the whole chain, as the OS will follow it
        except (OSError, RuntimeError):  # ELOOP or a missing target: nothing a copy can keep
            raise UnsafeSourceError(f"link {shown} -> {target} does not resolve (a loop of links, or "
                                    "its target is missing)", fix=_REFUSED) from None
        if real != inside and not real.startswith(inside.rstrip(os.sep) + os.sep):
            raise UnsafeSourceError(f"link {shown} -> {target} points outside {what}", fix=_REFUSED)
        here = os.path.realpath(path.parent)
        if os.path.isdir(real) and (here == real or here.startswith(real.rstrip(os.sep) + os.sep)):
            # a folder link to a folder that holds it: every tree walk that follows links loops
            raise UnsafeSourceError(f"link {shown} -> {target} makes a loop (it points at a folder "
                                    "that contains it)", fix=_REFUSED)
    elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise UnsafeSourceError(f"{shown} is a device, FIFO or socket, not a file", fix=_REFUSED)
