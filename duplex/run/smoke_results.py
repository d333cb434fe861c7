"""What a smoke check speaks to (a Target) and what it found (a SmokeResult per row, a SmokeReport)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..plan import Health


@dataclass(frozen=True)
class Target:
    """One service to smoke: where it answers and which app it runs (from the plan's command)."""

    name: str
    mode: str
    url: str
    health: Health
    app: str | None = None
    state: str = "running"  # from `inv status`; anything else fails without being spoken to
    container: str | None = None  # its container's id, for checks that run inside it


@dataclass
class SmokeResult:
    name: str
    check: str
    status: str  # "pass" | "fail" | "skip"
    seconds: float
    reason: str
    detail: dict = field(default_factory=dict)


@dataclass
class SmokeReport:
    results: list[SmokeResult]

    @property
    def ok(self) -> bool:
        return not any(r.status == "fail" for r in self.results)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def as_dict(self) -> dict:
        return {"ok": self.ok, "results": [asdict(r) for r in self.results]}

    def lines(self) -> list[str]:
        out = [f"{r.status.upper():<4} {r.name:<10} {r.check:<11} {r.seconds:6.2f}s  {r.reason}"
               for r in self.results]
        passed = sum(r.status == "pass" for r in self.results)
        failed = sum(r.status == "fail" for r in self.results)
        out.append(f"smoke: {passed} passed, {failed} failed, {len(self.results) - passed - failed} skipped")
        return out
