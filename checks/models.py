"""models: each model in the shared cache or not, and how big it is (local files, hub metadata, or a memo)."""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from duplex.host import hf_home
from duplex.vram import WEIGHTS  # .nemo archives included

from . import Context, Result, fail, passed, warn
from .hub import Answer, split_repo

DTYPE_BYTES = {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "BF16": 2, "F16": 2, "I16": 2, "F8_E4M3": 1,
               "F8_E5M2": 1, "I8": 1, "U8": 1, "BOOL": 1}
MEMO_DAYS = 7
GIB = 1024 ** 3


@dataclass(frozen=True)
class ModelFacts:
    repo: str
    cached: bool
    download_bytes: int | None = None  # the whole repo, what a snapshot download fetches
    weights_bytes: int | None = None  # the weights alone: what must fit in GPU memory
    source: str = "unknown"  # where the sizes came from: cache | hub | memo | unknown
    snapshot: str | None = None


def hub_cache(environ: dict[str, str]) -> Path:
    return Path(environ.get("HF_HUB_CACHE") or Path(hf_home(environ)) / "hub").expanduser()


def snapshot_dir(cache: Path, repo: str) -> Path | None:
    """The complete-looking snapshot for the repo's revision (refs/<rev> or a commit), else None."""
    name, revision = split_repo(repo)
    folder = cache / f"models--{name.replace('/', '--')}"
    commit = revision if revision and re.fullmatch(r"[0-9a-f]{40}", revision) else None
    if commit is None:
        try:
            commit = (folder / "refs" / (revision or "main")).read_text().strip()
        except OSError:
            commit = None
    candidates = [folder / "snapshots" / commit] if commit else []
    if not candidates and revision is None and (folder / "snapshots").is_dir():
        candidates = sorted((folder / "snapshots").iterdir())  # a cache written without refs
    for snap in candidates:
        if snap.is_dir() and any(snap.iterdir()):
            return snap
    return None


def local_sizes(snapshot: Path) -> tuple[int, int]:
    """(all files, weights) in bytes, following the cache's symlinks to blobs."""
    total = weights = 0
    for path in snapshot.rglob("*"):
        try:
            if not path.is_file():
                continue
            size = path.stat().st_size
        except OSError:
            continue
        total += size
        weights += size if path.name.endswith(WEIGHTS) else 0
    return total, weights


def hub_sizes(info: dict) -> tuple[int | None, int | None]:
    """(download, weights) from a model-info reply with blobs=true; weights prefer safetensors metadata."""
    siblings = info.get("siblings") or []
    sizes = [s.get("size") for s in siblings]
    download = sum(sizes) if siblings and all(isinstance(x, int) for x in sizes) else None
    weights = None
    params = (info.get("safetensors") or {}).get("parameters") or {}
    if params:
        weights = sum(n * DTYPE_BYTES.get(dtype.upper(), 2) for dtype, n in params.items())
    else:
        for kind in WEIGHTS:  # safetensors first; .bin only when a repo has no safetensors
            found = [s.get("size") or 0 for s in siblings if s.get("rfilename", "").endswith(kind)]
            if found:
                weights = sum(found)
                break
    return download, weights


def gather(repos: list[str], environ: dict[str, str], infos: dict[str, Answer], memo: Path) -> dict[str, ModelFacts]:
    """Cache state and sizes for each repo: local files first, then the hub's answer, then the memo."""
    cache = hub_cache(environ)
    remembered = _read_memo(memo)
    out: dict[str, ModelFacts] = {}
    for repo in repos:
        snap = snapshot_dir(cache, repo)
        if snap is not None:
            total, weights = local_sizes(snap)
            out[repo] = ModelFacts(repo, True, total, weights or None, "cache", snap.name)
            continue
        info = infos.get(repo)
        if info is not None and info.status == 200 and info.data:
            download, weights = hub_sizes(info.data)
            if download or weights:
                out[repo] = ModelFacts(repo, False, download, weights, "hub")
                continue
        old = remembered.get(repo)
        if old and time.time() - old.get("at", 0) < MEMO_DAYS * 86400:
            out[repo] = ModelFacts(repo, False, old.get("download_bytes"), old.get("weights_bytes"), "memo")
        else:
            out[repo] = ModelFacts(repo, False)
    _write_memo(memo, remembered, out)
    return out


def _read_memo(memo: Path) -> dict:
    try:
        data = json.loads(memo.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_memo(memo: Path, old: dict, facts: dict[str, ModelFacts]) -> None:
    fresh = {r: {"download_bytes": f.download_bytes, "weights_bytes": f.weights_bytes, "at": time.time()}
             for r, f in facts.items() if f.source in ("cache", "hub")}
    if not fresh:
        return
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**old, **fresh}, indent=1), encoding="utf-8")
        os.replace(tmp, memo)
    except OSError:
        pass  # a read-only checkout: the memo is only a speed-up


def size_text(n: int | None) -> str:
    return "unknown size" if n is None else f"{n / GIB:.1f} GiB"


def check(ctx: Context, facts: dict[str, ModelFacts]) -> list[Result]:
    """In preflight a missing model is a warning (prefetch comes next); before a run it is a failure."""
    out = []
    for repo, users in ctx.models().items():
        fact = facts.get(repo) or ModelFacts(repo, False)
        name = f"models.{repo}"
        if fact.cached:
            out.append(passed(name, f"in the shared cache ({size_text(fact.download_bytes)}, "
                                    f"snapshot {fact.snapshot[:12] if fact.snapshot else '?'})"))
            continue
        fix = f"inv prefetch --repo {repo}"
        what = f"not in the shared cache ({hub_cache(ctx.environ)}) yet; used by {', '.join(users)}; " \
               f"{size_text(fact.download_bytes)} to download"
        if ctx.offline:
            out.append(fail(name, what + ", and HF_HUB_OFFLINE is set", f"unset HF_HUB_OFFLINE, then {fix}"))
        elif ctx.for_run:
            out.append(fail(name, what, fix))
        else:
            out.append(warn(name, what, fix))
    return out

