"""Hugging Face models, once, into the shared cache: pinned in models.lock, fetched by `inv prefetch`."""

from .errors import (CorruptFileError, DiskFullError, GatedModelError, HubUnreachableError, LockError,
                     ModelError, ModelNotFoundError, ModelRefError, TokenRejectedError)
from .lock import pinned_revision
from .prefetch import missing, prefetch, prefetch_project
from .progress import NullProgress, RichProgress
from .report import ModelPlan, PrefetchReport

__all__ = ["prefetch", "prefetch_project", "pinned_revision", "missing", "PrefetchReport", "ModelPlan", "NullProgress",
           "RichProgress", "ModelError", "ModelRefError", "ModelNotFoundError", "GatedModelError",
           "TokenRejectedError", "HubUnreachableError", "DiskFullError", "CorruptFileError", "LockError"]
