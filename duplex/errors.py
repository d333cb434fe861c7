"""The one error family duplex raises; only tasks.py turns these into exit codes."""

from __future__ import annotations

import errno
import os


class DuplexError(Exception):
    """A problem the user can act on: ``str(err)`` says what happened, ``fix`` what to do next."""

    exit_code = 1

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.fix = fix

    def render(self) -> str:
        text = str(self)
        return f"{text}\n  fix: {self.fix}" if self.fix else text


class StackError(DuplexError):
    """The stack file is missing or invalid; ``problems`` lists one line per problem."""

    def __init__(self, path, problems: list[str], fix: str | None = None):
        self.path = path
        self.problems = problems
        head = f"{path}: {len(problems)} problem{'s' if len(problems) != 1 else ''} in the stack file"
        super().__init__(head + "".join(f"\n  - {p}" for p in problems), fix)


class PlanError(DuplexError):
    """The requested run cannot be planned (unknown service, mode not allowed, ...)."""


class EnvError(DuplexError):
    """A pinned environment is missing, stale or cannot be built."""


class RunError(DuplexError):
    """A service failed to build, start or become healthy."""


class EngineError(DuplexError):
    """The Docker engine is unreachable or refused a request."""


class DiskError(DuplexError):
    """A write the disk refused (full, over quota, read-only, not ours), wherever it happened."""


def disk_error(exc: BaseException | None) -> DiskError | None:
    """The file-system failure behind an exception (its chain included), as one clear line with
    the fix, or None when it is not one. The CLI's last resort: setup, prefetch and the run state
    say more where they know the step."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            where = exc.filename or "a file"
            folder = os.path.dirname(str(where)) or "."
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                return DiskError(f"cannot write {where}: the disk is full; nothing half-written was kept",
                                 fix=f"free space on the disk that holds {folder} (`df -h {folder}`), then run again")
            if exc.errno == errno.EROFS:
                return DiskError(f"cannot write {where}: the file system is read-only",
                                 fix="remount it read-write, or work from a project on a writable disk")
            return DiskError(f"cannot write {where}: permission denied",
                             fix=f"make {folder} writable by you (`ls -ld {folder}`), then run again")
        exc = exc.__cause__ or exc.__context__
    return None
