"""Vendoring moshi: fetch a release, verify it, keep its package and licences, patch, swap atomically."""

from .errors import (
                     HashMismatchError,
                     PatchError,
                     UnknownReleaseError,
                     UnsafeArchiveError,
                     UnsafeSourceError,
                     VendorError,
)
from .reports import CheckReport, VendorReport
from .vendor import TARGET, check, rollback, vendor

__all__ = ["CheckReport", "HashMismatchError", "PatchError", "TARGET", "UnknownReleaseError",
           "UnsafeArchiveError", "UnsafeSourceError", "VendorError", "VendorReport", "check", "rollback", "vendor"]
