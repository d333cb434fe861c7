"""Hash a vendored tree file by file, and diff two trees (added / removed / modified)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

RECORD = "MOSHI_VERSION"
# Byte-code caches appear as soon as Python imports the tree; they are never part of it.
IGNORED_DIRS = {"__pycache__"}
IGNORED_SUFFIXES = (".pyc", ".pyo")


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest(root: Path) -> dict[str, str]:
    """Relative POSIX path -> sha256 for every file under root, MOSHI_VERSION and byte code excluded.

    An executable file hashes as ``x:<sha256>`` so a lost or gained exec bit counts as a change.
    """
    root = Path(root)
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_DIRS)
        for name in filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if rel == RECORD or name.endswith(IGNORED_SUFFIXES):
                continue
            if path.is_symlink():
                out[rel] = "link:" + os.readlink(path)
                continue
            if not path.is_file():  # a FIFO or device: opening it could block; vendoring refuses it
                out[rel] = "special:"
                continue
            digest = file_sha256(path)
            out[rel] = ("x:" + digest) if os.access(path, os.X_OK) else digest
    return dict(sorted(out.items()))


def tree_hash(files: dict[str, str]) -> str:
    """One hash for a whole manifest: sha256 over sorted "path\\0hash\\n" lines."""
    digest = hashlib.sha256()
    for rel, file_hash in sorted(files.items()):
        digest.update(f"{rel}\0{file_hash}\n".encode())
    return "sha256:" + digest.hexdigest()


@dataclass
class TreeDiff:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.modified)

    def to_dict(self) -> dict:
        return {"added": self.added, "removed": self.removed, "modified": self.modified}

    def summary(self) -> str:
        return f"{len(self.added)} added, {len(self.removed)} removed, {len(self.modified)} modified"


def diff(old: dict[str, str], new: dict[str, str]) -> TreeDiff:
    """What changes going from manifest ``old`` to manifest ``new``."""
    return TreeDiff(
        added=sorted(set(new) - set(old)),
        removed=sorted(set(old) - set(new)),
        modified=sorted(p for p in set(old) & set(new) if old[p] != new[p]),
    )
