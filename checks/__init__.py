"""Preflight checks: one module per concern, each a pure `check(...)` over probe data, returning Results."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from duplex.machine import hf_offline
from duplex.redact import strip_url

STATUSES = ("pass", "warn", "fail", "skip")


@dataclass(frozen=True)
class Result:
    """One finding. ``fix`` says what to do next and is required whenever the status is not pass."""

    name: str  # "ports.asr": the group, then what it is about
    status: str  # pass | warn | fail | skip
    detail: str
    fix: str | None = None

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {self.status!r}")
        if self.status != "pass" and not self.fix:
            raise ValueError(f"{self.name}: a {self.status} result needs a fix")

    @property
    def group(self) -> str:
        return self.name.split(".", 1)[0]

    def to_dict(self) -> dict:
        return {"name": self.name, "group": self.group, "status": self.status, "detail": self.detail,
                "fix": self.fix}


def passed(name: str, detail: str) -> Result:
    return Result(name, "pass", detail)


def warn(name: str, detail: str, fix: str) -> Result:
    return Result(name, "warn", detail, fix)


def fail(name: str, detail: str, fix: str) -> Result:
    return Result(name, "fail", detail, fix)


def skip(name: str, detail: str, fix: str = "nothing to do") -> Result:
    return Result(name, "skip", detail, fix)


@dataclass(frozen=True)
class Context:
    """What the checks know about the run: the stack, its plan for the chosen mode, the host's variables."""

    stack: object  # duplex.stack.Stack
    plan: object  # duplex.plan.Plan
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    for_run: bool = False  # `inv run` is about to start: a model missing from the cache fails

    @property
    def root(self) -> Path:
        return Path(self.plan.root)

    def services(self, mode: str | None = None) -> list:
        """Service plans in start order, optionally only those running in `mode`."""
        return [s for s in (self.plan.services[n] for n in self.plan.start_order) if mode in (None, s.mode)]

    def native_envs(self) -> list[str]:
        """Envs the host runs services from (native mode only), in order."""
        return list(dict.fromkeys(s.env for s in self.services("native") if s.env))

    def models(self) -> dict[str, list[str]]:
        """Hub repo -> the services in this run that use it."""
        out: dict[str, list[str]] = {}
        for svc in self.services():
            for repo in svc.models:
                out.setdefault(repo, []).append(svc.name)
        return out

    @property
    def offline(self) -> bool:
        return hf_offline(self.environ)

    @property
    def endpoint(self) -> str:
        """The hub as results name it: a `user:password@` inside HF_ENDPOINT is masked."""
        return strip_url((self.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/"))
