"""Base images: the official Python image each env gets by default, and `images.lock`, which pins
every base image to a digest so that a build next month starts from the bytes of today.

Pure apart from reading and writing the lock file: the plan imports `official_base`; asking a
registry is duplex.images.registry's job, and duplex.pinning brings the two together.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import DuplexError
from ..textfile import TextFileError, read_text
from .references import DIGEST_RULE, is_digest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

LOCK_FILE = "images.lock"
AIR_GAPPED = "duplex/python:3.11-bookworm"  # scripts/base-image.sh: debootstrap, no registry needed
PREFERRED = ("3.11", "3.12", "3.10")  # for a range: the Python the stack is tested on first
HEADER = """\
# images.lock: the base image of every service, pinned to a digest. Commit this file.
# Builds start FROM name:tag@digest, so a build next month starts from the same bytes.
# Move every base image to what its tag names now: inv lock --images
"""


class ImageLockError(DuplexError):
    """images.lock cannot be read."""


def official_base(python: str | None) -> str:
    """The official image for an env's Python: its exact version, else the preferred one the range
    admits (`>=3.10,<3.13` -> 3.11, the Python bookworm and the air-gapped image carry)."""
    if python and python.count(".") == 1 and python.replace(".", "").isdigit():
        return f"python:{python}-slim-bookworm"
    for version in PREFERRED if python else ():
        if _admits(python, version):
            return f"python:{version}-slim-bookworm"
    return f"python:{PREFERRED[0]}-slim-bookworm"


def _admits(spec: str, version: str) -> bool:
    """Whether a range such as `>=3.10,<3.13` admits `version` (X.Y). The stack validated the range
    at load; this small reading keeps planning free of packaging's import (start-up time)."""
    want = tuple(int(p) for p in version.split("."))
    tests = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
             "<": lambda a, b: a < b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
             "~=": lambda a, b: a >= b}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        op = next((o for o in (">=", "<=", "==", "!=", "~=", ">", "<") if part.startswith(o)), None)
        bound = part[len(op):].strip().rstrip(".*") if op else ""
        try:
            target = tuple(int(p) for p in bound.split(".")[:2])
        except ValueError:
            return True  # a form this reading does not know: do not exclude on it
        if op and not tests[op](want[:len(target)], target):
            return False
    return True


@dataclass(frozen=True)
class LockedImage:
    reference: str  # as the stack or the default names it: python:3.11-slim-bookworm
    digest: str  # sha256:...
    size: int | None = None  # bytes to pull (linux/amd64), when the registry said


def lock_path(root: Path | str) -> Path:
    return Path(root) / LOCK_FILE


def read_images(root: Path | str) -> dict[str, LockedImage]:
    path = lock_path(root)
    try:
        data = tomllib.loads(read_text(path, what="image lock"))
    except FileNotFoundError:
        return {}
    except (OSError, TextFileError, tomllib.TOMLDecodeError) as exc:
        raise ImageLockError(f"{path}: cannot read the image lock: {exc}",
                             fix=f"restore it from git (git checkout -- {LOCK_FILE}) or delete it and run "
                                 "`inv lock --images`") from exc
    out = {}
    for ref, entry in (data.get("images") or {}).items():
        digest = entry.get("digest") if isinstance(entry, dict) else None
        if not is_digest(digest):  # it goes into FROM lines and Engine API paths
            raise ImageLockError(f"{path}: images.{ref!r} has no valid digest ({DIGEST_RULE})",
                                 fix="restore it from git, or run `inv lock --images` to write it again")
        size = entry.get("size")
        out[ref] = LockedImage(ref, digest, size if type(size) is int and size >= 0 else None)
    return out


def pins(root: Path | str) -> dict[str, str]:
    """reference -> digest, for the plan."""
    return {ref: image.digest for ref, image in read_images(root).items()}


def write_images(root: Path | str, images: dict[str, LockedImage]) -> Path:
    """Atomically (temp file + rename), sorted: a re-pin is a one-line diff."""
    path = lock_path(root)
    bad = [ref for ref, image in images.items() if not is_digest(image.digest)]
    if bad:  # the registry's answer was checked already: this is a caller's bug, never a pin
        raise ImageLockError(f"refusing to write {path}: {bad[0]!r} has no valid digest ({DIGEST_RULE})")
    text = [HEADER]
    for ref in sorted(images):
        image = images[ref]
        text.append(f"\n[images.{json.dumps(ref)}]\ndigest = {json.dumps(image.digest)}\n")
        if image.size is not None:
            text.append(f"size = {image.size}  # bytes to pull, {image.size / 1e6:.1f} MB (linux/amd64)\n")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text("".join(text), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def unpinned(reference: str) -> str:
    """The reference without its digest: the key images.lock files it under."""
    return reference.split("@", 1)[0]

