"""The model errors: each says what went wrong and what to do next, and never shows a token."""

from __future__ import annotations

from ..errors import DuplexError


class ModelError(DuplexError):
    """A model could not be planned, fetched or verified."""


class ModelRefError(ModelError):
    """A repo name that is not ORG/NAME[@REVISION]."""


class ModelNotFoundError(ModelError):
    """The repo, or the revision inside it, does not exist (or the token cannot see a private repo)."""


class GatedModelError(ModelError):
    """The repo exists but its licence has not been accepted by the token's account."""


class TokenRejectedError(ModelError):
    """The hub refused the token itself (invalid, expired or revoked)."""


class HubUnreachableError(ModelError):
    """No answer from the hub (network down, wrong HF_ENDPOINT, HF_HUB_OFFLINE=1)."""


class DiskFullError(ModelError):
    """Not enough free space for what must be downloaded; refused before downloading anything."""


class CorruptFileError(ModelError):
    """A file's size or hash does not match what the hub declared for the pinned commit."""


class LockError(ModelError):
    """models.lock cannot be read."""
