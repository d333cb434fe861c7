"""Inspecting and stopping a run (`inv status`, `inv stop`), also one whose `inv` was killed:
native services by the process groups the run state records, containers by the engine's labels.

What the run state says is always checked against what is really there (a pid that is another
process now, a container removed behind duplex's back, an engine restarted): a stale record never
blocks a run, never hides from `inv stop`, and `inv stop` clears it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

from ..engine import connect
from ..errors import PlanError, RunError
from ..layout import Layout
from ..plan import LABEL, Health
from . import dashboard as launch
from .health import probe_once
from .inventory import list_containers, remove_container, remove_idle_networks
from .locks import action
from .processes import group_is, log_pumps, stop_group
from .state import StateWriteError, changing, last_run, last_waves, read_state, same_process


def alive(record: dict, containers: dict | None = None) -> bool:
    """Whether a service the run state records still runs: a native pid must still be the same
    process (same start time); a container must still exist in the engine and run (`containers`:
    the engine's containers of this project by id, when already listed; else the engine is asked)."""
    if record.get("mode") == "native":
        pid = record.get("pid")
        return isinstance(pid, int) and pid > 0 and group_is(pid, record.get("start_time"))
    if record.get("mode") == "container":
        ident = record.get("container")
        if not ident:
            return False
        if containers is None:
            containers = engine_containers_by_id(record.get("root"))
        container = containers.get(ident) if containers is not None else None
        return container is not None and container.status in ("created", "running", "restarting")
    return False


def engine_containers_by_id(root=None) -> dict | None:
    """Every duplex container the engine has (of the project at `root` when given), by full id;
    None when the engine does not answer (then no container of ours can be running through it)."""
    if not engine_answers():
        return None
    client = connect()
    try:
        filters = {"label": f"{LABEL}.root={root}"} if root else {"label": f"{LABEL}.service"}
        return {c.id: c for c in client.containers.list(all=True, filters=filters)}
    finally:
        client.close()


def engine_answers() -> bool:
    """Only talk to the engine when it is there: a native-only user may have no Docker at all."""
    try:
        connect().close()
        return True
    except Exception:  # noqa: BLE001 - no engine means no containers to see or stop
        return False


def live_records(root: Path, state: dict | None = None) -> tuple[dict, list[str]]:
    """(the records that are still there, the names of stale ones), asking the engine at most once
    and only when the state records a container."""
    state = read_state(root) if state is None else state
    records = state["services"]
    containers = None
    if any(r.get("mode") == "container" for r in records.values()):
        containers = engine_containers_by_id(root) or {}
    live, stale = {}, []
    for name, record in records.items():
        (live.__setitem__(name, record) if alive(record, containers) else stale.append(name))
    return live, stale


def stop_order(root: Path, names: list[str]) -> list[str]:
    """Dependents first: the reverse of the last run's start order (names it never started last)."""
    order = last_run(root)
    rank = {name: i for i, name in enumerate(order)}
    return sorted(names, key=lambda n: -rank.get(n, -1))


def stop_waves(root: Path, names: list[str], state: dict | None = None) -> list[list[str]]:
    """`stop_order` in waves: the run's start waves (the state's, else the last run's) reversed (a
    wave stops together), names it did not start first, each alone."""
    recorded = (state or {}).get("waves")
    if not (isinstance(recorded, list) and recorded and all(isinstance(w, list) for w in recorded)):
        recorded = last_waves(root)
    waves = [[n for n in wave if n in names] for wave in reversed(recorded)]
    placed = {n for wave in waves for n in wave}
    return [[n] for n in stop_order(root, [n for n in names if n not in placed])] + [w for w in waves if w]


class _ContainerLookup(threading.Thread):
    """The engine's containers of this project, looked up in the background: importing the docker
    SDK and asking the engine takes longer than stopping native services, which need neither."""

    def __init__(self, root: Path, everything: bool, needed: bool):
        super().__init__(daemon=True)
        self.root, self.everything, self.needed = root, everything, needed
        self.found: dict = {}

    def run(self) -> None:
        try:
            if self.needed or engine_answers():
                self.found = {c.labels.get(f"{LABEL}.service", c.name): c
                              for c in list_containers(self.root, everything=self.everything)}
        except Exception:  # noqa: BLE001 - no engine: no container of ours can run through it
            self.found = {}

    def result(self) -> dict:
        if not self.is_alive() and self.ident is None:
            self.start()
        self.join()
        return self.found


def stop(root: Path, *, services: list[str] | None = None, everything: bool = False,
         grace: float = 10.0, say: Callable[[str], None] = lambda _line: None,
         known: Callable[[], set[str]] | None = None, what: str = "`inv stop`", wait: bool = True) -> list[str]:
    """Stop what a run (even a killed one) left, dependents first; returns the services stopped.

    The last run's start waves, reversed: the services of one wave stop together. Records whose
    process or container is gone are cleared and said. `services`: only these; a name neither the
    stack (`known()`), the state, the last run nor the engine knows is an error. An action on the run
    in progress (a restart) is waited for (`wait`; else refused), so nothing it starts is missed;
    what still runs after the stop is a RunError naming it (never a "stopped" that is not true)."""
    with action(root, what, wait=wait, say=say):
        stopped, engine = _stop(root, services, everything, grace, say, known)
        left = still_running(root, services, everything, engine=engine)
    if left:
        raise RunError(f"still running after the stop: {', '.join(left)}",
                       fix="`inv stop` again; `inv status` shows what runs")
    return stopped


def _stop(root: Path, services: list[str] | None, everything: bool, grace: float,
          say: Callable[[str], None], known: Callable[[], set[str]] | None) -> tuple[list[str], bool]:
    """The stop itself; returns (the services stopped, whether the engine has containers of the run)."""
    state = read_state(root)
    records = state["services"]
    original = dict(records)  # what this stop saw: only these records are cleared at the end
    pumps = log_pumps(Layout(root).logs)  # also those whose record the state lost
    recorded = any(r.get("mode") == "container" for r in records.values())
    lookup = _ContainerLookup(root, everything, recorded)
    if recorded or not records:  # else: after the native services, so importing docker never slows them
        lookup.start()
    if services:
        names = set(records) | set(last_run(root)) | (known() if known else set()) | set(pumps)
        if not set(services) <= names:
            names |= set(lookup.result())
        unknown = [s for s in services if s not in names]
        if unknown:
            raise PlanError(f"unknown service{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}",
                            fix=f"choose from: {', '.join(sorted(names)) or '(no services)'}")
    wanted = (lambda name: not services or name in services)
    if services and any(n in records for n in services):
        # said before the signal: an attached `inv run` watching them takes their exit for no crash
        try:
            with changing(root) as fresh:
                for name in services:
                    if name in fresh["services"] and name in records and \
                            same_process(fresh["services"][name], records[name]):
                        fresh["services"][name]["stopping"] = True
        except StateWriteError:
            pass
    stopped: list[str] = []
    done: set[str] = set()
    lock = threading.Lock()

    def unrecorded(name: str) -> bool:
        """Stop the log-pump groups of `name` the state does not record (a lost record)."""
        pid = records.get(name, {}).get("pid")
        extra = [p for p in pumps.get(name, []) if p != pid]
        for pgid in extra:
            say(f"{name}: stopping pid {pgid} (not in the run state)")
            stop_group(pgid, grace)
        return bool(extra)

    def one(name: str, containers: dict | None) -> None:
        record = records.get(name, {})
        if unrecorded(name) and not record:
            with lock:
                stopped.append(name)
        if record.get("mode") == "native":
            if alive(record):
                say(f"{name}: stopping pid {record['pid']}")
                began = time.monotonic()
                how = stop_group(record["pid"], grace, on_slow=lambda s: say(
                    f"{name}: still stopping after {s:.0f}s (a graceful drain; SIGKILL after {grace:.0f}s)"))
                if how == "killed" or time.monotonic() - began >= 1.0:
                    say(f"{name}: {'killed' if how == 'killed' else 'stopped'} after "
                        f"{time.monotonic() - began:.1f}s")
                with lock:
                    stopped.append(name)
            else:
                say(f"{name}: cleared its record (pid {record.get('pid')} is no longer running)")
        elif containers and name in containers:
            say(f"{name}: stopping container {containers[name].short_id}")
            remove_container(containers[name], grace)
            with lock:
                stopped.append(name)
        elif record.get("mode") == "container" and record.get("persistent") and not everything:
            # kept warm (persistent = true) for the next run to reuse: no longer part of this run,
            # so the next `inv run` is not refused as "already going"
            say(f"{name}: kept warm (persistent); `inv stop --all` stops it")
        elif name in records:
            say(f"{name}: cleared its record (its container is gone: removed or pruned outside duplex, "
                "or the engine was restarted)")
        with lock:
            records.pop(name, None)
            done.add(name)

    def guarded(name: str, containers: dict | None) -> None:
        try:
            one(name, containers)
        except Exception as exc:  # noqa: BLE001 - a group not ours to signal, an engine gone: said, and
            # the check after the stop names what still runs
            say(f"{name}: could not be stopped ({type(exc).__name__}: {exc})")

    def wave(names: list[str]) -> None:
        # natives need no engine: only a wave with another service waits for the container lookup
        containers = lookup.result() if any(records.get(n, {}).get("mode") != "native" for n in names) else None
        threads = [threading.Thread(target=guarded, args=(n, containers), daemon=True) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for names in stop_waves(root, [n for n in records if wanted(n)], state):
        wave(names)
    for names in stop_waves(root, [n for n in pumps if wanted(n) and n not in done]):  # records lost
        wave(names)
    rest = [n for n in lookup.result() if wanted(n) and n not in done]  # left by runs the state lost
    for names in stop_waves(root, rest):
        wave(names)
    try:  # only the records this stop saw and ended: one written meanwhile (a run starting) stays
        with changing(root) as fresh:
            for name in done:
                current = fresh["services"].get(name)
                if current is not None and name in original and same_process(current, original[name]):
                    fresh["services"].pop(name)
    except StateWriteError as err:  # what it records is stale now, and stale records never block
        say(f"warning: {err}")
    if not services and lookup.result():
        try:
            stacks = {c.labels.get(f"{LABEL}.stack") for c in lookup.result().values()}
            for network in remove_idle_networks({f"duplex-{s}" for s in stacks if s}):
                say(f"network {network}: removed")
        except Exception:  # noqa: BLE001 - the engine went away meanwhile: the network waits for the next stop
            pass
    if not services:  # the run's dashboard goes with it (a detached run's, or a killed `inv run`'s)
        if launch.stop(root):
            say("dashboard: stopped")
    return stopped, recorded or bool(lookup.result())


def still_running(root: Path, services: list[str] | None = None, everything: bool = False,
                  engine: bool = True) -> list[str]:
    """What of the run (of `services`, when given) still runs, each as "name (pid N)" or "name
    (container ID)": recorded processes and containers, and log-pump groups the state lost
    (`engine`: whether to ask the engine for containers not recorded)."""
    wanted = (lambda name: not services or name in services)
    live, _stale = live_records(root)
    left = {f"{n} (pid {r['pid']})" if r.get("mode") == "native" else f"{n} (container {str(r.get('container'))[:12]})"
            for n, r in live.items() if wanted(n) and not (r.get("persistent") and not everything)}
    left |= {f"{n} (pid {p})" for n, pids in log_pumps(Layout(root).logs).items() if wanted(n) for p in pids}
    if engine and engine_answers():
        try:
            left |= {f"{c.labels.get(f'{LABEL}.service', c.name)} (container {c.short_id})"
                     for c in list_containers(root, everything=everything)
                     if c.status in ("running", "restarting") and wanted(c.labels.get(f"{LABEL}.service", c.name))}
        except Exception:  # noqa: BLE001 - the engine went away: nothing of ours runs through it
            pass
    return sorted(left)


def status(root: Path) -> list[dict]:
    """One row per service of the run that is there; records whose process or container is gone
    are left out (`inv stop` clears them)."""
    state = read_state(root)
    rows: list[dict] = []
    containers = {}
    if engine_answers():
        containers = {c.labels.get(f"{LABEL}.service"): c for c in list_containers(root)}
    for name, record in state["services"].items():
        if record.get("mode") == "native" and isinstance(record.get("pid"), int):
            running = alive(record)
            rows.append(_row({**record, "name": name}, "running" if running else "exited", running,
                             f"pid {record['pid']}"))
    for name, pids in log_pumps(Layout(root).logs).items():  # running, though the state lost them
        for pid in pids:
            if pid != state["services"].get(name, {}).get("pid"):
                rows.append(_row({"name": name, "mode": "native", "url": None, "health": None}, "running", True,
                                 f"pid {pid} (not in the run state; `inv stop` ends it)"))
    for name, container in containers.items():
        record = state["services"].get(name) or {"name": name, "mode": "container",
                                                  "url": None, "health": None}
        running = container.status == "running"
        rows.append(_row({**record, "name": name}, container.status, running, container.short_id))
    return sorted(rows, key=lambda r: r["name"])


def _row(record: dict, state: str, running: bool, ident: str) -> dict:
    health = record.get("health")
    # "alive": a running moshi in a conversation is healthy (duplex.standalone.wscheck says why); its event loop
    # answers between frames, which on a loaded CPU can take longer than an idle HTTP server
    wait = 3.0 if isinstance(health, dict) and health.get("kind") == "websocket" else 1.0
    healthy = bool(running and isinstance(health, dict) and health.get("url") and probe_once(
        Health(health.get("kind", "http"), health["url"], wait, health.get("ca")), wait, phase="alive"))
    return {"name": record["name"], "mode": record.get("mode", "?"), "state": state, "healthy": healthy,
            "url": record.get("url"), "id": ident}
