"""From an unpacked release, keep only the `moshi` package and its licence files."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

from .errors import UnknownReleaseError, VendorError

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
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(package, dest / "moshi", ignore=JUNK, symlinks=True)
    for licence in licences:
        shutil.copy2(licence, dest / licence.name)
    return [p.name for p in licences]
