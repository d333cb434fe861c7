"""The project sent to the remote folder over an open `Connection`: rsync when both sides have it,
else a tar stream through ssh (nothing to install on either side beyond ssh and tar).

What is sent: the files git tracks plus the untracked files it does not ignore (`git ls-files`),
or, outside a git checkout, every file; never `.duplex/`, `.git`, `.venv*` nor `__pycache__`.
Deletions touch only the synced set: a file that an earlier sync sent and that is gone here is
removed there; nothing the remote made itself (its `.duplex/`: envs, logs, run state) is ever
touched. What was sent (size and mtime per file) is kept in `.duplex/remote/<target>/sent.json`:
the tar fallback sends only what changed since, and a token written to the remote's
`.duplex/synced` tells whether that record still describes the remote folder (a folder wiped or
synced from elsewhere gets everything again).
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import DuplexError
from ..layout import Layout
from .ssh import Connection, SshError, classify, reason, target_key

METHODS = ("auto", "rsync", "tar")
SKIPPED = (".duplex", ".git", "__pycache__")  # names never sent, at any depth (and .venv*)
TOKEN_FILE = ".duplex/synced"  # in the remote folder: the token of the record that describes it
# Run by the remote's shell with the folder as $1: make it, say whether rsync is there and the
# token of the last sync (if any). Tagged lines: a login script's chatter on stdout is skipped.
PREPARE = ('mkdir -p -- "$1" && cd -- "$1" && { command -v rsync >/dev/null 2>&1 && echo duplex-rsync=yes; '
           f'printf "duplex-token=%s\\n" "$(cat {TOKEN_FILE} 2>/dev/null)"; }}')


@dataclass(frozen=True)
class SyncResult:
    method: str  # "rsync" or "tar"
    sent: tuple[str, ...]  # the files sent (rsync: those its quick check found changed)
    deleted: tuple[str, ...]  # the files removed there because they are gone here
    bytes: int  # the sent files' sizes (rsync's wire bytes may be fewer: it sends deltas)
    files: int  # the synced set's size
    seconds: float


def project_files(root: Path) -> list[str]:
    """The synced set: relative POSIX paths of regular files and symlinks, sorted."""
    root = Path(root)
    try:
        proc = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others",
                               "--exclude-standard"], capture_output=True, timeout=60)
        listed = proc.stdout.decode(errors="surrogateescape").split("\0") if proc.returncode == 0 else None
    except FileNotFoundError:  # no git here: the folder as it is
        listed = None
    if listed is None:
        listed = [str(Path(d, f).relative_to(root).as_posix()) for d, dirs, files in os.walk(root)
                  for f in files if not dirs.__setitem__(slice(None), [x for x in dirs if not _skipped(x)])]
    # ls-files lists a deleted but still tracked file, and a submodule as a folder: neither is sent
    return sorted(p for p in set(listed) if p and not any(_skipped(part) for part in p.split("/"))
                  and (os.path.islink(root / p) or os.path.isfile(root / p)))


def _sendable(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and not any(p in ("", ".", "..") or _skipped(p) for p in parts)


def _skipped(name: str) -> bool:
    return name in SKIPPED or name.startswith(".venv")


def stats(root: Path, files: list[str]) -> dict[str, list[int]]:
    """size and mtime (ns) per file; a file gone since the listing is left out."""
    found = {}
    for path in files:
        try:
            info = os.lstat(root / path)
        except FileNotFoundError:
            continue
        found[path] = [info.st_size, info.st_mtime_ns]
    return found


def sync(conn: Connection, *, method: str = "auto", say: Callable[[str], None] | None = None) -> SyncResult:
    """Send the project at `conn.root` to `conn.target`'s folder (`conn` open or not: ssh falls
    back to its own connection). `method`: auto (rsync when both sides have it), rsync or tar."""
    say = say or (lambda _line: None)
    if method not in METHODS:
        raise DuplexError(f"sync method {method!r}: expected one of {', '.join(METHODS)}")
    start = time.monotonic()
    root, target = conn.root, conn.target
    record_path = Layout(root).remote / target_key(target) / "sent.json"
    record = _read_record(record_path)
    files = project_files(root)
    now = stats(root, files)
    ready = conn.run(["sh", "-c", PREPARE, "sh", target.path], timeout=60).stdout.splitlines()
    remote_rsync = "duplex-rsync=yes" in ready
    remote_token = next((line.partition("=")[2].strip() for line in ready if line.startswith("duplex-token=")), "")
    local_rsync = shutil.which("rsync") is not None
    if method == "auto":
        method = "rsync" if local_rsync and remote_rsync else "tar"
        if method == "tar":
            say(f"sync: rsync is missing {'here' if not local_rsync else 'on ' + target.host}: sending with tar")
    elif method == "rsync" and not (local_rsync and remote_rsync):
        raise SshError(f"rsync is not installed {'here' if not local_rsync else 'on ' + target.host}",
                       fix="install rsync on both machines, or sync with the tar fallback (method tar)",
                       kind="missing-command")
    known = record["token"] and record["token"] == remote_token
    before = record["files"] if known else {}
    # only what a sync sent (a hand-edited record names nothing outside the synced set)
    gone = sorted(p for p in set(before) - set(now) if _sendable(p))
    size = sum(s for s, _ in now.values())
    say(f"sync: {len(now)} files ({_mb(size)}) to {target.address}:{target.path} with {method}"
        + ("" if known else " (first sync there)"))
    if gone:
        _delete(conn, gone)
    if method == "rsync":
        sent = _rsync(conn, list(now))
    else:
        sent = [p for p, st in now.items() if before.get(p) != st]
        _tar(conn, sent)
    token = record["token"] if known else secrets.token_hex(8)
    if not known:
        conn.run(["sh", "-c", f'cd -- "$1" && mkdir -p .duplex && printf %s "$2" > {TOKEN_FILE}',
                  "sh", target.path, token], timeout=60)
    _write_record(record_path, {"token": token, "method": method, "files": now})
    result = SyncResult(method=method, sent=tuple(sent), deleted=tuple(gone),
                        bytes=sum(now[p][0] for p in sent if p in now), files=len(now),
                        seconds=time.monotonic() - start)
    say(f"sync: sent {len(result.sent)} file{'s' if len(result.sent) != 1 else ''} ({_mb(result.bytes)}), "
        f"deleted {len(gone)}, {result.seconds:.2f} s")
    return result


def _delete(conn: Connection, gone: list[str]) -> None:
    """Remove `gone` (paths the last sync sent) in the remote folder, then the folders that left
    empty (rmdir leaves any other: what the remote made there stays)."""
    folders: set[str] = set()
    for path in gone:
        folder = str(Path(path).parent)
        while folder not in ("", "."):
            folders.add(folder)
            folder = str(Path(folder).parent)
    conn.run(["sh", "-c", 'cd -- "$1" && xargs -0 rm -f --', "sh", conn.target.path],
             input="\0".join(gone).encode(errors="surrogateescape"), timeout=120)
    if folders:
        deepest_first = sorted(folders, key=lambda d: -d.count("/"))
        conn.run(["sh", "-c", 'cd -- "$1" && xargs -0 rmdir -- 2>/dev/null; true', "sh", conn.target.path],
                 input="\0".join(deepest_first).encode(errors="surrogateescape"), timeout=120)


def _rsync(conn: Connection, files: list[str]) -> list[str]:
    """rsync the listed files (its quick check: size and mtime, nanoseconds where both sides
    can); the names it sent."""
    argv = ["rsync", "-lpt", "--from0", "--files-from=-", "--out-format=%n", *_rsync_window(),
            "-e", conn.rsync_shell(), "./", f"{_rsync_host(conn)}:{conn.target.path}/"]
    proc = subprocess.run(argv, cwd=conn.root, input="\0".join(files).encode(errors="surrogateescape"),
                          capture_output=True, timeout=3600)
    stderr = proc.stderr.decode(errors="replace")
    if proc.returncode not in (0, 24):  # 24: a file vanished while sent (an editor's swap file)
        if proc.returncode in (12, 255):  # ssh's own failure under rsync: the same one line
            error = classify(conn.target, 255, stderr, f"rsync to {conn.target.address}")
            if error:
                raise error
        raise SshError(f"rsync to {conn.target.address} failed (exit {proc.returncode}): "
                       f"{reason(stderr) or 'no message'}",
                       fix="run again; if it persists, sync with the tar fallback (method tar)", kind="command")
    return [line for line in proc.stdout.decode(errors="surrogateescape").splitlines()
            if line and not line.endswith("/")]


def _rsync_window() -> list[str]:
    """`--modify-window=-1` (compare nanoseconds: two saves within one second differ) where the
    local rsync knows it (3.1.3 and later; macOS's 2.6.9 does not)."""
    try:
        out = subprocess.run(["rsync", "--version"], capture_output=True, text=True, timeout=10).stdout
    except FileNotFoundError:
        return []
    found = re.search(r"version\s+(\d+)\.(\d+)\.(\d+)", out)
    return ["--modify-window=-1"] if found and tuple(map(int, found.groups())) >= (3, 1, 3) else []


def _rsync_host(conn: Connection) -> str:
    host = conn.target.host
    return f"[{host}]" if ":" in host else host


def _tar(conn: Connection, files: list[str]) -> None:
    """Stream `files` as one tar archive into `tar -x` in the remote folder."""
    if not files:
        return
    # stderr to a file: a pipe nobody reads while the archive is written could fill and stall both
    with tempfile.TemporaryFile() as err:
        proc = conn.popen(["sh", "-c", 'cd -- "$1" && exec tar --no-same-owner -xf -', "sh", conn.target.path],
                          stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        try:
            with tarfile.open(fileobj=proc.stdin, mode="w|", format=tarfile.PAX_FORMAT) as archive:
                for path in files:
                    _add(archive, conn.root, path)
            proc.stdin.close()
        except BrokenPipeError:  # the remote end stopped reading: its exit status and message say why
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass  # what was buffered has nowhere to go
        proc.wait()
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    conn.raise_for(["tar", "-xf", "-"], proc.returncode, stderr)


def _add(archive: tarfile.TarFile, root: Path, path: str) -> None:
    """One file into the archive, read whole first: a file edited while it is sent goes in as it
    was read (its newer mtime sends it again next time), never as a torn entry."""
    full = root / path
    try:
        info = archive.gettarinfo(str(full), arcname=path)
        data = b"" if info.issym() else full.read_bytes()
    except FileNotFoundError:
        return  # deleted since the listing: the next sync removes it there
    if info.isreg():
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    else:
        archive.addfile(info)


def _read_record(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("files"), dict):
            return {"token": str(data.get("token") or ""), "files": data["files"]}
    except (OSError, ValueError):
        pass  # none yet, or unreadable: everything is sent again
    return {"token": "", "files": {}}


def _write_record(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(record), encoding="utf-8")
    os.replace(partial, path)


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"
