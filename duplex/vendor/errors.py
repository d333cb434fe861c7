"""Vendoring errors: each says what went wrong and what to do next (``fix``)."""

from __future__ import annotations

from ..errors import DuplexError


class VendorError(DuplexError):
    """Vendoring moshi failed; the vendored tree was left as it was."""


class UnknownReleaseError(VendorError, LookupError):
    """The tag names no release at the source (index, git remote, local archive)."""


class HashMismatchError(VendorError, ValueError):
    """A download's sha256 differs from the hash the index publishes (or a recorded commit moved)."""


class UnsafeArchiveError(VendorError, ValueError):
    """An archive member would land outside the extraction folder, or is a link or device file."""


class UnsafeSourceError(VendorError, ValueError):
    """A source folder (--from DIR, a git checkout) holds a link out of the tree or a special file."""


class PatchError(VendorError):
    """A patch in third_party/patches/moshi no longer applies; ``hunk`` names where."""

    def __init__(self, message: str, fix: str | None = None, *, patch: str = "", hunk: str = ""):
        super().__init__(message, fix)
        self.patch = patch
        self.hunk = hunk
