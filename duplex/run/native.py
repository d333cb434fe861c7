"""Native runner: each service as a process group from its env's venv, logs to a file and a sink."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..errors import EnvError, RunError
from ..layout import Layout
from ..machine import PASSTHROUGH
from ..redact import redact
from ..standalone import HERE
from .logfile import LogFile, deliver
from .processes import start_time, stop_group  # stop_group: the benchmarks import it from here too
from .runner import LineSink

if TYPE_CHECKING:  # only a type here: importing the runner loads no plan (pydantic)
    from ..plan import ServicePlan

GRACE = 10.0  # seconds a service of a killed run has to drain before its group gets SIGKILL (as `inv stop`)


def process_env(service: ServicePlan, python: Path) -> dict[str, str]:
    """The host's environment minus what the plan owns, plus the plan's variables and the venv."""
    env = {k: v for k, v in os.environ.items()
           if k not in PASSTHROUGH and not k.startswith(("DUPLEX_", "services__", "HF_HUB_CACHE"))}
    bin_dir = str(python.parent)
    env.update(service.environment)
    env.update(VIRTUAL_ENV=str(python.parent.parent), PATH=bin_dir + os.pathsep + env.get("PATH", ""),
               PYTHONUNBUFFERED="1")
    return env


def argv(service: ServicePlan, python: Path) -> list[str]:
    cmd = list(service.command)
    if cmd and cmd[0] in ("python", "python3"):
        cmd[0] = str(python)
    return cmd


def _default_signals() -> None:  # pragma: no cover - runs in the child
    """An ignored SIGINT/SIGTERM survives exec: a service started while duplex shields a stop (or
    from a shell that ignores Ctrl-C) would ignore `inv stop`. Give it the default actions back."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


class NativeProcess:
    def __init__(self, service: ServicePlan, proc: subprocess.Popen, log: Path, sink: LineSink | None,
                 redact: Callable[[str], str] = lambda line: line):
        self.name = service.name
        self.url = service.url
        self.proc = proc
        self.log = log
        self.ident = f"pid {proc.pid}"
        self.lines: deque[str] = deque(maxlen=200)
        self.redact = redact
        self.reader = None
        if proc.stdout is not None:
            self.reader = threading.Thread(target=self._pump, args=(sink,), daemon=True)
            self.reader.start()

    def _pump(self, sink: LineSink | None) -> None:
        """Read the service's output to its end, whatever happens to the log file or the sink: a
        service whose pipe nobody reads blocks once the pipe's buffer (64 KiB) is full."""
        def say(text: str) -> None:
            deliver(sink, "duplex", f"{self.name}: {text}")
        out = LogFile(self.log, say)
        broken_sink = False
        try:
            for raw in self.proc.stdout:
                line = self.redact(raw.decode("utf-8", errors="replace").rstrip("\n"))
                self.lines.append(line)
                out.write(line)
                if sink and not broken_sink:
                    broken_sink = not deliver(sink, self.name, line)
        except (OSError, ValueError):
            pass  # the pipe itself broke: the process is gone, its exit is reported by exit_code()
        finally:
            out.close()

    def exit_code(self) -> int | None:
        return self.proc.poll()

    def terminate(self) -> None:
        """SIGTERM now (the supervisor signals a whole stop wave first, then waits for each)."""
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.signalled = True
        except ProcessLookupError:
            pass

    def stop(self, grace: float) -> None:
        stop_group(self.proc.pid, grace, waiter=self.proc.wait, signalled=getattr(self, "signalled", False))
        if self.reader:
            self.reader.join(timeout=2)

    def tail(self, lines: int) -> list[str]:
        if self.lines:
            return list(self.lines)[-lines:]
        return tail_file(self.log, lines)

    def record(self) -> dict:
        return {"name": self.name, "mode": "native", "pid": self.proc.pid,
                "start_time": start_time(self.proc.pid), "url": self.url, "log": str(self.log)}


def tail_file(path: Path, lines: int) -> list[str]:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            return fh.read().decode("utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return []


class NativeRunner:
    """Start services as processes. `detach` lets them outlive duplex (logs go straight to files)."""

    def __init__(self, root: Path, detach: bool = False,
                 env_state: Callable[[str], str] | None = None):
        self.root = root
        self.detach = detach
        self.env_state = env_state  # 'ok' | 'missing' | 'stale: why' (duplex.envs.env_status)
        # Every child is forked by this one long-lived thread rather than by the short-lived start
        # threads: PR_SET_PDEATHSIG (asked for by groupguard.py) fires when the *thread* that forked
        # the child exits; the guard checks the parent pid too, so an early one is ignored.
        self._forker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="duplex-forker")

    def prepare(self, services: list[ServicePlan], progress: Callable[[str], None]) -> None:
        missing = [s for s in services if not Layout(self.root).env_python(s.env).exists()]
        if missing:
            names = sorted({s.env for s in missing})
            raise EnvError(f"no venv for env{'s' if len(names) > 1 else ''} {', '.join(names)} "
                           f"(needed by {', '.join(s.name for s in missing)})",
                           fix=" && ".join(f"inv setup --env {n}" for n in names))
        if self.env_state:
            stale = {s.env: state for s in services if (state := self.env_state(s.env)) != "ok"}
            if stale:
                raise EnvError("; ".join(f"env {e} is {why}" for e, why in sorted(stale.items())),
                               fix=" && ".join(f"inv setup --env {e}" for e in sorted(stale)))

    def start(self, service: ServicePlan, sink: LineSink | None) -> NativeProcess:
        python = Layout(self.root).env_python(service.env)
        log = Layout(self.root).log(service.name)
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("")
        except OSError:
            pass  # a full or read-only disk: the pump says so (attached) or drops the lines (detached)
        env, cmd = process_env(service, python), argv(service, python)
        if self.detach:  # no duplex left to read a pipe: duplex/standalone/logpump.py starts the service and reads it
            env["DUPLEX_LOG_MASK"] = json.dumps(sorted(_secret_values(service)))
            cmd = [sys.executable, "-I", str(HERE / "logpump.py"), str(log), "--", *cmd]
        elif sys.platform == "linux":  # the guard ends the whole group if duplex dies (groupguard.py says why)
            cmd = [sys.executable, "-I", str(HERE / "groupguard.py"), str(os.getpid()),
                   str(GRACE), "--", *cmd]
        try:
            proc = self._forker.submit(
                subprocess.Popen, cmd, cwd=self.root, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL if self.detach else subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop reaches uvicorn's reload worker
                preexec_fn=_default_signals if os.name == "posix" else None,
            ).result()
        except OSError as exc:
            raise RunError(f"{service.name}: cannot start {service.command[0]}: {exc.strerror}",
                           fix=f"inv setup --env {service.env} --force") from exc
        return NativeProcess(service, proc, log, None if self.detach else sink, redact=secret_masker(service))


def _secret_values(service: ServicePlan) -> set[str]:
    return {v for k, v in service.environment.items() if k in service.secrets and len(v) >= 6}


def secret_masker(service: ServicePlan) -> Callable[[str], str]:
    """Masks the service's own secrets (and URL credentials, bearer tokens) in its log lines."""
    values = _secret_values(service)
    return lambda line: redact(line, values)
