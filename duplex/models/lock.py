"""`models.lock`: each model's resolved commit and its files' sizes and hashes, in diffable TOML."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..textfile import TextFileError, read_text
from .errors import LockError
from .refs import parse_ref

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

LOCK_FILE = "models.lock"
VERSION = 1
HEADER = """\
# models.lock: the Hugging Face models of this project, pinned by `inv prefetch`. Commit this file.
# Servers start with these commits and HF_HUB_OFFLINE=1, so a run never downloads.
# Move a model to its newest commit: inv prefetch --repo ORG/NAME --update
"""


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str | None = None  # LFS files: the content's sha256, as the hub declares it
    git_blob: str | None = None  # small files: the git blob id (sha1 over "blob <size>\\0" + content)


@dataclass(frozen=True)
class LockedModel:
    repo: str
    revision: str  # what was asked (branch, tag or commit)
    commit: str  # what it resolved to
    files: tuple[FileEntry, ...]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass
class Lock:
    models: dict[str, LockedModel] = field(default_factory=dict)

    def get(self, repo: str) -> LockedModel | None:
        return self.models.get(repo)


def lock_path(root: Path | str) -> Path:
    return Path(root) / LOCK_FILE


def read_lock(root: Path | str) -> Lock:
    path = lock_path(root)
    try:
        data = tomllib.loads(read_text(path, what="model lock"))
    except FileNotFoundError:
        return Lock()
    except (OSError, TextFileError, tomllib.TOMLDecodeError) as exc:
        raise LockError(f"{path}: cannot read the model lock: {exc}",
                        fix=f"restore it from git (git checkout -- {LOCK_FILE}) or delete it and run inv prefetch") from exc
    try:
        models = {}
        for repo, entry in data.get("models", {}).items():
            files = tuple(FileEntry(path=f["path"], size=int(f["size"]), sha256=f.get("sha256"),
                                    git_blob=f.get("git_blob")) for f in entry.get("files", []))
            models[repo] = LockedModel(repo, entry["revision"], entry["commit"], files)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise LockError(f"{path}: malformed entry ({exc!r})",
                        fix="restore it from git or delete it and run inv prefetch") from exc
    return Lock(models)


def write_lock(root: Path | str, lock: Lock) -> Path:
    """Write atomically (temp file + rename): a crash never leaves half a lock."""
    path = lock_path(root)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(render_lock(lock), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # after a failed write (a full disk): no stray temp file
    return path


def render_lock(lock: Lock) -> str:
    """One line per file, models sorted by name: a model update is a small, readable diff."""
    out = [HEADER, f"version = {VERSION}\n"]
    for repo in sorted(lock.models):
        model = lock.models[repo]
        out.append(f"\n[models.{_s(repo)}]\n")
        out.append(f"revision = {_s(model.revision)}\ncommit = {_s(model.commit)}\n")
        out.append(f"size = {model.size}  # bytes, {len(model.files)} files\nfiles = [\n")
        for f in sorted(model.files, key=lambda f: f.path):
            parts = [f"path = {_s(f.path)}", f"size = {f.size}"]
            if f.sha256:
                parts.append(f"sha256 = {_s(f.sha256)}")
            if f.git_blob:
                parts.append(f"git_blob = {_s(f.git_blob)}")
            out.append("  { " + ", ".join(parts) + " },\n")
        out.append("]\n")
    return "".join(out)


def _s(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid TOML basic string (\uXXXX escapes included)


def pinned_revision(root: Path | str, repo: str) -> str | None:
    """The commit to start a server with (with HF_HUB_OFFLINE=1), or None when not pinned yet."""
    ref = parse_ref(repo)
    if ref.is_commit:
        return ref.revision
    locked = read_lock(root).get(ref.repo)
    return locked.commit if locked and locked.revision == ref.revision else None
