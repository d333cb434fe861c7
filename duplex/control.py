"""Inspecting and stopping a run (`inv status`, `inv stop`), also one whose `inv` was killed:
native services by the process groups the run state records, containers by the engine's labels."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .health import probe_once
from .native import group_alive, start_time, stop_group
from .plan import LABEL, Health
from .state import last_run, read_state, write_state


def alive(record: dict) -> bool:
    """Whether a service the run state records still runs (a native pid must still be the same
    process: same start time); containers are checked against the engine by status/stop."""
    if record.get("mode") == "native":
        pid = record.get("pid")
        return bool(pid) and group_alive(pid) and start_time(pid) == record.get("start_time")
    return True


def engine_answers() -> bool:
    """Only talk to the engine when it is there: a native-only user may have no Docker at all."""
    from .engine import connect
    try:
        connect().close()
        return True
    except Exception:  # noqa: BLE001 - no engine means no containers to see or stop
        return False


def stop_order(root: Path, names: list[str]) -> list[str]:
    """Dependents first: the reverse of the last run's start order (names it never started last)."""
    order = last_run(root)
    rank = {name: i for i, name in enumerate(order)}
    return sorted(names, key=lambda n: -rank.get(n, -1))


def stop(root: Path, *, services: list[str] | None = None, everything: bool = False,
         grace: float = 10.0, say: Callable[[str], None] = lambda _line: None) -> list[str]:
    """Stop what a run (even a killed one) left, dependents first; returns the services stopped."""
    state = read_state(root)
    wanted = (lambda name: not services or name in services)
    containers = {}
    if any(r.get("mode") == "container" for r in state["services"].values()) or engine_answers():
        from .containers import list_containers
        containers = {c.labels.get(f"{LABEL}.service", c.name): c
                      for c in list_containers(root, everything=everything)}
    stopped: list[str] = []
    for name in stop_order(root, list(dict.fromkeys([*state["services"], *containers]))):
        if not wanted(name):
            continue
        record = state["services"].get(name, {})
        if record.get("mode") == "native":
            if alive(record):
                say(f"{name}: stopping pid {record['pid']}")
                stop_group(record["pid"], grace)
                stopped.append(name)
            del state["services"][name]
        elif name in containers:
            from .containers import remove_container
            say(f"{name}: stopping container {containers[name].short_id}")
            remove_container(containers[name], grace)
            stopped.append(name)
            state["services"].pop(name, None)
        elif record.get("mode") == "container" and record.get("persistent"):
            # kept warm (persistent = true) for the next run to reuse: no longer part of this run,
            # so the next `inv run` is not refused as "already going"
            say(f"{name}: kept warm (persistent); `inv stop --all` stops it")
            state["services"].pop(name, None)
    write_state(root, state)
    return stopped


def status(root: Path) -> list[dict]:
    state = read_state(root)
    rows: list[dict] = []
    containers = {}
    if engine_answers():
        from .containers import list_containers
        containers = {c.labels.get(f"{LABEL}.service"): c for c in list_containers(root)}
    for name, record in state["services"].items():
        if record.get("mode") == "native":
            running = alive(record)
            rows.append(_row(record, "running" if running else "exited", running, f"pid {record['pid']}"))
    for name, container in containers.items():
        record = state["services"].get(name) or {"name": name, "mode": "container",
                                                  "url": None, "health": None}
        running = container.status == "running"
        rows.append(_row(record, container.status, running, container.short_id))
    return sorted(rows, key=lambda r: r["name"])


def _row(record: dict, state: str, running: bool, ident: str) -> dict:
    health = record.get("health")
    # "alive": a running moshi in a conversation is healthy (duplex.wscheck says why); its event loop
    # answers between frames, which on a loaded CPU can take longer than an idle HTTP server
    wait = 3.0 if health and health["kind"] == "websocket" else 1.0
    healthy = bool(running and health and probe_once(Health(health["kind"], health["url"], wait,
                                                            health.get("ca")), wait, phase="alive"))
    return {"name": record["name"], "mode": record["mode"], "state": state, "healthy": healthy,
            "url": record.get("url"), "id": ident}
