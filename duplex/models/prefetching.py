"""`inv prefetch`: plan (lock, cache, hub) -> check access and disk -> show -> download -> verify -> lock.

A model pinned in models.lock whose files are all in the cache needs no network at all: the lock
names the commit and every file's size, so a re-run reads only the local disk. The hub is asked
only for what is new (a repo not in the lock, a changed revision, --update) or missing.
"""

from __future__ import annotations

import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from ..machine import hf_offline
from .cache import cached_ref, check_snapshot, hub_cache_dir, link_blob, snapshot_dir, write_ref
from .errors import CorruptFileError, DiskFullError, HubUnreachableError, is_disk_full
from .fetch import fetch_files
from .hub import DISK_FIX, Hub, endpoint_from, token_source
from .lock import Lock, LockedModel, lock_path, read_lock, render_lock, write_lock
from .progress import NullProgress, Progress, human
from .refs import ModelRef, parse_ref, parse_refs
from .report import ModelPlan, PrefetchReport


def _free_bytes(path: Path) -> int:
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def prefetch(root: Path | str, repos: list[str], *, hf_home: str | Path, token_present: bool,
             progress: Progress | None = None, dry_run: bool = False, update: bool = False,
             verify: bool = False, hub_cache: str | Path | None = None, endpoint: str | None = None,
             disk_free: Callable[[Path], int] | None = None, max_workers: int = 8,
             hub: Hub | None = None, clock: Callable[[], float] = time.monotonic) -> PrefetchReport:
    """Bring `repos` (ORG/NAME[@REV]) into the shared cache, pinned in <root>/models.lock."""
    started = clock()
    progress = progress or NullProgress()
    cache = hub_cache_dir(hf_home, hub_cache)
    lock = read_lock(root)
    if hub is None:  # huggingface_hub sends whatever token it finds: name that one in the advice
        source = token_source(root) or ("HF_TOKEN" if token_present else None)
        hub = Hub(endpoint or endpoint_from(), source is not None, source)
    refs = parse_refs(repos)

    # 1. Plan: from the lock when pinned (no network), else resolve on the hub.
    plans: dict[str, ModelPlan] = {}
    models: dict[str, LockedModel] = {}
    unresolved: list[ModelRef] = []
    for ref in refs:
        locked = lock.get(ref.repo)
        if locked and locked.revision == ref.revision and not update:
            models[ref.repo] = locked
            plans[ref.repo] = _plan(cache, locked, "lock", verify)
        else:
            unresolved.append(ref)
    need_hub = bool(unresolved) or any(p.fetch for p in plans.values())
    if need_hub and hf_offline(os.environ):
        raise HubUnreachableError("HF_HUB_OFFLINE=1 is set, and "
                                  + _needs(unresolved, plans) + " need the hub",
                                  fix="unset HF_HUB_OFFLINE for `inv prefetch` (servers keep it)"
                                      + _offline_hint(cache, lock, refs))
    if need_hub:
        hub.check_token()
    try:
        for ref in unresolved:
            models[ref.repo] = hub.resolve(ref)
            plans[ref.repo] = _plan(cache, models[ref.repo], "hub", verify)
        for plan in plans.values():
            if plan.source == "lock" and plan.fetch:
                hub.check_pin(plan.repo, plan.commit)
        # 2. Access: token and licence, for every model something must be fetched for.
        for ref in refs:
            if plans[ref.repo].fetch and not hub.check_access(ref):
                progress.note(f"{hub.shown} has no auth-check API (a mirror): access to "
                              f"{ref.repo} is taken from its listing")
    except HubUnreachableError as err:
        err.fix = (err.fix or "") + _offline_hint(cache, lock, refs)
        raise
    ordered = [plans[ref.repo] for ref in refs]

    # 3. Disk: refuse before the first byte rather than fail at 90 %.
    need = sum(p.fetch_bytes for p in ordered)
    free = (disk_free or _free_bytes)(cache) if need else None
    progress.plan(ordered, free=free)
    if need and free is not None and need > free:
        raise DiskFullError(f"not enough disk for the models: {human(need)} to download, "
                            f"{human(free)} free at {cache}",
                            fix=f"free at least {human(need - free)} there, or point HF_HOME (or "
                                "HF_HUB_CACHE) at a larger disk")
    report = PrefetchReport(ordered, str(cache), str(lock_path(root)), hub.shown, dry_run,
                            network=need_hub, seconds=0.0)
    if dry_run:
        report.seconds = clock() - started
        return report

    # 4. Link what other commits already brought, download the rest; 5. verify; record the pins.
    with _disk_guard(cache):
        for plan in ordered:
            for entry in plan.link:
                link_blob(cache, plan.repo, plan.commit, entry)
    jobs = [(p.repo, p.commit, f) for p in ordered for f in p.fetch]
    if jobs:
        fetch_files(hub, cache, jobs, progress, max_workers=max_workers)
        report.downloaded_bytes = need
    for plan in ordered:
        model = models[plan.repo]
        if plan.source == "hub" and not parse_ref(f"{plan.repo}@{plan.revision}").is_commit:
            with _disk_guard(cache):
                write_ref(cache, plan.repo, plan.revision, plan.commit)
        if plan.fetch or plan.source == "hub":  # links alone need no hub
            hub.seal(plan.repo, plan.commit, cache)
        state = check_snapshot(cache, model)
        if not state.complete:
            raise CorruptFileError(f"{plan.repo} at {plan.commit[:12]} is still incomplete after the "
                                   f"download: {', '.join(f.path for f in state.to_fetch)}",
                                   fix="rerun `inv prefetch`")
        plan.status = ("repaired" if plan.damaged or (plan.fetch and plan.source == "lock")
                       else "downloaded" if plan.fetch else "linked" if plan.link else "cached")
        plan.snapshot = str(state.path)
        lock.models[plan.repo] = model
    if render_lock(lock) != _current_text(root):
        with _disk_guard(lock_path(root)):
            write_lock(root, lock)
    report.notes = list(getattr(progress, "notes", []))
    report.seconds = clock() - started
    return report


@contextmanager
def _disk_guard(where: Path):
    """Our own writes (links, refs, the lock) on a full disk end as DiskFullError, not an OSError."""
    try:
        yield
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        raise DiskFullError(f"the disk filled up while writing to {where}", fix=DISK_FIX) from exc


def _plan(cache: Path, model: LockedModel, source: str, verify: bool) -> ModelPlan:
    state = check_snapshot(cache, model, hashes=verify)
    return ModelPlan(model.repo, model.revision, model.commit, model.size, len(model.files),
                     fetch=state.to_fetch, link=state.linkable, damaged=[f.path for f in state.corrupt], source=source,
                     status="cached" if state.complete else "planned", snapshot=str(state.path))


def _current_text(root: Path | str) -> str | None:
    try:
        return lock_path(root).read_text(encoding="utf-8")
    except OSError:
        return None


def _needs(unresolved: list[ModelRef], plans: dict[str, ModelPlan]) -> str:
    names = [str(r) for r in unresolved] + [p.repo for p in plans.values() if p.fetch]
    return ", ".join(names)


def _offline_hint(cache: Path, lock: Lock, refs: list[ModelRef]) -> str:
    """What the cache can still do without the hub: say it, never use it silently."""
    hints = []
    for ref in refs:
        locked = lock.get(ref.repo)
        if locked and check_snapshot(cache, locked).complete:
            hints.append(f"{ref.repo} is cached at its pinned commit {locked.commit[:12]}, so servers "
                         "can still start offline (HF_HUB_OFFLINE=1)")
        elif (commit := cached_ref(cache, ref.repo, ref.revision)) and snapshot_dir(cache, ref.repo, commit).is_dir():
            hints.append(f"the cache has {ref.repo} at {commit[:12]} from an earlier download, "
                         "but it is not pinned in models.lock")
    return "".join(f"; {h}" for h in hints)


def missing(root: Path | str, repos: list[str], hf_home: str | Path,
            hub_cache: str | Path | None = None) -> list[str]:
    """Repos not pinned in the lock, or not wholly in the cache at their pinned commit (disk only)."""
    lock = read_lock(root)
    cache = hub_cache_dir(hf_home, hub_cache)
    out = []
    for text in repos:
        ref = parse_ref(text)
        locked = lock.get(ref.repo)
        if not (locked and locked.revision == ref.revision and check_snapshot(cache, locked).complete):
            out.append(text)
    return out


def prefetch_project(project, repos: list[str], **options) -> PrefetchReport:
    """`inv prefetch` for a project: into the shared cache this machine's HF_HOME / HF_HUB_CACHE
    name (no GPU probe needed), with the token the project loaded. `options`: prefetch's."""
    machine = project.machine(gpus=0)
    return prefetch(project.root, repos, hf_home=machine.hf_home, hub_cache=machine.hf_hub_cache,
                    token_present=bool(os.environ.get("HF_TOKEN")), **options)
