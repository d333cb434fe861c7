"""Find a model on disk: a local path, or a Hugging Face repo id resolved offline from the shared cache."""

from __future__ import annotations

import os
import re
from pathlib import Path

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelMissing(Exception):
    """The model is not on disk; the message says how to get it there."""


def looks_like_repo_id(spec: str) -> bool:
    return bool(_REPO_ID.fullmatch(spec)) and not spec.startswith((".", "/", "~"))


def resolve_model(spec: str, revision: str | None = None) -> Path:
    """Return the local directory (or file) holding the model named by `spec`.

    The cases, in order:
    - an existing path (directory or file) is used as is;
    - something shaped like a path that does not exist is an error naming it;
    - `ORG/NAME` is looked up in the Hugging Face cache (HF_HOME / HF_HUB_CACHE) without any network
      call; a cache miss is an error that names `inv prefetch`, the command that fills the cache.
    """
    path = Path(spec).expanduser()
    if path.exists():
        return path.resolve()
    if not looks_like_repo_id(spec):
        raise ModelMissing(f"ASR_MODEL={spec!r} is neither an existing path nor a Hugging Face "
                           "repo id (ORG/NAME)")
    return _from_hf_cache(spec, revision)


def _from_hf_cache(repo: str, revision: str | None) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise ModelMissing("huggingface_hub is not installed in this env; run `inv setup`") from exc
    where = f"{repo}@{revision}" if revision else repo
    try:
        return Path(snapshot_download(repo, revision=revision, local_files_only=True))
    except Exception as exc:  # LocalEntryNotFoundError, a partial snapshot, a bad revision ...
        raise ModelMissing(
            f"model {where} is not in the Hugging Face cache at {hub_cache()}: "
            f"run `inv prefetch --repo {repo}` on the host (it fills the cache this server reads, "
            f"offline) or set ASR_MODEL to a local directory ({type(exc).__name__}: {exc})"
        ) from exc


def hub_cache() -> str:
    """Where huggingface_hub looks, honouring HF_HUB_CACHE, then HF_HOME."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface")
    return os.path.join(home, "hub")


def find_file(root: Path, pattern: str) -> Path | None:
    """The first file under `root` (or `root` itself) matching a glob pattern."""
    if root.is_file():
        return root if root.match(pattern) else None
    return next(iter(sorted(root.rglob(pattern))), None)


def sphinx_files(root: Path) -> dict:
    """Decoder options for a pocketsphinx model dir: acoustic model dir, language model, dictionary."""
    mdef = find_file(root, "mdef")
    lms = [p for p in sorted(root.rglob("*.lm.bin")) if "phone" not in p.name]  # not a phone LM
    lm, dic = (lms[0] if lms else None), find_file(root, "*.dict")
    if mdef is None or lm is None or dic is None:
        raise ModelMissing(f"{root} is not a pocketsphinx model dir: it needs an acoustic model "
                           "(a dir with mdef), a *.lm.bin language model and a *.dict dictionary")
    return {"hmm": str(mdef.parent), "lm": str(lm), "dict": str(dic)}
