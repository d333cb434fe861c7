"""Which Python versions an env admits: its `python` range intersected with what duplex's stacks
support. Pure version arithmetic, so the stack loader can validate ranges without probing anything."""

from __future__ import annotations

import re

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from ..errors import EnvError

SUPPORTED = SpecifierSet(">=3.10,<3.13")  # what duplex's stacks run on; 3.13 breaks them
SUPPORTED_TEXT = "3.10-3.12"
VERSION_ONLY = re.compile(r"^\d+\.\d+(\.\d+)?$")


def parse_range(spec: str) -> SpecifierSet:
    """'3.11' means any 3.11.x, '3.11.7' exactly that, otherwise a PEP 440 range like '>=3.10,<3.13'."""
    text = spec.strip()
    if VERSION_ONLY.match(text):
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
    wanted = parse_range(spec)
    return any(v in wanted and v in SUPPORTED
               for v in (Version(f"3.{minor}.{micro}") for minor in (10, 11, 12) for micro in range(100)))
