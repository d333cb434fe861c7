"""Start services in dependency order, wait for health, watch them, stop them all cleanly."""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from ..errors import DuplexError, RunError
from ..layout import Layout
from ..plan import Plan
from .health import wait_healthy
from .logs import logs
from .printer import Printer
from .runner import Handle, Runner
from .state import RunState, read_state, same_process

LOG_BACKLOG = 500  # lines of a process started elsewhere shown when this terminal picks it up
TAIL = 15


class Signalled(BaseException):
    """SIGTERM while starting, raised in the main thread as Ctrl-C raises KeyboardInterrupt.

    A BaseException for the same reason: no `except Exception` on the way may swallow it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class Interrupted(RunError):
    """Start-up was cut short by Ctrl-C or SIGTERM; what had started is stopped again."""

    def __init__(self, message: str, code: int):
        super().__init__(message, fix="nothing is left running; `inv run` starts again")
        self.exit_code = code


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def signals_raise() -> Iterator[None]:
    """While starting, SIGTERM interrupts the main thread like Ctrl-C, so the start is unwound."""
    if not _main_thread():  # signal handlers can only be set there
        yield
        return

    def handler(signum, _frame):
        raise Signalled(signum)
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def shielded() -> Iterator[None]:
    """While stopping, a second Ctrl-C or SIGTERM must not cut the stop short and leave orphans."""
    if not _main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class Supervisor:
    def __init__(self, plan: Plan, runners: dict[str, Runner], printer: Printer, state: RunState, *,
                 on_crash: str = "keep", grace: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 on_stop: Callable[[], None] = lambda: None):
        self.plan = plan
        self.runners = runners
        self.printer = printer
        self.state = state
        self.on_crash = on_crash
        self.grace = grace
        self.clock = clock
        self.handles: dict[str, Handle] = {}
        self.healthy: dict[str, threading.Event] = {n: threading.Event() for n in plan.services}
        self.failure: RunError | None = None
        self.timings: dict[str, float] = {}
        self.stopped: list[str] = []  # by down(), in the order they were stopped
        self.lock = threading.Lock()
        self.starting = 0  # runner.start calls under way whose handle is not registered yet
        self.idle = threading.Condition(self.lock)  # notified when `starting` drops
        self.closing = threading.Event()  # set by down(): followers of services restarted elsewhere end
        self.on_stop = on_stop  # called once as the stop begins, before any service (the dashboard)

    # -- start -----------------------------------------------------------------------------
    def up(self, progress: Callable[[str], None]) -> float:
        """Prepare, start everything, wait until healthy. Returns seconds to all healthy.

        Ctrl-C or SIGTERM (under `signals_raise`) during a build or a health wait stops what has
        started, after the start threads have seen the failure and returned, then re-raises."""
        started: list[threading.Thread] = []
        try:
            for mode, runner in self.runners.items():
                services = [s for s in self.plan.services.values() if s.mode == mode]
                if services:
                    runner.prepare(services, progress)
            began = self.clock()
            for name in self.plan.start_order:
                thread = threading.Thread(target=self._bring_up, args=(name,), daemon=True)
                thread.start()
                started.append(thread)
            for t in started:
                t.join()
        except BaseException:
            with shielded():
                self._fail(RunError("start-up interrupted"))
                for t in started:  # each notices within a poll; a start in progress finishes first
                    t.join()
                with self.idle:  # not only join: after a join cut short by Ctrl-C, CPython < 3.13 takes a
                    # running thread for finished (gh-90882), and a thread started just before the
                    # signal may be missing from `started`; a start under way would be orphaned
                    self.idle.wait_for(lambda: self.starting == 0)
                self.down()
            raise
        if self.failure:
            with shielded():  # an impatient Ctrl-C must not orphan the rest nor replace the error
                self.down()
            raise self.failure
        return self.clock() - began

    def _bring_up(self, name: str) -> None:
        try:
            self._start_one(name)
        except DuplexError as err:  # e.g. the certificates cannot be staged: its own message and fix
            self._fail(err)
        except Exception as exc:  # noqa: BLE001 - a runner's bug: fail the run saying what happened, never hang
            self._fail(RunError(f"{name}: could not be started ({type(exc).__name__}: {exc})",
                                fix=f"`inv logs --service {name}`; if it persists, report this message"))

    def _start_one(self, name: str) -> None:
        svc = self.plan.services[name]
        for dep in svc.depends_on:  # optional ones too, when they are part of the run
            while not self.healthy[dep].wait(0.1):
                if self.failure:
                    return
        with self.lock:  # a start begins only while the run stands, and counts until registered
            if self.failure:
                return
            self.starting += 1
        try:
            began = self.clock()
            try:
                handle = self.runners[svc.mode].start(svc, self.printer.line)
            except RunError as err:
                self._fail(err)
                return
            with self.lock:
                self.handles[name] = handle
            self.state.add({**handle.record(), "health": {"kind": svc.health.kind, "url": svc.health.url,
                                                       "ca": svc.health.ca}})
        finally:
            with self.idle:
                self.starting -= 1
                self.idle.notify_all()
        self.printer.system(f"{name}: started ({svc.mode}, {handle.ident}); waiting for {svc.health.kind} health")
        outcome = wait_healthy(svc.health, lambda: handle.exit_code() is None and not self.failure)
        if outcome == "healthy":
            getattr(handle, "healthy", lambda: None)()  # e.g. a persistent container: keep it warm now
            self.timings[name] = self.clock() - began
            self.printer.system(f"{name}: healthy at {svc.url} after {self.timings[name]:.2f}s")
            self.healthy[name].set()
            return
        if self.failure:
            return
        if outcome == "exited":
            msg = f"{name} exited with code {handle.exit_code()} before it became healthy"
        else:
            msg = f"{name} did not become healthy within {svc.health.timeout:g}s ({svc.health.url})"
        self._fail(RunError(msg + _tail(handle), fix=f"read the log above; `inv logs --service {name}` keeps it"))

    def _fail(self, err: DuplexError) -> None:
        with self.lock:
            if self.failure is None:
                self.failure = err

    # -- watch -----------------------------------------------------------------------------
    def watch(self, poll: float = 0.2) -> int:
        """Foreground: report crashes at once; after Ctrl-C (130) or SIGTERM (143), stop all."""
        stop = threading.Event()
        signalled: list[int] = []
        previous = signal.signal(signal.SIGTERM, lambda *_: (signalled.append(143), stop.set()))
        reported: set[str] = set()
        code = 0
        try:
            while not stop.wait(poll):
                for name, handle in list(self.handles.items()):
                    rc = handle.exit_code()
                    if rc is None or name in reported:
                        continue
                    if self._replaced(name, handle):
                        continue
                    reported.add(name)
                    self.printer.system(f"{name} crashed: exited with code {rc}{_tail(handle)}")
                    code = 1
                    if self.on_crash == "stop":
                        self.printer.system("stack option on_crash = 'stop': stopping the others")
                        return code
                if reported and len(reported) == len(self.handles):
                    self.printer.system("every service has exited")
                    return code
        except KeyboardInterrupt:
            signalled.append(130)
        finally:
            signal.signal(signal.SIGTERM, previous)
            with shielded():
                self.down()
        return signalled[0] if signalled else code

    def _replaced(self, name: str, handle: Handle) -> bool:
        """A service stopped or restarted from elsewhere (`inv restart`, `inv stop --services NAME`, the
        dashboard) is no crash: its record in the run state is no longer this handle's."""
        root = getattr(self.state, "root", None) or self.plan.root
        state = read_state(root)
        current = state["services"].get(name)
        if current is not None and current.get("stopping") and same_process(current, handle.record()):
            current = None  # `inv stop --services NAME`, or the first half of a restart
        elif "stack" not in state and not Layout(root).state.exists():
            current = None  # the run's last service stopped from elsewhere: its record went with the file
        elif "stack" not in state or (current is not None and same_process(current, handle.record())):
            return False  # no readable state (a full disk kept an old one whole) says nothing else
        with self.lock:
            self.handles.pop(name, None)
        if current:
            what = f"restarted (pid {current['pid']})" if current.get("pid") else \
                f"restarted (container {str(current.get('container'))[:12]})"
        else:
            what = "stopped"
        self.printer.system(f"{name}: {what} outside this terminal; its lines show here while it runs")
        threading.Thread(target=self._follow, args=(root, name), daemon=True, name=f"follow-{name}").start()
        return True

    def _follow(self, root, name: str, poll: float = 0.25) -> None:
        """The lines of a service (re)started from elsewhere come to this terminal as before: each
        new process or container of it, from its first line (its log starts empty), until the run ends."""
        followed = None
        while not self.closing.is_set():
            record = read_state(root)["services"].get(name)
            ident = record and not record.get("stopping") and (record.get("pid"), record.get("container"))
            if not ident or ident == followed:
                self.closing.wait(poll)
                continue
            followed = ident
            try:
                for _name, text in logs(root, name, follow=True, lines=LOG_BACKLOG):
                    if self.closing.is_set():
                        return
                    self.printer.line(name, text)
            except Exception as exc:  # noqa: BLE001 - the run goes on; `inv logs` still has them
                self.printer.system(f"{name}: cannot show its lines here ({exc}); "
                                    f"`inv logs --service {name} --follow` can")
                return

    # -- stop ------------------------------------------------------------------------------
    def down(self, slow_after: float = 1.0) -> None:
        """Reverse dependency order, a wave at a time: dependents first, so nothing talks to a
        stopped service; the services of one wave stop together (nothing in a wave needs another).
        A service still draining after `slow_after` seconds is said, and so is how long it took.
        First `on_stop`, once: what watches every service (the dashboard) is asked to end before them."""
        if not self.closing.is_set():
            self.closing.set()
            try:
                self.on_stop()
            except Exception:  # noqa: BLE001 - the services are stopped whatever it did; start.py stops it again
                pass
        for wave in reversed(self.plan.waves):
            with self.lock:
                handles = [(n, self.handles.pop(n)) for n in sorted(wave, key=self._rank, reverse=True)
                           if n in self.handles]
            if not handles:
                continue
            for name, handle in handles:  # signal the whole wave first, in order: it drains together
                self.printer.system(f"{name}: stopping")
                try:
                    getattr(handle, "terminate", lambda: None)()
                except Exception:  # noqa: BLE001 - its stop() below says what went wrong
                    pass
            began = self.clock()
            for name, handle in handles:  # then wait for each in order, saying a slow drain
                if self._stop_one(name, handle, began, slow_after):
                    self.state.remove(name, handle.record())
                    self.stopped.append(name)
        for runner in self.runners.values():  # what a runner made for the run (the stack's network)
            try:
                getattr(runner, "cleanup", lambda: None)()
            except Exception:  # noqa: BLE001 - left for `inv stop`, which tries again
                pass

    def _rank(self, name: str) -> int:
        order = self.plan.start_order
        return order.index(name) if name in order else -1

    def _stop_one(self, name: str, handle: Handle, began: float, slow_after: float) -> bool:
        """handle.stop() (SIGTERM, SIGKILL after the grace period), saying a drain longer than
        `slow_after`; False when it could not be stopped (its record stays for `inv stop`)."""
        failed: list[Exception] = []

        def stop() -> None:
            try:
                handle.stop(self.grace)
            except Exception as exc:  # noqa: BLE001 - one service that will not stop must not keep the others running
                failed.append(exc)
        thread = threading.Thread(target=stop, daemon=True)
        thread.start()
        thread.join(max(0.0, slow_after - (self.clock() - began)))
        slow = thread.is_alive()
        if slow:
            self.printer.system(f"{name}: still stopping after {slow_after:.0f}s (a graceful drain; "
                                f"SIGKILL after {self.grace:.0f}s)")
        thread.join()
        if failed:
            exc = failed[0]
            self.printer.system(f"{name}: could not be stopped ({type(exc).__name__}: {exc}); "
                                "`inv stop` tries again")
            return False
        if slow:
            self.printer.system(f"{name}: stopped after {self.clock() - began:.1f}s")
        return True


def _tail(handle: Handle) -> str:
    lines = handle.tail(TAIL)
    if not lines:
        return " (no output)"
    return f"; last {len(lines)} log lines:\n" + "\n".join("    " + line for line in lines)
