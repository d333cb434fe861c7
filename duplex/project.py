"""What every task starts from, in one place: the project's stack and root, its token, the models'
pinned commits, the machine's facts and the plan made from them.

A task (or a test, or a future dashboard) calls `Project.load()` and asks it for a plan instead
of assembling the pieces again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .envfile import use_project_secrets
from .host import probe_machine
from .images.lock import pins
from .layout import Layout
from .machine import Machine
from .models.lock import pinned_revision, read_lock
from .plan import Plan, known_services, plan, with_requirements
from .stack import Stack, load_stack
from .vram import Need, is_weights, need


@dataclass(frozen=True)
class Project:
    stack: Stack

    @classmethod
    def load(cls, path: Path | None = None) -> "Project":
        """Load and validate the stack, and put the project's saved Hugging Face token (`inv setup
        --hf-token`) into HF_TOKEN when the environment has none, for the hub client and services."""
        stack = load_stack(path)
        use_project_secrets(stack.root, stack.secret_names)
        return cls(stack)

    @property
    def root(self) -> Path:
        return self.stack.root

    def pins(self) -> dict[str, str]:
        """Each model's pinned commit from models.lock (written by `inv prefetch`)."""
        repos = {m for s in self.stack.services.values() for m in s.models}
        return {r: c for r in repos if (c := pinned_revision(self.root, r))}

    def machine(self, **facts) -> Machine:
        """This host's facts (`facts`: probe_machine's overrides, e.g. gpus=0 to skip NVML)."""
        return probe_machine(keep=self.stack.secret_names, stack=self.stack, **facts)

    def plan(self, machine: Machine | None = None, *, native: bool = False, services: list[str] | None = None,
             tls: bool | None = None, otlp: str | None = None, replicas: dict[str, int] | None = None) -> Plan:
        """`replicas`: --replicas, over the stack's `replicas` of each service."""
        return plan(self.stack, machine or self.machine(), native=native, services=services, pins=self.pins(),
                    tls=tls, otlp=otlp, needs=self.gpu_needs(), image_pins=self.image_pins(),
                    replicas=replicas or {})

    def image_pins(self) -> dict[str, str]:
        """Each base image's pinned digest from images.lock (`inv lock --images`, or the first run)."""
        return pins(self.root)

    def gpu_needs(self) -> dict[str, "Need"]:
        """Each GPU service's GPU memory need (duplex.vram): published figures, else the weights its
        models have in models.lock (written by `inv prefetch`) or in preflight's size memo, x 1.2."""
        try:
            lock = read_lock(self.root)
        except Exception:  # noqa: BLE001 - a broken models.lock is prefetch's to report; sizes then come from the memo
            lock = None
        try:
            memo = json.loads((Layout(self.root).cache / "model-sizes.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            memo = {}
        weights: dict[str, int | None] = {}
        for svc in self.stack.services.values():
            for repo in svc.models:
                locked = lock.get(repo.split("@")[0]) if lock else None
                if locked is not None:
                    weights[repo] = sum(f.size for f in locked.files if is_weights(f.path)) or None
                elif isinstance(memo.get(repo), dict):
                    weights[repo] = memo[repo].get("weights_bytes")
        return {name: need(svc.models, weights) for name, svc in self.stack.services.items()
                if svc.gpu != "none" and svc.models}

    def model_repos(self, services: list[str] | None = None) -> list[str]:
        """The hub repos of these services and what they require (default: every service's), once each."""
        names = with_requirements(self.stack, known_services(self.stack, services)) if services \
            else list(self.stack.services)
        return list(dict.fromkeys(m for n in names for m in self.stack.services[n].models))
