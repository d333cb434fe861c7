"""Stopping a run (`inv stop`, one service's stop, and what a killed run left before `inv run`), also
one whose `inv` was killed: native services by the process groups the run state records (and the
log pumps it lost), containers by the engine's labels; dependents first, one wave at a time.

What the run state says is always checked against what is really there (a pid that is another
process now, a container removed behind duplex's back, an engine restarted): a stale record never
hides from `inv stop`, and `inv stop` clears it.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import PlanError, RunError
from ..layout import Layout
from ..plan import LABEL
from ..syntax import service_of_instance
from . import dashboard as launch
from .inventory import DOCKER, Engine, alive, live_records, service_of
from .locks import action
from .processes import log_pumps, stop_group
from .state import StateWriteError, changing, last_run, last_waves, read_state, same_process

Say = Callable[[str], None]


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
    """The engine's containers of this project by service, looked up in the background: importing
    the docker SDK and asking the engine takes longer than stopping native services, which need neither."""

    def __init__(self, root: Path, everything: bool, needed: bool, engine: Engine):
        super().__init__(daemon=True)
        self.root, self.everything, self.needed, self.engine = root, everything, needed, engine
        self.found: dict = {}

    def run(self) -> None:
        try:
            if self.needed or self.engine.answers():
                self.found = {service_of(c): c for c in self.engine.containers(self.root, everything=self.everything)}
        except Exception:  # noqa: BLE001 - no engine: no container of ours can run through it
            self.found = {}

    def result(self) -> dict:
        if not self.is_alive() and self.ident is None:
            self.start()
        self.join()
        return self.found


def stop(root: Path, *, services: list[str] | None = None, everything: bool = False,
         grace: float = 10.0, say: Say = lambda _line: None, known: Callable[[], set[str]] | None = None,
         what: str = "`inv stop`", wait: bool = True, engine: Engine = DOCKER, exact: bool = False) -> list[str]:
    """Stop what a run (even a killed one) left, dependents first; returns the services stopped.

    The last run's start waves, reversed: the services of one wave stop together. Records whose
    process or container is gone are cleared and said. `services`: only these; a name neither the
    stack (`known()`), the state, the last run nor the engine knows is an error. An action on the run
    in progress (a restart) is waited for (`wait`; else refused), so nothing it starts is missed;
    what still runs after the stop is a RunError naming it (never a "stopped" that is not true).
    A service named takes in its replicas (asr: asr, asr_1, ...), unless `exact` (the dashboard's
    row of one replica)."""
    with action(root, what, wait=wait, say=say):
        run = _begin(root, services, everything, grace, say, engine, exact)
        _stop(run, known)
        left = still_running(root, services, everything, ask_engine=run.recorded or bool(run.lookup.result()),
                             engine=engine, exact=exact)
    if left:
        raise RunError(f"still running after the stop: {', '.join(left)}",
                       fix="`inv stop` again; `inv status` shows what runs")
    return run.stopped


@dataclass
class _Stop:
    """One stop in progress: what it saw when it began, and what it has ended so far (the services
    of a wave are stopped by threads of their own, so changes go under `lock`)."""
    root: Path
    services: list[str] | None
    everything: bool
    grace: float
    say: Say
    engine: Engine
    state: dict  # the run state as read; its records are popped as they are ended
    original: dict  # the records this stop saw: only these are cleared from the file at the end
    pumps: dict[str, list[int]]  # the detached services' log-pump groups, also those the state lost
    recorded: bool  # whether the state records a container
    lookup: _ContainerLookup
    exact: bool = False  # `services` names replicas, not services with all their replicas
    stopped: list[str] = field(default_factory=list)
    done: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def records(self) -> dict:
        return self.state["services"]

    def wanted(self, name: str) -> bool:
        return _wanted(self.services, name, self.exact)


def _begin(root: Path, services: list[str] | None, everything: bool, grace: float, say: Say,
           engine: Engine, exact: bool = False) -> _Stop:
    state = read_state(root)
    records = state["services"]
    pumps = log_pumps(Layout(root).logs)
    recorded = any(r.get("mode") == "container" for r in records.values())
    lookup = _ContainerLookup(root, everything, recorded, engine)
    if recorded or not records:  # else: after the native services, so importing docker never slows them
        lookup.start()
    return _Stop(root, services, everything, grace, say, engine, state, dict(records), pumps, recorded, lookup,
                 exact)


def _stop(run: _Stop, known: Callable[[], set[str]] | None) -> None:
    """The stop itself: the recorded services in the run's waves, then log pumps whose record the
    state lost, then containers of runs the state lost; then the state, networks and dashboard."""
    if run.services:
        _refuse_unknown(run, known)
        _mark_stopping(run)
    # a whole stop asks the dashboard to end first (it watches every service) and waits for it last
    board = not run.services and launch.terminate(run.root)
    for names in stop_waves(run.root, [n for n in run.records if run.wanted(n)], run.state):
        _stop_wave(run, names)
    for names in stop_waves(run.root, _not_done(run, run.pumps)):
        _stop_wave(run, names)
    for names in stop_waves(run.root, _not_done(run, run.lookup.result())):
        _stop_wave(run, names)
    _clear_records(run)
    if not run.services:
        _remove_idle_networks(run)
        if launch.stop(run.root, signalled=board) or board:  # a detached run's, a killed `inv run`'s
            run.say("dashboard: stopped")


def _not_done(run: _Stop, names) -> list[str]:
    return [n for n in names if run.wanted(n) and n not in run.done]


def _refuse_unknown(run: _Stop, known: Callable[[], set[str]] | None) -> None:
    """A PlanError for a name neither the stack, the state, the last run nor the engine knows (the
    engine is waited for only when the others do not know every name)."""
    names = set(run.records) | set(last_run(run.root)) | (known() if known else set()) | set(run.pumps)
    names |= {service_of_instance(n) for n in names}  # a service's replicas go by its name too
    if not set(run.services) <= names:
        names |= {m for n in run.lookup.result() for m in (n, service_of_instance(n))}
    unknown = [s for s in run.services if s not in names]
    if unknown:
        raise PlanError(f"unknown service{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}",
                        fix=f"choose from: {', '.join(sorted(names)) or '(no services)'}")


def _mark_stopping(run: _Stop) -> None:
    """Said in the state before the signal: an attached `inv run` watching them takes their exit
    for no crash."""
    if not any(run.wanted(n) for n in run.records):
        return
    try:
        with changing(run.root) as fresh:
            for name in [n for n in run.records if run.wanted(n)]:
                if name in fresh["services"] and name in run.records and \
                        same_process(fresh["services"][name], run.records[name]):
                    fresh["services"][name]["stopping"] = True
    except StateWriteError:
        pass


def _stop_wave(run: _Stop, names: list[str]) -> None:
    """The services of one wave together, each in a thread; returns when all of them are ended."""
    # natives need no engine: only a wave with another service waits for the container lookup
    containers = run.lookup.result() if any(run.records.get(n, {}).get("mode") != "native" for n in names) else None
    threads = [threading.Thread(target=_stop_guarded, args=(run, n, containers), daemon=True) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _stop_guarded(run: _Stop, name: str, containers: dict | None) -> None:
    try:
        _stop_service(run, name, containers)
    except Exception as exc:  # noqa: BLE001 - a group not ours to signal, an engine gone: said, and
        # the check after the stop names what still runs
        run.say(f"{name}: could not be stopped ({type(exc).__name__}: {exc})")


def _stop_service(run: _Stop, name: str, containers: dict | None) -> None:
    """End one service, whatever is left of it: its lost log pumps, its process group or its
    container; a record of something gone is cleared and said."""
    record = run.records.get(name, {})
    if _stop_lost_pumps(run, name) and not record:
        _stopped(run, name)
    if record.get("mode") == "native":
        _stop_native(run, name, record)
    elif containers and name in containers:
        run.say(f"{name}: stopping container {containers[name].short_id}")
        run.engine.remove(containers[name], run.grace)
        _stopped(run, name)
    elif record.get("mode") == "container" and record.get("persistent") and not run.everything:
        # kept warm (persistent = true) for the next run to reuse: no longer part of this run,
        # so the next `inv run` is not refused as "already going"
        run.say(f"{name}: kept warm (persistent); `inv stop --all` stops it")
    elif name in run.records:
        run.say(f"{name}: cleared its record (its container is gone: removed or pruned outside duplex, "
                "or the engine was restarted)")
    with run.lock:
        run.records.pop(name, None)
        run.done.add(name)


def _stop_lost_pumps(run: _Stop, name: str) -> bool:
    """Stop the log-pump groups of `name` the state does not record (a lost record); True if any."""
    pid = run.records.get(name, {}).get("pid")
    extra = [p for p in run.pumps.get(name, []) if p != pid]
    for pgid in extra:
        run.say(f"{name}: stopping pid {pgid} (not in the run state)")
        stop_group(pgid, run.grace)
    return bool(extra)


def _stop_native(run: _Stop, name: str, record: dict) -> None:
    """SIGTERM its process group, SIGKILL after the grace period; a slow drain or a kill is said."""
    if not alive(record):
        run.say(f"{name}: cleared its record (pid {record.get('pid')} is no longer running)")
        return
    run.say(f"{name}: stopping pid {record['pid']}")
    began = time.monotonic()
    how = stop_group(record["pid"], run.grace, on_slow=functools.partial(_say_slow, run, name))
    took = time.monotonic() - began
    if how == "killed" or took >= 1.0:
        run.say(f"{name}: {'killed' if how == 'killed' else 'stopped'} after {took:.1f}s")
    _stopped(run, name)


def _say_slow(run: _Stop, name: str, seconds: float) -> None:
    run.say(f"{name}: still stopping after {seconds:.0f}s (a graceful drain; SIGKILL after {run.grace:.0f}s)")


def _stopped(run: _Stop, name: str) -> None:
    with run.lock:
        run.stopped.append(name)


def _clear_records(run: _Stop) -> None:
    """Only the records this stop saw and ended: one written meanwhile (a run starting) stays."""
    try:
        with changing(run.root) as fresh:
            for name in run.done:
                current = fresh["services"].get(name)
                if current is not None and name in run.original and same_process(current, run.original[name]):
                    fresh["services"].pop(name)
    except StateWriteError as err:  # what it records is stale now, and stale records never block
        run.say(f"warning: {err}")


def _remove_idle_networks(run: _Stop) -> None:
    """The stacks' networks no container uses any more (each takes one of the engine's pools)."""
    containers = run.lookup.result()
    if not containers:
        return
    try:
        stacks = {c.labels.get(f"{LABEL}.stack") for c in containers.values()}
        for network in run.engine.remove_idle_networks({f"duplex-{s}" for s in stacks if s}):
            run.say(f"network {network}: removed")
    except Exception:  # noqa: BLE001 - the engine went away meanwhile: the network waits for the next stop
        pass


def still_running(root: Path, services: list[str] | None = None, everything: bool = False, *,
                  ask_engine: bool = True, engine: Engine = DOCKER, exact: bool = False) -> list[str]:
    """What of the run (of `services`, when given) still runs, each as "name (pid N)" or "name
    (container ID)": recorded processes and containers, and log-pump groups the state lost
    (`ask_engine`: whether to ask the engine for containers not recorded)."""
    live, _stale = live_records(root, engine=engine)
    left = {_running_as(n, r) for n, r in live.items()
            if _wanted(services, n, exact) and not (r.get("persistent") and not everything)}
    left |= {f"{n} (pid {p})" for n, pids in log_pumps(Layout(root).logs).items() if _wanted(services, n, exact)
             for p in pids}
    if ask_engine and engine.answers():
        try:
            left |= {f"{service_of(c)} (container {c.short_id})" for c in engine.containers(root, everything=everything)
                     if c.status in ("running", "restarting") and _wanted(services, service_of(c), exact)}
        except Exception:  # noqa: BLE001 - the engine went away: nothing of ours runs through it
            pass
    return sorted(left)


def _wanted(services: list[str] | None, name: str, exact: bool = False) -> bool:
    """Whether `services` (all when none) take in `name`: named itself, or (unless `exact`) its
    service named (asr takes in its replica asr_1)."""
    return not services or name in services or (not exact and service_of_instance(name) in services)


def _running_as(name: str, record: dict) -> str:
    if record.get("mode") == "native":
        return f"{name} (pid {record['pid']})"
    return f"{name} (container {str(record.get('container'))[:12]})"
