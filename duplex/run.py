"""`inv run`, `inv stop`, `inv status`, `inv logs`: gather facts, plan, act, verify."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from queue import Queue
from typing import Callable, Iterator

from .errors import RunError
from .health import probe_once
from .native import NativeRunner, group_alive, log_path, start_time, stop_group
from .plan import LABEL, Health, Plan
from .printer import Printer
from .probe import Machine, container_gpus, probe_machine
from .state import RunState, last_run, read_state, write_state, write_last_run
from .supervisor import Interrupted, Signalled, Supervisor, shielded, signals_raise


def up(plan: Plan, machine: Machine, *, on_crash: str = "keep", detach: bool = False,
       out=None, progress: Callable[[str], None] | None = None,
       env_state: Callable[[str], str] | None = None,
       on_healthy: Callable[[], int] | None = None) -> int:
    """`on_healthy`: run once every service is healthy (`inv run --smoke`); a detached run returns
    its exit code, an attached run keeps going whatever it says."""
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
    write_last_run(root, plan.stack, plan.start_order)  # `inv logs` shows these, in this order
    sup = Supervisor(plan, runners, printer, state, on_crash=on_crash)
    try:
        with signals_raise():  # until watch() takes over, SIGTERM unwinds the start like Ctrl-C
            took = sup.up(progress)
            slowest = max(sup.timings.values(), default=0.0)
            printer.system(f"all {len(plan.services)} services healthy in {took:.2f}s "
                           f"(start overhead {max(0.0, took - _critical_path(plan, sup.timings)):.2f}s; "
                           f"slowest service {slowest:.2f}s)")
            for name in plan.start_order:
                printer.system(f"  {name:<10} {plan.services[name].url}")
            checked = on_healthy() if on_healthy else 0
            if detach:
                printer.system("detached: `inv status`, `inv logs [NAME] --follow`, `inv stop`")
                return checked
            printer.system("press Ctrl-C to stop everything")
            return sup.watch()  # installs its own SIGTERM handler: no gap in which a signal orphans
    except (KeyboardInterrupt, Signalled) as exc:
        with shielded():
            sup.down()  # a no-op when sup.up already unwound; not when the smoke pass was cut short
        how, code = ("SIGTERM", 143) if isinstance(exc, Signalled) else ("Ctrl-C", 130)
        stopped = ", ".join(sup.stopped) if sup.stopped else "nothing had started yet"
        raise Interrupted(f"{how} during start-up: stopped what had started ({stopped})", code) from None
    except BaseException:  # anything else while starting: leave nothing running, then report it
        with shielded():
            sup.down()
        raise


def plan_run(stack, make_plan: Callable[[Machine], Plan], environ: dict[str, str] | None = None,
             *, machine: Machine | None = None, engine_probe: Callable | None = None):
    """(plan, machine, engine facts or None) for `inv run`. The Docker engine is asked at most once,
    and only when a container of the plan may want a GPU and the host has one; the plan is then
    made again with its answer, so a GPU is requested only when containers can get one. Preflight
    reuses the facts returned (same services, same images) instead of asking again."""
    import dataclasses
    import os
    environ = dict(os.environ if environ is None else environ)
    machine = machine or probe_machine(environ, nvidia_runtime=False,  # the engine is asked below
                                       keep=stack.secret_names)
    the_plan = make_plan(machine)
    wants = any(s.mode == "container" and s.gpu_policy != "none" for s in the_plan.services.values())
    if not (wants and machine.gpu_count):
        return the_plan, machine, None
    from checks import Context
    from checks.docker import probe_docker, wanted_images
    engine = (engine_probe or probe_docker)(environ, wanted_images(Context(stack, the_plan, environ)),
                                            the_plan.stack)
    machine = dataclasses.replace(machine, nvidia_runtime=container_gpus(environ, engine))
    return make_plan(machine), machine, engine


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
    healthy = bool(running and health and probe_once(Health(health["kind"], health["url"], 1.0,
                                                            health.get("ca")), 1.0))
    return {"name": record["name"], "mode": record["mode"], "state": state, "healthy": healthy,
            "url": record.get("url"), "id": ident}


def log_names(root: Path) -> list[str]:
    """The services of the current or last run, in start order (the order the run's colours follow)."""
    return last_run(root) or sorted(read_state(root)["services"])


def logs(root: Path, service: str | None = None, *, follow: bool = False,
         lines: int = 200) -> Iterator[tuple[str, str]]:
    """(service, line) pairs from one service's log, or from every service of the current or last run.

    The past (`lines` per service) comes service by service in start order: the files carry no
    timestamps to interleave it by. With `follow`, new lines of all of them then come as they
    arrive, until none of them is running any more (or Ctrl-C)."""
    records = read_state(root)["services"]
    names = [service] if service else log_names(root)
    if not names:
        raise RunError(f"no run of this stack has left logs in {root / '.duplex' / 'logs'}",
                       fix="start one with `inv run` or `inv run --native`")
    if service and not records.get(service) and not log_path(root, service).exists():
        raise RunError(f"no logs for {service!r} in {log_path(root, service).parent}",
                       fix="`inv status` lists what runs; `inv logs` shows every service of the last run")
    sources = {n: _source(root, n, records.get(n), lines, follow) for n in names}
    for name, source in sources.items():  # the past, one service after the other
        for line in source:
            if line is _PAST_END:
                break
            yield name, line
    if not follow:
        return
    if len(sources) == 1:
        (name, source), = sources.items()
        for line in source:
            yield name, line
        return
    queue: Queue = Queue()

    def pump(name: str, source: Iterator) -> None:
        try:
            for line in source:
                queue.put((name, line))
        finally:
            queue.put((name, _PAST_END))  # this source is done
    for item in sources.items():
        threading.Thread(target=pump, args=item, daemon=True).start()
    running = len(sources)
    while running:
        name, line = queue.get()
        if line is _PAST_END:
            running -= 1
        else:
            yield name, line


_PAST_END = object()  # a source's marker between its past lines and the ones it follows


def _source(root: Path, name: str, record: dict | None, lines: int, follow: bool) -> Iterator:
    """One service's lines: from the engine while its container exists (a detached container's
    log file stays empty), else from its log file."""
    if record and record.get("mode") == "container" and _engine_wanted(root):
        from docker.errors import NotFound

        from .containers import connect
        try:
            container = connect().containers.get(record["container"])
        except NotFound:
            container = None
        if container is not None:
            return _container_lines(container, lines, follow)
    alive = (lambda: _alive(record)) if record and record.get("mode") == "native" else (lambda: False)
    return _file_lines(log_path(root, name), lines, follow, alive)


def _file_lines(path: Path, lines: int, follow: bool, alive: Callable[[], bool]) -> Iterator:
    """The file's last lines, then (follow) what is appended, read through the same handle so no
    line is lost or doubled in between; stops once the process is gone and the file is drained."""
    try:
        fh = open(path, "rb")
    except OSError:
        yield _PAST_END
        return
    with fh:
        start = max(0, fh.seek(0, 2) - 64 * 1024)
        fh.seek(start)
        text = fh.read()
        if start:
            text = text.partition(b"\n")[2]  # we landed inside a line: drop its end
        complete, _, partial = text.rpartition(b"\n")
        past = complete.decode("utf-8", errors="replace").splitlines()
        if not follow and partial:
            past.append(partial.decode("utf-8", errors="replace"))
        yield from past[-lines:] if lines > 0 else []
        yield _PAST_END
        if not follow:
            return
        buf = partial
        idle_since = time.monotonic()
        while True:
            chunk = fh.read()
            if chunk:
                buf += chunk
                *done, buf = buf.split(b"\n")
                for raw in done:
                    yield raw.decode("utf-8", errors="replace")
                idle_since = time.monotonic()
                continue
            if time.monotonic() - idle_since > 0.5 and not alive():
                if buf:
                    yield buf.decode("utf-8", errors="replace")
                return
            time.sleep(0.1)


def _container_lines(container, lines: int, follow: bool) -> Iterator:
    """The engine's log of a container: the past up to now, then (follow) from now on."""
    now = time.time()
    past = container.logs(tail=lines, until=now) if follow else container.logs(tail=lines)
    yield from past.decode("utf-8", errors="replace").splitlines()
    yield _PAST_END
    if not follow:
        return
    buf = b""
    for chunk in container.logs(stream=True, follow=True, since=now):  # ends when the container stops
        buf += chunk
        *done, buf = buf.split(b"\n")
        for raw in done:
            yield raw.decode("utf-8", errors="replace")
    if buf:
        yield buf.decode("utf-8", errors="replace")
