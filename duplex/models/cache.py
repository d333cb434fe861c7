"""What the shared Hugging Face cache holds for a pinned commit, read from its documented layout.

    <hub cache>/models--ORG--NAME/
        refs/<branch or tag>          the commit it last resolved to
        snapshots/<commit>/<path>     a symlink to ../../blobs/<etag> (a copy where symlinks fail)
        blobs/<etag>                  the content; `*.incomplete` while a download is in flight

huggingface_hub writes a blob under a temporary name and renames it when whole, so a file that
exists is never a half download; it can still be damaged later (a disk error, a hand edit), which
is what the size check (always) and the hash check (`hashes=True`) catch.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .lock import FileEntry, LockedModel


def hub_cache_dir(hf_home: str | Path, hub_cache: str | Path | None = None) -> Path:
    """HF_HUB_CACHE when set apart, else <HF_HOME>/hub (as huggingface_hub resolves it)."""
    return Path(hub_cache).expanduser() if hub_cache else Path(hf_home).expanduser() / "hub"


def repo_folder(hub_cache: Path, repo: str) -> Path:
    return Path(hub_cache) / ("models--" + repo.replace("/", "--"))


def snapshot_dir(hub_cache: Path, repo: str, commit: str) -> Path:
    return repo_folder(hub_cache, repo) / "snapshots" / commit


@dataclass
class SnapshotState:
    repo: str
    commit: str
    path: Path
    present: list[FileEntry] = field(default_factory=list)
    missing: list[FileEntry] = field(default_factory=list)  # absent, or a link to a deleted blob
    corrupt: list[FileEntry] = field(default_factory=list)  # wrong size, or wrong hash when checked
    linkable: list[FileEntry] = field(default_factory=list)  # missing here, but its blob is cached

    @property
    def complete(self) -> bool:
        return not self.missing and not self.corrupt

    @property
    def to_fetch(self) -> list[FileEntry]:
        """What must come from the hub: missing files whose content is not cached, and damaged ones."""
        return [f for f in self.missing if f not in self.linkable] + self.corrupt


def check_snapshot(hub_cache: Path, model: LockedModel, *, hashes: bool = False) -> SnapshotState:
    """Compare the cached snapshot of `model.commit` with the lock: sizes always, hashes on request."""
    base = snapshot_dir(hub_cache, model.repo, model.commit)
    state = SnapshotState(model.repo, model.commit, base)
    for entry in model.files:
        path = base / entry.path
        try:
            size = path.stat().st_size  # follows the link: a deleted blob reads as missing
        except OSError:
            state.missing.append(entry)
            if cached_blob(hub_cache, model.repo, entry) is not None:
                state.linkable.append(entry)
            continue
        if size != entry.size or (hashes and not digest_matches(path, entry)):
            state.corrupt.append(entry)
        else:
            state.present.append(entry)
    return state


def digest_matches(path: Path, entry: FileEntry) -> bool:
    """True when the file's content is what the hub declared (sha256, else git blob id)."""
    if entry.sha256:
        return file_sha256(path) == entry.sha256
    if entry.git_blob:
        return git_blob_id(path) == entry.git_blob
    return True  # nothing declared to compare with: the size check is all there is


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def git_blob_id(path: Path) -> str:
    """The id git (and the hub's tree listing) gives a non-LFS file: sha1 of a header + content."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as src:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def discard(hub_cache: Path, repo: str, commit: str, entry: FileEntry) -> None:
    """Drop a missing or damaged file (its link and, when damaged, its blob) so it is fetched anew."""
    link = snapshot_dir(hub_cache, repo, commit) / entry.path
    blobs = (repo_folder(hub_cache, repo) / "blobs").resolve()
    if link.is_symlink():
        target = link.resolve()
        if target.parent == blobs and target.exists():
            target.unlink()
    if link.is_symlink() or link.exists():
        link.unlink()


def cached_blob(hub_cache: Path, repo: str, entry: FileEntry) -> Path | None:
    """The blob holding this content, when another commit already brought it (blobs are named by
    etag: the sha256 for LFS files, the git blob id for the others)."""
    name = entry.sha256 or entry.git_blob
    blob = repo_folder(hub_cache, repo) / "blobs" / name if name else None
    try:
        return blob if blob is not None and blob.stat().st_size == entry.size else None
    except OSError:
        return None


def link_blob(hub_cache: Path, repo: str, commit: str, entry: FileEntry) -> None:
    """Put a cached blob into a snapshot without the hub, as huggingface_hub does (relative link)."""
    blob = cached_blob(hub_cache, repo, entry)
    assert blob is not None, entry
    link = snapshot_dir(hub_cache, repo, commit) / entry.path
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    try:
        link.symlink_to(os.path.relpath(blob, link.parent))
    except OSError:  # no symlinks (some Windows setups): huggingface_hub copies too
        shutil.copyfile(blob, link)


def cached_ref(hub_cache: Path, repo: str, revision: str) -> str | None:
    """The commit a branch or tag resolved to at the last download, from refs/ (no network)."""
    try:
        return (repo_folder(hub_cache, repo) / "refs" / revision).read_text().strip() or None
    except OSError:
        return None


def write_ref(hub_cache: Path, repo: str, revision: str, commit: str) -> None:
    """Record what a branch or tag resolved to, as huggingface_hub does (atomic replace)."""
    ref = repo_folder(hub_cache, repo) / "refs" / revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    tmp = ref.with_name(f".{ref.name}.{os.getpid()}.tmp")
    tmp.write_text(commit)
    os.replace(tmp, ref)
