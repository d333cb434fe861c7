"""Starting a run (`inv run`): gather the machine's facts, plan, start every service under the
supervisor, then watch it in the foreground or leave it detached."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable

from ..certs import require_certs
from ..debug import debug_plan
from ..engine import gpu_request, probe_docker, wanted_images
from ..envs import env_status
from ..errors import RunError
from ..host import probe_machine
from ..layout import Layout
from ..machine import Machine
from ..pinning import pin_unpinned
from ..plan import Plan
from ..preflight import Probes, require_ready, run_preflight
from ..project import Project
from . import dashboard as launch
from .containers import ContainerRunner
from .dashboard import planned_view
from .inventory import live_records
from .locks import action
from .native import NativeRunner
from .printer import Printer
from .processes import log_pumps
from .smoke import plan_targets, smoke_project
from .state import RunLock, RunState, StateWriteError, read_state, run_options, write_last_run
from .stop import stop
from .supervisor import Interrupted, Signalled, Supervisor, shielded, signals_raise

# What a detached run ends with: each a command as the tasks take it (tests/spine/test_hints.py)
DETACHED_HINT = "detached: `inv status`, `inv logs [--service NAME] --follow`, `inv dashboard`, `inv stop`"

def run_project(*, native: bool = False, services: list[str] | None = None, detach: bool = False,
                preflight: bool = True, debug: list[str] | None = None, debug_wait: bool = False,
                tls: bool | None = None, otlp: str | None = None, smoke: bool = False,
                dashboard: bool = True, replicas: dict[str, int] | None = None,
                say: Callable[[str], Callable[[str], None]] = lambda _prefix: (lambda _line: None)) -> int:
    """`inv run`: load the project, plan (asking the Docker engine at most once), check, start, and
    watch or detach. Returns the run's exit code. `say(prefix)` gives a sink for progress lines.
    `replicas`: --replicas, over the stack's `replicas`."""
    project = Project.load()
    stack = project.stack
    # the Docker engine is asked once whether containers can get a GPU; preflight reuses the answer
    def make(m: Machine) -> Plan:
        return project.plan(m, native=native, services=services, tls=tls, otlp=otlp, replicas=replicas)
    the_plan, machine, engine = plan_run(stack, make)
    the_plan, engine = pin_first_build(the_plan, engine, lambda: make(machine), say("images"))
    if any(s.url.startswith("https://") for s in the_plan.services.values()):
        require_certs(stack.root, stack.name)
    if debug:
        the_plan = debug_plan(the_plan, debug, debug_wait, say("debug"))
    if preflight:
        probes = Probes(docker=lambda *_args, **_kw: engine) if engine is not None else None
        require_ready(run_preflight(stack, the_plan, for_run=True, probes=probes))

    def smoke_once() -> int:
        result = smoke_project(stack, machine, plan_targets(the_plan))
        for line in result.lines():
            say("smoke")(line)
        return result.exit_code

    def env_state(env: str) -> str:
        return env_status(stack.root, env, stack.envs[env]) if env in stack.envs else "ok"
    board = stack.stack.dashboard_port or 0 if dashboard and stack.stack.dashboard else None
    return up(the_plan, machine, on_crash=stack.stack.on_crash, detach=detach, env_state=env_state,
              on_healthy=smoke_once if smoke else None, dashboard=board)


def up(plan: Plan, machine: Machine, *, on_crash: str = "keep", detach: bool = False,
       out=None, progress: Callable[[str], None] | None = None,
       env_state: Callable[[str], str] | None = None,
       on_healthy: Callable[[], int] | None = None, dashboard: int | None = None) -> int:
    """`on_healthy`: run once every service is healthy (`inv run --smoke`); a detached run returns
    its exit code, an attached run keeps going whatever it says. `dashboard`: serve the live
    dashboard on this port (0: the default one), or not at all (None)."""
    root = Path(plan.root)
    lock = RunLock(root)
    holder = lock.acquire()
    if holder is not None:
        raise RunError(f"another `inv run` of this stack is starting or running{f' (pid {holder})' if holder else ''}",
                       fix="wait for it, or `inv status` / `inv stop`")
    try:
        return _up(plan, machine, root, on_crash=on_crash, detach=detach, out=out, progress=progress,
                   env_state=env_state, on_healthy=on_healthy, dashboard=dashboard)
    finally:
        lock.release()


def _up(plan: Plan, machine: Machine, root: Path, *, on_crash, detach, out, progress, env_state,
        on_healthy, dashboard) -> int:
    printer = Printer(["duplex", *plan.start_order], out=out)
    progress = progress or printer.system
    # the check and the run's first state under the action lock: never while an `inv restart` or
    # `inv stop` is changing the run (refused with the line that names it)
    with action(root, "`inv run`", wait=False):
        state_now = read_state(root)
        active, stale = live_records(root, state_now)  # checked against the processes and the engine
        recorded = {n: r.get("pid") for n, r in state_now["services"].items()}
        lost = {n: [p for p in pids if p != recorded.get(n)]  # running, though the state lost its record
                for n, pids in log_pumps(Layout(root).logs).items()}
        active = [*active, *(f"{n}: pid {', '.join(map(str, p))}, not in the run state" for n, p in lost.items() if p)]
        if active:
            raise RunError(f"a run of this stack is already going ({', '.join(active)})",
                           fix="`inv status` to see it, `inv stop` to end it")
        if stale:
            progress(f"cleared the records of {', '.join(stale)}: no longer running (a killed run, or "
                     "containers removed outside duplex)")
        runners = {"native": NativeRunner(root, detach=detach, env_state=env_state)}
        if any(s.mode == "container" for s in plan.services.values()):
            runners["container"] = ContainerRunner(root, plan.stack, detach=detach)
        for warning in plan.warnings:
            printer.system(f"warning: {warning}")
        state = RunState(root, plan.stack, "native" if plan.native else "container", warn=printer.system,
                         waves=plan.waves, options=run_options(plan, dict(os.environ)))
        state.begin()  # before anything starts: a run `inv stop` could not find must never begin
    try:
        write_last_run(root, plan.stack, plan.start_order, plan.waves, run_options(plan, dict(os.environ)))  # `inv logs` shows these, in this order
    except StateWriteError as err:  # only `inv logs` needs it: the run itself goes on
        printer.system(f"warning: {err}; `inv logs` will show the previous run's services")
    board = _dashboard(plan, root, dashboard, detach, printer) if dashboard is not None else None
    asked: list[bool] = []  # the dashboard watches every service: a stop asks it to end first
    sup = Supervisor(plan, runners, printer, state, on_crash=on_crash,
                     on_stop=(lambda: asked.append(launch.terminate(root))) if board is not None else lambda: None)
    try:
        code = _serve(plan, root, sup, printer, progress, detach, on_healthy, board)
    except BaseException:
        if board is not None:
            _stop_dashboard(root, any(asked))
        raise
    if board is not None and not detach:  # a detached run keeps its dashboard until `inv stop`
        _stop_dashboard(root, any(asked))
    return code


def _started(root: Path) -> None:
    try:
        launch.services_started(root)
    except OSError:
        pass  # a full disk: the dashboard starts after its own wait instead


def _stop_dashboard(root: Path, signalled: bool = False) -> None:
    with shielded():
        launch.stop(root, signalled=signalled)


def _dashboard(plan: Plan, root: Path, port: int, detach: bool, printer: Printer):
    """Start the dashboard's process (it never fails the run: a dashboard that cannot start is said)."""
    launch.stop(root)  # one a killed detached run left (`inv stop` was not run): never two
    chosen, why = launch.choose_port(port or None, {s.port for s in plan.services.values()})
    if why:
        printer.system(f"dashboard: {why}; using {chosen}")
    traces = launch.trace_port(plan.telemetry)
    gateway = None
    if traces and any(s.mode == "container" for s in plan.services.values()):
        gateway, why = launch.container_gateway(traces)
        if gateway is None:  # said once, here: silence would lose every container span
            printer.system(f"dashboard: container services' traces need a collector of your own at "
                           f"{plan.telemetry} ({why})")
    try:
        board = launch.start(root, planned_view(plan), port=chosen, detach=detach, otlp_port=traces,
                             otlp_gateway=gateway)
    except OSError as exc:
        printer.system(f"warning: the dashboard could not start ({exc.strerror or exc}); the run goes on")
        return None
    printer.system(f"dashboard: {board.link}")
    if traces:
        printer.system(f"dashboard: receiving the services' traces at {plan.telemetry} (no collector there)")
    return board


def _serve(plan: Plan, root: Path, sup: Supervisor, printer: Printer, progress, detach, on_healthy, board) -> int:
    try:
        with signals_raise():  # until watch() takes over, SIGTERM unwinds the start like Ctrl-C
            took = sup.up(progress)
            if board is not None:
                _started(root)
            slowest = max(sup.timings.values(), default=0.0)
            printer.system(f"all {len(plan.services)} services healthy in {took:.2f}s "
                           f"(start overhead {max(0.0, took - _critical_path(plan, sup.timings)):.2f}s; "
                           f"slowest service {slowest:.2f}s)")
            for name in plan.start_order:
                printer.system(f"  {name:<10} {plan.services[name].url}")
            if board is not None:
                printer.system(f"  {'dashboard':<10} {board.link}")
            checked = on_healthy() if on_healthy else 0
            if detach:
                printer.system(DETACHED_HINT)
                return checked
            printer.system("press Ctrl-C to stop everything")
            code = sup.watch()  # installs its own SIGTERM handler: no gap in which a signal orphans
            with shielded():
                _stop_restarted(root, printer)
            return code
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


def pin_first_build(the_plan: Plan, engine, replan: Callable[[], Plan], say: Callable[[str], None]):
    """The first container run of a base image records its digest in images.lock (as the first
    prefetch records a model's commit), so every later build starts FROM the same bytes. A base no
    registry answers for is left to preflight, which says why and what to do."""
    if not pin_unpinned(the_plan, say, engine):
        return the_plan, engine
    the_plan = replan()
    return the_plan, (probe_docker(dict(os.environ), wanted_images(the_plan), the_plan.stack) if engine else None)


def _stop_restarted(root: Path, printer: Printer) -> None:
    """Services restarted during an attached run (`inv restart`, the dashboard) are not the
    supervisor's children: they stop with the run all the same."""
    if read_state(root)["services"]:
        stop(root, say=printer.system)


def plan_run(stack, make_plan: Callable[[Machine], Plan], environ: dict[str, str] | None = None,
             *, machine: Machine | None = None, engine_probe: Callable | None = None):
    """(plan, machine, engine facts or None) for `inv run`. The Docker engine is asked at most once,
    and only when a container of the plan may want a GPU and the host has one; the plan is then
    made again with its answer, so a GPU is requested only when containers can get one. Preflight
    reuses the facts returned (same services, same images) instead of asking again."""
    environ = dict(os.environ if environ is None else environ)
    machine = machine or probe_machine(environ, nvidia_runtime=False,  # the engine is asked below
                                       keep=stack.secret_names, stack=stack)
    the_plan = make_plan(machine)
    wants = any(s.mode == "container" and s.gpu_policy != "none" for s in the_plan.services.values())
    if not (wants and machine.gpu_count):
        return the_plan, machine, None
    engine = (engine_probe or probe_docker)(environ, wanted_images(the_plan), the_plan.stack)
    form = gpu_request(engine)
    machine = dataclasses.replace(machine, nvidia_runtime=form is not None, gpu_request=form or "nvidia")
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
