"""The one error family duplex raises; only tasks.py turns these into exit codes."""

from __future__ import annotations


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
