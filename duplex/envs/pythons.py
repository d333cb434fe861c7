"""Which Python versions an env admits: its `python` range intersected with what duplex's stacks
support. Pure version arithmetic, so the stack loader can validate ranges without probing anything."""

from __future__ import annotations

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from ..errors import EnvError
from ..syntax import VERSION_ONLY

SUPPORTED = SpecifierSet(">=3.10,<3.13")  # what duplex's stacks run on; 3.13 breaks them
SUPPORTED_TEXT = "3.10-3.12"


def parse_range(spec: str) -> SpecifierSet:
    """'3.11' means any 3.11.x, '3.11.7' exactly that, otherwise a PEP 440 range like '>=3.10,<3.13'."""
    text = spec.strip()
    if VERSION_ONLY.fullmatch(text):
        return SpecifierSet(f"=={text}.*" if text.count(".") == 1 else f"=={text}")
    try:
        return SpecifierSet(text)
    except InvalidSpecifier as exc:
        raise EnvError(f"python = {spec!r} is neither a version like '3.11' nor a range like '>=3.10,<3.13'",
                       fix="fix the env's `python` key in stack.toml") from exc


def allows(spec: str, version: str) -> bool:
    """The env's range intersected with what duplex supports."""
    v = Version(version)
    return v in parse_range(spec) and v in SUPPORTED


def admits_supported(spec: str) -> bool:
    """Whether the range lets in any Python duplex supports (3.10-3.12); EnvError when it does not parse."""
    return _admits(parse_range(spec) & SUPPORTED)


def managed_request(spec: str, python: str | None = None, prefer: str | None = None) -> str:
    """What to ask `uv python install` for: `--python X.Y`, the version the env names, the lock's
    version or the newest minor, whichever comes first and lies wholly inside the env's range (uv
    installs that series' newest patch); else the range itself (uv takes PEP 440 ranges too)."""
    wanted = parse_range(spec) & SUPPORTED
    if python:
        wanted &= parse_range(python)
    named = [v for v in (python, spec.strip()) if v and VERSION_ONLY.fullmatch(v) and v.count(".") == 2]
    if named:
        return named[0]
    for minor in ([prefer] if prefer else []) + ["3.12", "3.11", "3.10"]:
        if all(Version(f"{minor}.{micro}") in wanted for micro in range(100)):
            return minor
    return str(wanted)


def suggest(spec: str, prefer: str | None = None) -> str:
    """The version to tell a user to install: the one the env names, else the lock's, else the
    first of 3.11, 3.12, 3.10 that the range admits."""
    if VERSION_ONLY.fullmatch(spec.strip()):
        return spec.strip()
    wanted = parse_range(spec) & SUPPORTED
    for minor in ([prefer] if prefer else []) + ["3.11", "3.12", "3.10"]:
        if _admits(wanted & parse_range(minor)):
            return minor
    return "3.11"


def _admits(wanted: SpecifierSet) -> bool:
    return any(Version(f"3.{minor}.{micro}") in wanted for minor in (10, 11, 12) for micro in range(100))
