"""`inv status`: what of a run is there, also of one whose `inv` was killed: the native services the
run state records (checked against their processes), the log pumps it lost, and the engine's
containers of the project (by its labels)."""

from __future__ import annotations

from pathlib import Path

from ..layout import Layout
from ..plan import LABEL, Health
from .health import probe_once
from .inventory import DOCKER, Engine, alive
from .processes import log_pumps
from .state import read_state


def status(root: Path, engine: Engine = DOCKER) -> list[dict]:
    """One row per service of the run that is there, by name; records whose process or container is
    gone are left out (`inv stop` clears them)."""
    records = read_state(root)["services"]
    containers = {}
    if engine.answers():
        containers = {c.labels.get(f"{LABEL}.service"): c for c in engine.containers(root)}
    rows = [*_native_rows(records), *_lost_rows(root, records), *_container_rows(records, containers)]
    return sorted(rows, key=lambda r: r["name"])


def _native_rows(records: dict) -> list[dict]:
    rows = []
    for name, record in records.items():
        if record.get("mode") == "native" and isinstance(record.get("pid"), int):
            running = alive(record)
            rows.append(_row({**record, "name": name}, "running" if running else "exited", running,
                             f"pid {record['pid']}"))
    return rows


def _lost_rows(root: Path, records: dict) -> list[dict]:
    """Detached services whose log pump runs, though the state lost their record."""
    return [_row({"name": name, "mode": "native", "url": None, "health": None}, "running", True,
                 f"pid {pid} (not in the run state; `inv stop` ends it)")
            for name, pids in log_pumps(Layout(root).logs).items()
            for pid in pids if pid != records.get(name, {}).get("pid")]


def _container_rows(records: dict, containers: dict) -> list[dict]:
    rows = []
    for name, container in containers.items():
        record = records.get(name) or {"name": name, "mode": "container", "url": None, "health": None}
        rows.append(_row({**record, "name": name}, container.status, container.status == "running",
                         container.short_id))
    return rows


def _row(record: dict, state: str, running: bool, ident: str) -> dict:
    health = record.get("health")
    # "alive": a running moshi in a conversation is healthy (duplex.standalone.wscheck says why); its event loop
    # answers between frames, which on a loaded CPU can take longer than an idle HTTP server
    wait = 3.0 if isinstance(health, dict) and health.get("kind") == "websocket" else 1.0
    healthy = bool(running and isinstance(health, dict) and health.get("url") and probe_once(
        Health(health.get("kind", "http"), health["url"], wait, health.get("ca")), wait, phase="alive"))
    return {"name": record["name"], "mode": record.get("mode", "?"), "state": state, "healthy": healthy,
            "url": record.get("url"), "id": ident}
