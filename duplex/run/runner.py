"""What a runner hands the supervisor for one started service, native or container."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol

if TYPE_CHECKING:
    from ..plan import ServicePlan

LineSink = Callable[[str, str], None]  # (service name, log line)


class Handle(Protocol):
    """One running service. Both runners implement it, so the supervisor treats them alike."""

    name: str
    ident: str  # "pid 1234" or "container 1a2b3c4d5e6f"

    def exit_code(self) -> int | None:
        """None while running, else the exit status."""

    def stop(self, grace: float) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; remove what was started. A handle may also
        have `terminate()` (SIGTERM now): the supervisor then signals a whole stop wave before it
        waits for each, so the wave drains together."""

    def tail(self, lines: int) -> list[str]:
        """The last log lines, for crash reports."""

    def record(self) -> dict:
        """What `inv stop`/`inv status` need after this process is gone (JSON-able)."""


class Runner(Protocol):
    def prepare(self, services: list[ServicePlan], progress: Callable[[str], None]) -> None:
        """Everything slow that can fail before anything starts (builds, env checks)."""

    def start(self, service: ServicePlan, sink: LineSink) -> Handle:
        """Start one service; its log lines go to `sink` and to its log file."""
