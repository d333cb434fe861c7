"""A copy of the shipped stack under another name, its envs linked to the real ones."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support.envs import ensure_env

ROOT = Path(__file__).resolve().parents[2]


def copy_stack(dest: Path, name: str, envs: tuple[str, ...] = ("asr", "frontend"),
               extra: tuple[str, ...] = ()) -> Path:
    """So tests and benchmarks can edit sources and run freely without touching a user's own run.
    `extra`: more paths the images need (the moshi image: third_party/moshi, duplex/standalone/wscheck.py)."""
    dest.mkdir(parents=True)
    for item in ("stack.toml", "servers", "envs", "dockerfiles", ".dockerignore", *extra):
        src = ROOT / item
        (dest / item).parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dest / item)
    text = (dest / "stack.toml").read_text().replace('name = "duplex"', f'name = "{name}"', 1)
    (dest / "stack.toml").write_text(text)
    (dest / ".duplex" / "envs").mkdir(parents=True)
    for env in envs:
        (dest / ".duplex" / "envs" / env).symlink_to(ensure_env(env).resolve())
    return dest


def copy_translate(dest: Path, weights: dict[str, tuple[str, int]] | None = None) -> Path:
    """The pieces the translation stack (examples/translate) names, copied; with `weights` ({repo:
    (file, bytes)}) a models.lock giving those sizes (GPU needs, without downloading). Returns the
    copy's stack file."""
    from duplex.models.lock import FileEntry, Lock, LockedModel, write_lock
    for item in ("servers", "envs", "dockerfiles", ".dockerignore", "examples/translate/stack.toml"):
        (dest / item).parent.mkdir(parents=True, exist_ok=True)
        copy = shutil.copytree if (ROOT / item).is_dir() else shutil.copy
        copy(ROOT / item, dest / item)
    if weights:
        write_lock(dest, Lock({repo: LockedModel(repo, "main", f"{i}" * 40, (FileEntry(name, size),))
                               for i, (repo, (name, size)) in enumerate(weights.items(), 1)}))
    return dest / "examples" / "translate" / "stack.toml"


def checkout_copy(dest: Path) -> Path:
    """The whole project as a user's clone of this checkout has it: what git tracks plus what it
    would add, as the working tree holds them (uncommitted edits included), nothing it ignores."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest
