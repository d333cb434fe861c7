"""The model errors: each says what went wrong and what to do next, and never shows a token."""

from __future__ import annotations

import errno

from ..errors import DuplexError


class ModelError(DuplexError):
    """A model could not be planned, fetched or verified."""


class ModelRefError(ModelError):
    """A repo name that is not ORG/NAME[@REVISION]."""


class ModelNotFoundError(ModelError):
    """The repo, or the revision inside it, does not exist (or the token cannot see a private repo)."""


class PinGoneError(ModelNotFoundError):
    """models.lock pins a commit the hub no longer has (a force-pushed repo, or a wrong pin)."""


class GatedModelError(ModelError):
    """The repo exists but its licence has not been accepted by the token's account."""


class TokenRejectedError(ModelError):
    """The hub refused the token itself (invalid, expired or revoked)."""


class HubUnreachableError(ModelError):
    """No answer from the hub (network down, wrong HF_ENDPOINT, HF_HUB_OFFLINE=1)."""


class DiskFullError(ModelError):
    """Not enough free space: refused before the first byte, or the disk filled up during the
    download (another writer, or filesystem overhead the up-front check cannot see)."""


class CorruptFileError(ModelError):
    """A file's size or hash does not match what the hub declared for the pinned commit."""


class LockError(ModelError):
    """models.lock cannot be read."""


def is_disk_full(exc: BaseException | None) -> bool:
    """ENOSPC (or a quota: EDQUOT) anywhere in an exception's chain: libraries wrap OSErrors."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
