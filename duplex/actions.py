"""Restart, stop and start one service of the run in progress (`inv restart NAME`, the dashboard's
buttons): the same plan, runners, health wait and dependency rules as `inv run`. A warm service can
instead reload its code in place or its model in a fresh server process (`inv restart NAME --code
| --model`), the socket held throughout.

A service started here runs detached (its log pump or the engine keeps its log), whatever the run's
mode: the `inv` that would read its pipe may be gone. Its record replaces the old one in the run
state, so `inv status`, `inv stop` and an attached `inv run` (which stops it on Ctrl-C) see it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .control import live_records, stop
from .errors import PlanError, RunError
from .health import wait_healthy
from .state import last_options, last_run_info, read_state, write_state

Say = Callable[[str], None]


def _plan_again(root: Path):
    from .project import Project
    from .start import plan_run
    options = read_state(root).get("options") or last_options(root)
    if not isinstance(options, dict):
        raise RunError("no run of this stack is in progress (or it was started by an older duplex)",
                       fix="`inv run` (or `inv run --detach`) first")
    project = Project.load()  # run where `inv run` ran (the dashboard starts in the project root)
    the_plan, _machine, _engine = plan_run(project.stack, lambda m: project.plan(
        m, native=bool(options.get("native")), services=options.get("services") or None,
        tls=True if options.get("tls") else None, otlp=options.get("otlp")))
    return the_plan


def _service(the_plan, name: str):
    if name not in the_plan.services:
        raise PlanError(f"{name!r} is not a service of the run in progress",
                        fix=f"choose from: {', '.join(the_plan.start_order)}")
    return the_plan.services[name]


def stop_service(root: Path, name: str, say: Say = lambda _line: None) -> list[str]:
    return stop(root, services=[name], say=say)  # an unknown name is refused there


def start_service(root: Path, name: str, say: Say = lambda _line: None, the_plan=None) -> float:
    """Start one stopped service of the run and wait until it is healthy; returns the seconds taken.
    Its required dependencies must be running (as `inv run` starts them first)."""
    import time
    the_plan = the_plan or _plan_again(root)
    svc = _service(the_plan, name)
    live, _stale = live_records(root)
    if name in live:
        raise RunError(f"{name} is already running", fix=f"`inv restart {name}` to start it afresh")
    missing = [d for d, required in svc.depends_on.items() if required and d not in live]
    if missing:
        raise RunError(f"{name} needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                       "not running", fix=f"start {', '.join(missing)} first (`inv restart {missing[0]}`)")
    if svc.mode == "native":
        from .native import NativeRunner
        runner = NativeRunner(Path(root), detach=True)
    else:
        from .containers import ContainerRunner
        runner = ContainerRunner(Path(root), the_plan.stack, detach=True)
    began = time.monotonic()
    runner.prepare([svc], say)
    handle = runner.start(svc, None)
    state = read_state(root)
    if "stack" not in state:  # the service was the run's last: the state file went with it
        state.update({k: v for k, v in last_run_info(root).items() if k in ("stack", "waves", "options")})
    state["services"][name] = {**handle.record(), "health": {"kind": svc.health.kind, "url": svc.health.url,
                                                             "ca": svc.health.ca}}
    write_state(root, state)
    say(f"{name}: started ({svc.mode}, {handle.ident}); waiting for {svc.health.kind} health")
    outcome = wait_healthy(svc.health, lambda: handle.exit_code() is None)
    if outcome != "healthy":
        why = (f"exited with code {handle.exit_code()}" if outcome == "exited"
               else f"did not become healthy within {svc.health.timeout:g}s")
        raise RunError(f"{name} {why} after the restart", fix=f"`inv logs --service {name}` says why")
    took = time.monotonic() - began
    say(f"{name}: healthy at {svc.url} after {took:.2f}s")
    return took


def restart_service(root: Path, name: str, say: Say = lambda _line: None) -> float:
    """Stop the service (its dependents keep running: they reconnect) and start it again."""
    the_plan = _plan_again(root)
    _service(the_plan, name)
    stop(root, services=[name], say=say)
    return start_service(root, name, say, the_plan)


def reload_service(root: Path, name: str, what: str, say: Say = lambda _line: None) -> float:
    """A warm service (native, reload = "warm"): "code" re-imports the app in place, the preloaded
    models kept; "model" starts a fresh server process, so the preload loads them again. Waits
    until the reload is served, reading the reloader's own lines in the service's log; returns the
    seconds taken. Requests meanwhile wait (the reloader holds the socket), none is refused."""
    import os
    import time

    import psutil

    from . import warm
    from .layout import Layout
    from .logs import PAST_END, file_lines
    the_plan = _plan_again(root)
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
        if "restarting fully" in line:
            fresh = True
        if fresh and "Application startup complete" in line:
            if wait_healthy(svc.health, lambda: psutil.pid_exists(pid),
                            timeout=max(1.0, deadline - time.monotonic())) != "healthy":
                break
            took = time.monotonic() - began
            say(f"{name}: model reloaded, healthy after {took:.2f}s")
            return took
    if not psutil.pid_exists(pid):
        raise RunError(f"{name}: its reloader exited during the reload", fix=f"`inv logs --service {name}` says why")
    raise RunError(f"{name}: the {what} reload was not served within {svc.health.timeout:g}s (start_timeout)",
                   fix=f"`inv logs --service {name}` says where it stopped; `inv restart {name}` starts it afresh")


def _supervisor_pid(pid: int) -> int | None:
    """The reloader's supervisor: the recorded pid itself (attached runs) or its child (a detached
    run records the log pump); None when neither runs it. Only the supervisor may get the reload
    signals: the server process and the log pump would die of them."""
    import psutil

    from .warm import RUNNER
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

