"""Download the files a plan lacks, concurrently, each checked against the hub's size and hash."""

from __future__ import annotations

import os
import shutil
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path

from .cache import digest_matches, discard, repo_folder
from .errors import CorruptFileError, DiskFullError
from .hub import Hub, file_bar
from .lock import FileEntry
from .progress import Progress, human


class _Stopped(BaseException):  # not an Exception: no handler on the way may swallow it
    """Raised inside a download's progress callback to abandon it (another file failed, Ctrl-C)."""


def fetch_files(hub: Hub, hub_cache: Path, jobs: list[tuple[str, str, FileEntry]], progress: Progress,
                max_workers: int = 8) -> list[tuple[str, FileEntry]]:
    """Fetch (repo, commit, entry) jobs, largest first; return what was downloaded.

    A failure (or Ctrl-C) stops the other downloads at their next chunk: huggingface_hub then
    deletes their temporary files, so nothing half-written is ever left under a real name.
    """
    stop = threading.Event()
    done: list[tuple[str, FileEntry]] = []
    jobs = sorted(jobs, key=lambda job: -job[2].size)

    def one(repo: str, commit: str, entry: FileEntry) -> None:
        if stop.is_set():
            return
        discard(hub_cache, repo, commit, entry)  # a dangling link or a damaged blob goes first
        progress.file_started(repo, entry)

        def on_bytes(n: int) -> None:
            if stop.is_set():
                raise _Stopped()
            progress.advance(repo, entry, n)

        try:
            path = hub.download(repo, commit, entry, hub_cache, bar=file_bar(on_bytes))
        except DiskFullError as err:
            got = set(done)
            raise _filled(hub_cache, repo, entry, [j[2] for j in jobs if (j[0], j[2]) not in got]) from err
        if path.stat().st_size != entry.size or not digest_matches(path, entry):
            discard(hub_cache, repo, commit, entry)
            raise CorruptFileError(
                f"{repo}/{entry.path} at {commit[:12]}: the downloaded file does not match the size "
                f"and hash the hub declared; it was removed",
                fix="rerun `inv prefetch`; if it happens again, the mirror (HF_ENDPOINT) serves damaged files")
        progress.file_done(repo, entry)
        done.append((repo, entry))

    progress.start(sum(job[2].size for job in jobs), len(jobs))
    pool = ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="prefetch")
    try:
        futures = [pool.submit(one, *job) for job in jobs]
        wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f.done() and f.exception() is not None), None)
        if failed is not None:
            stop.set()
            wait(futures)
            errors = [f.exception() for f in futures if f.exception() is not None]
            raise next((e for e in errors if not isinstance(e, _Stopped)), errors[0])
    except BaseException:
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        progress.finish()
    return done


def _filled(hub_cache: Path, repo: str, entry: FileEntry, left: list[FileEntry]) -> DiskFullError:
    """The disk filled up mid-download. huggingface_hub deletes its own temporary file; older
    releases kept `<etag>.incomplete` to resume from, which would hold the space: drop it too."""
    etag = entry.sha256 or entry.git_blob
    if etag:
        (repo_folder(hub_cache, repo) / "blobs" / f"{etag}.incomplete").unlink(missing_ok=True)
    try:
        free = f"{human(shutil.disk_usage(hub_cache).free)} free now"
        block = os.statvfs(hub_cache).f_frsize or 4096
    except OSError:
        free, block = "free space unknown", 4096
    need = sum(-(-f.size // block) * block for f in left)  # each file takes whole blocks on disk
    return DiskFullError(
        f"the disk filled up while downloading {repo}/{entry.path} ({human(entry.size)}) into "
        f"{hub_cache} ({free}); the partial file was removed and models.lock is unchanged",
        fix=f"free at least {human(need)} there (something else may be writing to that disk), or "
            f"point HF_HOME (or HF_HUB_CACHE) at a larger disk; then rerun `inv prefetch`: the files "
            f"already downloaded are kept")
