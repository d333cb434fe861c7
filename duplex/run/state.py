"""The run's state file: what was started, so `inv status`/`inv stop` work after duplex is gone.

Every write is atomic or does not happen: a uniquely named temporary file beside the target,
flushed to disk, then renamed over it. On a full (or read-only) disk the temporary file is removed
and the previous file stays whole; the caller decides whether that is fatal (before a run starts:
yes, a detached run nobody can find again is worse than no run) or a warning (while it runs).
"""

from __future__ import annotations

import errno
import json
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from ..errors import RunError
from ..layout import Layout
from ..syntax import INSTANCE, service_of_instance
from .locks import state_change

try:
    import fcntl
except ImportError:  # Windows: no advisory locks (each user below says what it does then)
    fcntl = None


class StateWriteError(RunError):
    """The run state could not be written (full or read-only disk); the previous file is intact."""


def write_json(path: Path, data) -> None:
    """`data` as JSON at `path`, atomically; StateWriteError (nothing half-written left) when it cannot."""
    write_text(path, json.dumps(data, indent=2))


def write_text(path: Path, text: str) -> None:
    """`text` at `path` (its folder made), atomically; StateWriteError when it cannot."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise StateWriteError(f"cannot write {path}: {_why(exc)}; the previous file (if any) is intact",
                              fix=_fix(exc, path)) from None


def _why(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    if exc.errno == errno.EROFS:
        return "the file system is read-only"
    return exc.strerror or str(exc)


def _fix(exc: OSError, path: Path) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"free space on the disk that holds {path.parent} (`df -h {path.parent}`), then run again"
    return f"make {path.parent} writable by you, then run again"


def write_last_run(root: Path, stack: str, order: list[str], waves: list[list[str]] | None = None,
                   options: dict | None = None) -> None:
    write_json(Layout(root).last_run, {"stack": stack, "services": list(order),
                                       "waves": [list(w) for w in waves or [[n] for n in order]],
                                       "options": options or {}})


def last_options(root: Path) -> dict | None:
    """How the current or last run was planned (`run_options`): a stopped service starts again so."""
    options = _last(root).get("options")
    return options if isinstance(options, dict) and options else None


def last_run_info(root: Path) -> dict:
    """The current or last run's file (stack, services, waves, options), or {}."""
    return _last(root)


def _last(root: Path) -> dict:
    try:
        data = json.loads(Layout(root).last_run.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _named(name) -> bool:
    """A service's name as the stack file allows it, or one of its replicas' (asr_1): what a
    hand-edited state file says is not trusted."""
    return isinstance(name, str) and bool(INSTANCE.fullmatch(name))


def last_run(root: Path) -> list[str]:
    names = _last(root).get("services")
    return [n for n in names if _named(n)] if isinstance(names, list) else []


def last_waves(root: Path) -> list[list[str]]:
    """The last run's start waves (services in one wave started together), or one per service."""
    waves = _last(root).get("waves")
    if isinstance(waves, list) and all(isinstance(w, list) for w in waves):
        return [[n for n in w if _named(n)] for w in waves]
    return [[n] for n in last_run(root)]


class RunLock:
    """One `inv run` of a stack at a time: two started together would both pass the "already going"
    check and then overwrite each other's state. An advisory lock (released when the process dies,
    even by SIGKILL; never inherited by the services: Python opens files close-on-exec)."""

    def __init__(self, root: Path):
        self.path = Layout(root).run_lock
        self.handle = None

    def acquire(self) -> int | None:
        """None when held now; else the pid of the run that holds it (0 when unknown)."""
        if fcntl is None:  # no flock (Windows): the state check remains
            return None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError:  # no room for the file: the state check remains
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = os.read(fd, 32).decode(errors="replace").strip()
            except OSError:
                holder = ""
            os.close(fd)
            return int(holder) if holder.isdigit() else 0
        self.handle = fd
        try:  # who holds it, for the message a second run gives (unbuffered: nothing left to flush)
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError:
            pass  # a full disk: the lock holds all the same
        return None

    def release(self) -> None:
        if self.handle is not None:
            os.close(self.handle)  # closing releases the lock
            self.handle = None


class RunState:
    """Written after every start and stop, atomically, so even a SIGKILLed run leaves a usable record.

    `begin()` must succeed before anything starts; later writes that fail are reported once through
    `warn` and retried with the next change (the file on disk stays the last whole version)."""

    def __init__(self, root: Path, stack: str, mode: str, warn: Callable[[str], None] | None = None,
                 waves: list[list[str]] | None = None, options: dict | None = None):
        self.root = root
        self.path = Layout(root).state
        self.data = {"stack": stack, "mode": mode, "supervisor_pid": os.getpid(), "services": {},
                     "waves": [list(w) for w in waves or []],  # `inv stop`'s order: dependents first
                     "options": options or {}}  # how to plan a service again (duplex.run.service)
        self.lock = threading.Lock()
        self.warn = warn or (lambda _line: None)
        self.failing = False

    def begin(self) -> None:
        """The first write: a StateWriteError here means nothing may start."""
        with self.lock, state_change(self.root):
            write_json(self.path, self.data)

    def add(self, record: dict) -> None:
        with self.lock, state_change(self.root):
            self._refresh()
            self.data["services"][record["name"]] = record
            self._write()

    def remove(self, name: str, record: dict | None = None) -> None:
        """Drop the service's record; with `record`, only while it is still that one (a restart
        from the dashboard or `inv restart` may have put another process in its place)."""
        with self.lock, state_change(self.root):
            self._refresh()
            current = self.data["services"].get(name)
            if record is None or current is None or same_process(current, record):
                self.data["services"].pop(name, None)
            self._write()

    def _refresh(self) -> None:
        """Records others wrote since (a restarted service, one `inv stop --services NAME` cleared) are kept."""
        if self.path.exists():
            self.data["services"] = read_state(self.root)["services"]

    def _write(self) -> None:
        try:
            if self.data["services"]:
                write_json(self.path, self.data)
            else:
                self.path.unlink(missing_ok=True)
        except (StateWriteError, OSError) as err:
            if not self.failing:
                self.failing = True
                self.warn(f"warning: {err}; `inv status` and `inv stop` from elsewhere may miss this "
                          "run's latest changes (Ctrl-C here still stops everything)")
            return
        if self.failing:
            self.failing = False
            self.warn(f"the run state is saved again in {self.path}")


def same_process(a: dict, b: dict) -> bool:
    """Whether two records name the same process or container."""
    return a.get("pid") == b.get("pid") and a.get("container") == b.get("container")


# Host variables that change how a service is planned, kept with the run so a restart from
# another shell plans it as `inv run` did (ports are kept as the plan chose them). Secrets are
# never written down: only which were set, so a restart that would lose one is refused.
KEPT = ("DUPLEX_BASE_IMAGE", "HF_HOME", "HF_HUB_CACHE", "XDG_CACHE_HOME", "HF_ENDPOINT", "HF_HUB_OFFLINE",
        "CUDA_VISIBLE_DEVICES")
SECRETS = ("HF_TOKEN", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS")


def run_options(plan, environ: dict[str, str] | None = None) -> dict:
    """What a later start needs to plan the service exactly as `inv run` did (kept in the run state:
    `inv restart`): the flags, each service's port, and the planning variables of `environ`."""
    environ = environ or {}
    secrets = set(SECRETS).union(*(s.secrets for s in plan.services.values()))
    replicas = {}
    for name in plan.start_order:  # each service once, by its own name: its replicas are planned again
        replicas[service_of_instance(name)] = replicas.get(service_of_instance(name), 0) + 1
    return {"native": plan.native, "services": list(replicas), "otlp": plan.telemetry,
            "tls": any(s.url.startswith("https://") for s in plan.services.values()),
            "ports": {n: s.port for n, s in plan.services.items() if n in replicas},  # replica 0's: the base
            **({"replicas": scaled} if (scaled := {n: k for n, k in replicas.items() if k > 1}) else {}),
            "env": {k: environ[k] for k in KEPT if k in environ and "@" not in environ[k]},
            # names only; a value with credentials in it (a mirror's URL) counts as a secret
            "secrets": sorted(k for k in secrets.union(KEPT) if environ.get(k) and
                              (k in secrets or "@" in environ[k]))}


def read_state(root: Path) -> dict:
    try:
        data = json.loads(Layout(root).state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"services": {}}
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        return {"services": {}}
    data["services"] = {k: v for k, v in data["services"].items() if _named(k) and isinstance(v, dict)}
    return data


@contextmanager
def changing(root: Path) -> Iterator[dict]:
    """The run state read afresh, to change in place; written back whole (StateWriteError when it
    cannot be) under the state lock, so no other change made meanwhile is lost."""
    with state_change(root):
        data = read_state(root)
        yield data
        write_state(root, data)


def write_state(root: Path, data: dict) -> None:
    path = Layout(root).state
    if not data.get("services"):
        path.unlink(missing_ok=True)
        return
    write_json(path, data)
