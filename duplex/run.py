"""`inv run`, `inv stop`, `inv status`, `inv logs`: gather facts, plan, act, verify."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterator

from .errors import RunError
from .health import probe_once
from .native import NativeRunner, group_alive, log_path, start_time, stop_group, tail_file
from .plan import LABEL, Health, Plan
from .printer import Printer
from .probe import Machine
from .state import RunState, read_state, write_state
from .supervisor import Supervisor


def up(plan: Plan, machine: Machine, *, on_crash: str = "keep", detach: bool = False,
       out=None, progress: Callable[[str], None] | None = None,
       env_state: Callable[[str], str] | None = None) -> int:
    root = Path(plan.root)
    printer = Printer(["duplex", *plan.start_order], out=out)
    progress = progress or printer.system
    active = [r for r in read_state(root)["services"].values() if _alive(r)]
    if active:
        raise RunError(f"a run of this stack is already going ({', '.join(r['name'] for r in active)})",
                       fix="`inv status` to see it, `inv stop` to end it")
    runners = {"native": NativeRunner(root, detach=detach, env_state=env_state)}
    if any(s.mode == "container" for s in plan.services.values()):
        from .containers import ContainerRunner  # lazy: docker SDK only when a container runs
        runners["container"] = ContainerRunner(root, plan.stack, detach=detach)
    for warning in plan.warnings:
        printer.system(f"warning: {warning}")
    state = RunState(root, plan.stack, "native" if plan.native else "container")
    sup = Supervisor(plan, runners, printer, state, on_crash=on_crash)
    try:
        took = sup.up(progress)
    except KeyboardInterrupt:
        sup.down()
        return 130
    slowest = max(sup.timings.values(), default=0.0)
    printer.system(f"all {len(plan.services)} services healthy in {took:.2f}s "
                   f"(start overhead {max(0.0, took - _critical_path(plan, sup.timings)):.2f}s; "
                   f"slowest service {slowest:.2f}s)")
    for name in plan.start_order:
        printer.system(f"  {name:<10} {plan.services[name].url}")
    if detach:
        printer.system("detached: `inv status`, `inv logs NAME --follow`, `inv stop`")
        return 0
    printer.system("press Ctrl-C to stop everything")
    return sup.watch()


def _critical_path(plan: Plan, timings: dict[str, float]) -> float:
    """The longest chain of own start times along dependencies: what no orchestrator can beat."""
    memo: dict[str, float] = {}

    def longest(name: str) -> float:
        if name not in memo:
            deps = plan.services[name].depends_on
            memo[name] = timings.get(name, 0.0) + max((longest(d) for d in deps), default=0.0)
        return memo[name]
    return max((longest(n) for n in plan.services), default=0.0)


def _alive(record: dict) -> bool:
    if record.get("mode") == "native":
        pid = record.get("pid")
        return bool(pid) and group_alive(pid) and start_time(pid) == record.get("start_time")
    return True  # containers: checked against the engine by status/stop


def _containers(root: Path, client=None, *, everything: bool = True) -> list:
    from .containers import connect
    client = client or connect()
    found = client.containers.list(all=True, filters={"label": f"{LABEL}.root={root}"})
    return found if everything else [c for c in found if c.labels.get(f"{LABEL}.persistent") != "true"]


def stop(root: Path, *, services: list[str] | None = None, everything: bool = False,
         grace: float = 10.0, say: Callable[[str], None] = print) -> list[str]:
    """Stop what a run (even a killed one) left: process groups by pid, containers by label."""
    state = read_state(root)
    stopped: list[str] = []
    for name, record in list(state["services"].items()):
        if services and name not in services:
            continue
        if record.get("mode") == "native":
            if _alive(record):
                say(f"{name}: stopping pid {record['pid']}")
                stop_group(record["pid"], grace)
                stopped.append(name)
            del state["services"][name]
    if any(r.get("mode") == "container" for r in state["services"].values()) or _engine_wanted(root):
        for container in _containers(root, everything=everything):
            name = container.labels.get(f"{LABEL}.service", container.name)
            if services and name not in services:
                continue
            say(f"{name}: stopping container {container.short_id}")
            if container.status == "running":
                container.stop(timeout=int(grace))
            container.remove(force=True)
            stopped.append(name)
            state["services"].pop(name, None)
    write_state(root, state)
    return stopped


def _engine_wanted(root: Path) -> bool:
    """Only talk to the engine when it is there: a native-only user may have no Docker at all."""
    try:
        from .containers import connect
        connect()
        return True
    except Exception:  # noqa: BLE001 - no engine means no containers to stop
        return False


def status(root: Path) -> list[dict]:
    state = read_state(root)
    rows: list[dict] = []
    containers = {}
    if _engine_wanted(root):
        containers = {c.labels.get(f"{LABEL}.service"): c for c in _containers(root)}
    for name, record in state["services"].items():
        if record.get("mode") == "native":
            running = _alive(record)
            rows.append(_row(record, "running" if running else "exited", running, f"pid {record['pid']}"))
    for name, container in containers.items():
        record = state["services"].get(name) or {"name": name, "mode": "container",
                                                  "url": None, "health": None}
        running = container.status == "running"
        rows.append(_row(record, container.status, running, container.short_id))
    return sorted(rows, key=lambda r: r["name"])


def _row(record: dict, state: str, running: bool, ident: str) -> dict:
    health = record.get("health")
    healthy = bool(running and health and probe_once(Health(health["kind"], health["url"], 1.0), 1.0))
    return {"name": record["name"], "mode": record["mode"], "state": state, "healthy": healthy,
            "url": record.get("url"), "id": ident}


def logs(root: Path, service: str, *, follow: bool = False, lines: int = 200) -> Iterator[str]:
    path = log_path(root, service)
    record = read_state(root)["services"].get(service, {})
    if record.get("mode") == "container" and _engine_wanted(root):
        from .containers import connect
        container = connect().containers.get(record["container"])
        if follow:
            for chunk in container.logs(stream=True, follow=True, tail=lines):
                yield chunk.decode("utf-8", errors="replace").rstrip("\n")
            return
        yield from container.logs(tail=lines).decode("utf-8", errors="replace").splitlines()
        return
    if not path.exists():
        raise RunError(f"no logs for {service!r} in {path.parent}", fix="`inv status` lists what ran")
    yield from tail_file(path, lines)
    if follow:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            while True:
                line = fh.readline()
                if line:
                    yield line.decode("utf-8", errors="replace").rstrip("\n")
                else:
                    time.sleep(0.2)
