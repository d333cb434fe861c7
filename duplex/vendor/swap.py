"""Atomic replacement of the vendored tree, with a journal so a killed update finishes on the next run.

The new tree is complete (patched, MOSHI_VERSION written) before anything live is touched. Then a
journal names the paths and the identity (sha256 of MOSHI_VERSION) of the new and the old tree, and
the trees change places: in one atomic `renameat2(RENAME_EXCHANGE)` where Linux offers it, else in
two renames. `settle()` finishes from any point - it is both the last step of every swap and the
recovery run first by every vendor command - so third_party/moshi is always the old tree or the new
one, never a mix; a kill between the two fallback renames is rolled forward on the next command.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import shutil
import signal
from pathlib import Path

from ..layout import Layout
from .tree import RECORD

try:
    import fcntl
except ImportError:  # Windows: no advisory locks (each user below says what it does then)
    fcntl = None

JOURNAL = "journal.json"


def state_dir(root: Path) -> Path:
    path = Layout(root).vendor
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def locked(root: Path):
    """One vendor operation at a time; released by the kernel even when the process is killed."""
    with open(state_dir(root) / ".lock", "a+") as handle:
        if fcntl is None:  # Windows: no advisory locks
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ident(tree: Path) -> str:
    record = Path(tree) / RECORD
    return hashlib.sha256(record.read_bytes()).hexdigest() if record.is_file() else "no-record"


def exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one atomic step (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    if os.environ.get("DUPLEX_VENDOR_NO_EXCHANGE"):  # tests: exercise the two-rename path
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange) == 0


def commit(root: Path, target: Path, new: Path, snapshot: Path) -> None:
    """Make ``new`` the live tree at ``target`` and keep the tree it replaces at ``snapshot``."""
    state = state_dir(root)
    journal = {"target": str(target), "new": str(new), "snapshot": str(snapshot),
               "aside": str(state / "aside"), "trash": str(state / "trash"),
               "new_id": ident(new), "old_id": ident(target) if target.is_dir() else None}
    target.parent.mkdir(parents=True, exist_ok=True)
    _write_journal(state, journal)
    _crash_point("journal")
    if target.is_dir() and exchange(new, target):
        _fsync_dir(target.parent)
        _crash_point("exchanged")
    settle(root)


def settle(root: Path) -> bool:
    """Finish a swap the journal describes (roll forward); True when there was one to finish."""
    state = state_dir(root)
    path = state / JOURNAL
    if not path.is_file():
        return False
    try:
        j = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:  # killed while writing the journal: nothing was moved yet
        path.unlink()
        return False
    target, snapshot, aside, trash = (Path(j[k]) for k in ("target", "snapshot", "aside", "trash"))
    places = [target, Path(j["new"]), aside, snapshot]
    where = {}
    for place in places:
        if place.is_dir():
            where.setdefault(ident(place), place)
    new = where.get(j["new_id"])
    old = where.get(j["old_id"]) if j["old_id"] else None
    if new is None:  # the new tree never got out of staging and is gone: make sure the old one is live
        if old is not None and old != target and not target.exists():
            os.rename(old, target)
        path.unlink()
        return False
    if new is not None and new != target:
        if target.is_dir():
            os.rename(target, aside)
            old = aside
        _crash_point("aside")
        os.rename(new, target)
        _fsync_dir(target.parent)
    if old is not None and old != snapshot and old.is_dir():
        if snapshot.is_dir():
            os.rename(snapshot, trash)
        os.rename(old, snapshot)
    shutil.rmtree(trash, ignore_errors=True)
    path.unlink()
    return True


def clean_staging(root: Path) -> None:
    """Remove work folders a killed run left behind (call with the lock held, after settle)."""
    for stale in state_dir(root).glob("staging-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _write_journal(state: Path, journal: dict) -> None:
    tmp = state / (JOURNAL + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(journal, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, state / JOURNAL)
    _fsync_dir(state)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _crash_point(name: str) -> None:
    """Tests only: DUPLEX_VENDOR_CRASH_AT=<name> kills this process right there (SIGKILL)."""
    if os.environ.get("DUPLEX_VENDOR_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
