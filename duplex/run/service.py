"""Restart, stop and start one service of the run in progress (`inv restart NAME`, the dashboard's
buttons): the same plan, runners, health wait and dependency rules as `inv run`. A warm service can
instead reload its code in place or its model in a fresh server process (`inv restart NAME --code
| --model`), the socket held throughout.

A service started here runs detached (its log pump or the engine keeps its log), whatever the run's
mode: the `inv` that would read its pipe may be gone. Its record replaces the old one in the run
state, so `inv status`, `inv stop` and an attached `inv run` (which stops it on Ctrl-C) see it.
Each is one action on the run (duplex.run.locks: a second waits or is refused), planned with the ports
and variables the run recorded, whatever shell or process asks.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import psutil

from .. import warm
from ..errors import PlanError, RunError
from ..layout import Layout
from ..plan import port_variable
from ..project import Project
from ..syntax import service_of_instance
from ..warm import RUNNER
from .containers import ContainerRunner
from .health import wait_healthy
from .inventory import DOCKER, Engine, live_records
from .locks import action
from .logs import PAST_END, file_lines
from .native import NativeRunner
from .start import plan_run
from .state import KEPT, changing, last_options, last_run_info, read_state
from .stop import stop

Say = Callable[[str], None]


def _plan_again(root: Path, say: Say = lambda _line: None):
    options = read_state(root).get("options") or last_options(root)
    if not isinstance(options, dict):
        raise RunError("no run of this stack is in progress (or it was started by an older duplex)",
                       fix="`inv run` (or `inv run --detach`) first")
    project = Project.load()  # run where `inv run` ran (the dashboard starts in the project root)
    environ = planning_env(options, dict(os.environ), say)
    services = options.get("services") or None
    recorded = options.get("replicas") if isinstance(options.get("replicas"), dict) else {}
    # the run's replicas, whatever the stack says now: a service the record leaves out ran one
    replicas = {n: recorded.get(n, 1) for n in services or () if n in project.stack.services}
    the_plan, _machine, _engine = plan_run(project.stack, lambda m: project.plan(
        m, native=bool(options.get("native")), services=services,
        tls=True if options.get("tls") else None, otlp=options.get("otlp"), replicas=replicas), environ)
    return the_plan


def planning_env(options: dict, environ: dict[str, str], say: Say = lambda _line: None) -> dict[str, str]:
    """`environ` (the caller's) with what the run was planned with put back: each service's port
    and the planning variables, set or unset as the run had them. The shell of a restart is often
    not the run's: a service moved to another port would leave its dependents and the dashboard
    pointing at the old one. A secret the run had and `environ` lacks is refused (never recorded,
    it cannot be put back). Runs recorded by an older duplex carry none of this: `environ` as is."""
    environ = dict(environ)
    ports = options.get("ports")
    for name, port in (ports.items() if isinstance(ports, dict) else ()):
        var = port_variable(name)
        if environ.get(var, str(port)) != str(port):
            say(f"{var}={environ[var]} here is not the run's: {name} keeps the run's port {port}, "
                "which its dependents and the dashboard use (`inv stop` and `inv run` to move it)")
        environ[var] = str(port)
    kept, withheld = options.get("env"), options.get("secrets") or ()
    if isinstance(kept, dict):
        for key in KEPT:
            if key in withheld:  # its value had credentials in it: only the caller's can be used
                continue
            if isinstance(kept.get(key), str):
                environ[key] = kept[key]
            else:
                environ.pop(key, None)
    missing = [k for k in options.get("secrets") or () if isinstance(k, str) and not environ.get(k)]
    if missing:
        names = ", ".join(missing)
        raise RunError(f"the run was started with {names} set, and this environment has "
                       f"{'it' if len(missing) == 1 else 'them'} not: the service would start without",
                       fix=f"set {names} as for `inv run` (or run this from the run's shell)")
    return environ


def _service(the_plan, name: str):
    if name not in the_plan.services:
        raise PlanError(f"{name!r} is not a service of the run in progress",
                        fix=f"choose from: {', '.join(the_plan.start_order)}")
    return the_plan.services[name]


def _instances(the_plan, name: str, one: bool = False) -> list[str]:
    """What an action on `name` acts on: a service's every replica (asr, asr_1, ...), or with `one`
    (the dashboard's row) only the replica so named."""
    found = [n for n in the_plan.start_order if n == name or (not one and service_of_instance(n) == name)]
    if not found:
        _service(the_plan, name)  # the error that names the choices
    return found


def stop_service(root: Path, name: str, say: Say = lambda _line: None, *, wait: bool = True,
                 what: str | None = None, engine: Engine = DOCKER, one: bool = False) -> list[str]:
    """`wait`: for an action in progress (else refused with the line that names it). `one`: only
    the replica so named (the dashboard's row), not all the service's."""
    return stop(root, services=[name], say=say, wait=wait,  # an unknown name is refused there
                what=what or f"`inv stop --services {name}`", engine=engine, exact=one)


def start_service(root: Path, name: str, say: Say = lambda _line: None, the_plan=None, *,
                  wait: bool = True, what: str | None = None, engine: Engine = DOCKER, one: bool = False) -> float:
    """Start one stopped service of the run and wait until it is healthy; returns the seconds taken.
    Its required dependencies must be running (as `inv run` starts them first). One action on the
    run at a time (duplex.run.locks): `wait` for one in progress, or refuse. `the_plan`: the run's
    plan (else planned again as the run recorded it); `engine`: the Docker engine (tests: a fake)."""
    with action(root, what or f"the start of {name}", wait=wait, say=say):
        the_plan = the_plan or _plan_again(root, say)
        return sum(_start(root, n, say, the_plan, engine) for n in _instances(the_plan, name, one))


def _start(root: Path, name: str, say: Say, the_plan, engine: Engine) -> float:
    svc = _service(the_plan, name)
    live, _stale = live_records(root, engine=engine)
    if name in live:
        raise RunError(f"{name} is already running", fix=f"`inv restart {name}` to start it afresh")
    missing = [d for d, required in svc.depends_on.items() if required and d not in live]
    if missing:
        raise RunError(f"{name} needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                       "not running", fix=f"start {', '.join(missing)} first (`inv restart {missing[0]}`)")
    if svc.mode == "native":
        runner = NativeRunner(Path(root), detach=True)
    else:
        runner = ContainerRunner(Path(root), the_plan.stack, detach=True)
    began = time.monotonic()
    runner.prepare([svc], say)
    handle = runner.start(svc, None)
    with changing(root) as state:
        if "stack" not in state:  # the service was the run's last: the state file went with it
            state.update({k: v for k, v in last_run_info(root).items() if k in ("stack", "waves", "options")})
        state["services"][name] = {**handle.record(), "health": {"kind": svc.health.kind, "url": svc.health.url,
                                                                 "ca": svc.health.ca}}
    say(f"{name}: started ({svc.mode}, {handle.ident}); waiting for {svc.health.kind} health")
    outcome = wait_healthy(svc.health, lambda: handle.exit_code() is None)
    if outcome != "healthy":
        why = (f"exited with code {handle.exit_code()}" if outcome == "exited"
               else f"did not become healthy within {svc.health.timeout:g}s")
        raise RunError(f"{name} {why} after the restart", fix=f"`inv logs --service {name}` says why")
    took = time.monotonic() - began
    say(f"{name}: healthy at {svc.url} after {took:.2f}s")
    return took


def restart_service(root: Path, name: str, say: Say = lambda _line: None, *, wait: bool = True,
                    what: str | None = None, the_plan=None, engine: Engine = DOCKER, one: bool = False) -> float:
    """Stop the service (its dependents keep running: they reconnect) and start it again, as one
    action on the run (duplex.run.locks): `wait` for one in progress, or refuse. `the_plan` and
    `engine` as for `start_service`."""
    with action(root, what or f"`inv restart {name}`", wait=wait, say=say):
        the_plan = the_plan or _plan_again(root, say)
        names = _instances(the_plan, name, one)  # a service's replicas: all stopped, then each started
        stop(root, services=[name], say=say, engine=engine, exact=one)
        return sum(_start(root, n, say, the_plan, engine) for n in names)


def reload_service(root: Path, name: str, what: str, say: Say = lambda _line: None, *, wait: bool = True,
                   by: str | None = None, one: bool = False) -> float:
    """A warm service (native, reload = "warm"): "code" re-imports the app in place, the preloaded
    models kept; "model" starts a fresh server process, so the preload loads them again. Waits
    until the reload is served, reading the reloader's own lines in the service's log; returns the
    seconds taken. Requests meanwhile wait (the reloader holds the socket), none is refused."""
    with action(root, by or (f"`inv restart {name} --code`" if what == "code" else f"`inv restart {name} --model`"), wait=wait, say=say):
        the_plan = _plan_again(root, say)
        return sum(_reload(root, n, what, say, the_plan) for n in _instances(the_plan, name, one))


def _reload(root: Path, name: str, what: str, say: Say, the_plan) -> float:
    svc = _service(the_plan, name)
    if not (svc.mode == "native" and warm.is_warm(svc.command)):
        how = "in a container" if svc.mode == "container" else "natively without reload = \"warm\""
        raise RunError(f"{name} does not reload warm (it runs {how}), so there is no {what} to reload apart",
                       fix=f"`inv restart {name}` restarts it; warm reload: docs/warm-reload.md")
    record = live_records(root)[0].get(name)
    if record is None:
        raise RunError(f"{name} is not running", fix=f"`inv restart {name}` starts it")
    pid = _supervisor_pid(record["pid"])
    if pid is None:
        raise RunError(f"{name}: no warm reloader runs under pid {record['pid']}",
                       fix=f"`inv restart {name}` starts it afresh")
    began = time.monotonic()
    deadline = began + svc.health.timeout
    lines = file_lines(Layout(root).log(name), 0, True,
                       lambda: psutil.pid_exists(pid) and time.monotonic() < deadline)
    next(lines)  # PAST_END: from here on, only what the reload writes
    os.kill(pid, warm.RELOAD_SIGNALS[what])
    say(f"{name}: " + ("re-importing its code, models kept" if what == "code" else
                       "reloading its model: a fresh server process runs the preload"))
    fresh = what == "model"
    for line in lines:
        if line is PAST_END:
            continue
        if "Warm reload: " in line:
            say(f"{name}: {line.partition('Warm reload: ')[2]}")
        if not fresh and "re-imported" in line:
            took = time.monotonic() - began
            say(f"{name}: code reloaded in {took:.2f}s")
            return took
        if not fresh and "every request gets HTTP 500" in line:
            raise RunError(f"{name}: the code reload failed: {line.partition('Warm reload: ')[2].rstrip(':')}",
                           fix=f"fix the error (`inv logs --service {name}` shows it); the next edit reloads it")
        # a fresh server process instead: asked (--model), an edit that needs one, or a code reload
        # asked while the server process had died (the reloader then starts one, and says so)
        if "restarting fully" in line or "starting a fresh server process" in line:
            fresh = True
        if fresh and "Application startup complete" in line:
            if wait_healthy(svc.health, lambda: psutil.pid_exists(pid),
                            timeout=max(1.0, deadline - time.monotonic())) != "healthy":
                break
            took = time.monotonic() - began
            say(f"{name}: model reloaded, healthy after {took:.2f}s" if what == "model" else
                f"{name}: code reloaded in a fresh server process (models loaded again), healthy after {took:.2f}s")
            return took
    if not psutil.pid_exists(pid):
        raise RunError(f"{name}: its reloader exited during the reload", fix=f"`inv logs --service {name}` says why")
    raise RunError(f"{name}: the {what} reload was not served within {svc.health.timeout:g}s (start_timeout)",
                   fix=f"`inv logs --service {name}` says where it stopped; `inv restart {name}` starts it afresh")


def _supervisor_pid(pid: int) -> int | None:
    """The reloader's supervisor: the recorded pid itself (attached runs) or its child (a detached
    run records the log pump); None when neither runs it. Only the supervisor may get the reload
    signals: the server process and the log pump would die of them."""
    try:
        top = psutil.Process(pid)
        for proc in (top, *top.children(recursive=True)):
            argv = proc.cmdline()
            # the script itself, not the log pump whose argv carries the command after its own
            if argv[1:2] == [str(RUNNER)] and "--serve-fd" not in argv:
                return proc.pid
    except psutil.Error:
        return None
    return None

