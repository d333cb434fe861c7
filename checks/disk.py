"""disk: free space where the Hugging Face cache lives, against the models not yet cached."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import Context, Result, fail, passed, warn
from .models import GIB, ModelFacts, hub_cache, size_text


@dataclass(frozen=True)
class DiskFacts:
    path: str  # the cache folder (or its nearest existing parent, which is what gets measured)
    free: int | None  # bytes available to this user
    total: int | None = None
    error: str | None = None


def probe_disk(path: str | os.PathLike) -> DiskFacts:
    """statvfs of the folder, or of its nearest existing parent when it does not exist yet."""
    here = Path(path).expanduser()
    while not here.exists() and here != here.parent:
        here = here.parent
    try:
        st = os.statvfs(here)
    except OSError as exc:
        return DiskFacts(str(here), None, None, exc.strerror)
    return DiskFacts(str(here), st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize)


def margin(needed: int) -> int:
    """Room to keep beyond the download: 10 % of it, at least 1 GiB (temp files, logs, the next model)."""
    return max(needed // 10, GIB)


def check(ctx: Context, disk: DiskFacts, models: dict[str, ModelFacts]) -> Result:
    where = hub_cache(ctx.environ)
    if disk.free is None:
        return warn("disk", f"cannot measure free space at {disk.path} ({disk.error})",
                    f"check that {where} is on a mounted, readable filesystem, or set HF_HOME elsewhere")
    free = f"{size_text(disk.free)} free at {disk.path}"
    missing = [m for r, m in models.items() if not m.cached and r in ctx.models()]
    if not missing:
        return passed("disk", f"nothing to download; {free}")
    unknown = [m.repo for m in missing if m.download_bytes is None]
    needed = sum(m.download_bytes or 0 for m in missing)
    move = ("free space on that disk, or point the cache at a bigger one (export HF_HOME=/big/disk/huggingface, "
            "or HF_HUB_CACHE), then rerun")
    if needed > disk.free:
        return fail("disk", f"models not yet cached need {size_text(needed)}; only {free}", move)
    if unknown:
        return warn("disk", f"size of {', '.join(unknown)} unknown (the hub did not answer); "
                            f"{size_text(needed)} known to download; {free}",
                    "rerun where the hub is reachable (sizes are remembered), and keep room for the download")
    if needed + margin(needed) > disk.free:
        return warn("disk", f"models not yet cached need {size_text(needed)}; {free}: little room to spare",
                    move)
    return passed("disk", f"{size_text(needed)} to download; {free}")
