"""Hugging Face models, once, into the shared cache: pinned in models.lock, fetched by `inv prefetch`.

Names are imported on first use, so light readers (the plan's pins read models.lock) do not pay for
the download machinery (huggingface_hub, threads, progress bars).
"""

from importlib import import_module

_WHERE = {
    "prefetch": "prefetching", "prefetch_project": "prefetching", "missing": "prefetching", "pinned_revision": "lock",
    "PrefetchReport": "report", "ModelPlan": "report", "NullProgress": "progress", "RichProgress": "progress",
    **{name: "errors" for name in ("ModelError", "ModelRefError", "ModelNotFoundError", "GatedModelError",
                                   "TokenRejectedError", "HubUnreachableError", "DiskFullError",
                                   "CorruptFileError", "LockError", "PinGoneError")},
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
