"""One row per planned service, from the run state and what the dashboard observed: its state,
health history, restarts, resources, model-load phase and warm reloads. Pure: observations in,
rows out (the sampler in `feeds` does the looking)."""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

HISTORY = 60  # health samples kept per service (every second until healthy, then every 5 s)
WARM_RELOAD = re.compile(r"Warm reload: (?:(?P<what>.+?) changed|(?P<asked>a code reload was asked for)); "
                         r"re-imported \S+ in (?P<took>[\d.]+) s \(generation (?P<gen>\d+)\)")


def service_state(recorded: bool, alive: bool, healthy: bool, seen_healthy: bool) -> str:
    """starting | healthy | unhealthy | crashed | stopped: what the page and the API show."""
    if not recorded:
        return "stopped"
    if not alive:
        return "crashed"
    if healthy:
        return "healthy"
    return "unhealthy" if seen_healthy else "starting"


def warm_reload(text: str) -> dict | None:
    """A warm reload the service's log announced: what changed and how long until it was served."""
    found = WARM_RELOAD.search(text)
    if not found:
        return None
    return {"changed": found["what"] or "(asked: reload code)", "seconds": float(found["took"]), "generation": int(found["gen"])}


@dataclass
class Watch:
    """What the dashboard remembers of one service across samples (restarts change its ident)."""
    ident: str | None = None
    since: float | None = None  # when this ident was first seen
    restarts: int = 0
    seen_healthy: bool = False
    history: deque = field(default_factory=lambda: deque(maxlen=HISTORY))
    reloads: int = 0
    last_reload: dict | None = None

    def observe(self, ident: str | None, healthy: bool | None, now: float) -> None:
        if ident and ident != self.ident:
            if self.ident is not None:
                self.restarts += 1
            self.ident, self.since, self.seen_healthy = ident, now, False
            self.history.clear()
        if healthy is not None:
            self.history.append([round(now, 1), healthy])
            self.seen_healthy = self.seen_healthy or healthy

    def reloaded(self, reload: dict) -> None:
        self.reloads += 1
        self.last_reload = reload


def row(name: str, planned: dict, record: dict | None, seen: dict, watch: Watch, now: float) -> dict:
    """`planned`: the plan's view of the service; `record`: its run-state record (None: not
    running); `seen`: this sample (alive, healthy, pids, cpu, memory, gpu, phase, started)."""
    alive, healthy = bool(seen.get("alive")), bool(seen.get("healthy"))
    state = service_state(record is not None, alive, healthy, watch.seen_healthy or healthy)
    ident = None
    if record:
        ident = f"pid {record['pid']}" if record.get("mode") == "native" else \
            f"container {str(record.get('container', ''))[:12]}"
    started = seen.get("started") or watch.since
    return {
        "name": name, "mode": planned.get("mode"), "state": state, "url": planned.get("url"),
        "urls": planned.get("urls") or ([planned["url"]] if planned.get("url") else []),
        "id": ident, "pid": record.get("pid") if record else None,
        "container": record.get("container") if record else None,
        "uptime": round(now - started, 1) if (alive and started) else None,
        "restarts": watch.restarts, "health": list(watch.history),
        "cpu": seen.get("cpu") if alive else None, "memory": seen.get("memory") if alive else None,
        "gpu": planned.get("gpu"), "gpu_memory": seen.get("gpu_memory") if alive else None,
        "phase": seen.get("phase") if alive else None, "depends_on": planned.get("depends_on", {}),
        "warm": planned.get("warm", False), "reloads": watch.reloads, "last_reload": watch.last_reload,
    }


def left_out_row(name: str, why: str) -> dict:
    return {"name": name, "state": "left out", "why": why, "mode": None, "urls": [], "health": []}
