"""The dashboard's process beside a run: its port and token, started with the run (attached: it
dies with `inv run`, even a killed one; detached: it stays until `inv stop`), found again by
`inv dashboard`, stopped by `inv stop`. Its file (.duplex/run/dashboard.json, readable only by the
user) holds the token, the port and the plan's view; the token never goes on a command line."""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from .. import warm
from ..engine import probe_host_gateway
from ..errors import RunError
from ..layout import Layout
from .locks import state_change
from .processes import group_alive, start_time, stop_group

QUERY = "t"  # `/?t=...`: the link; the page moves it into sessionStorage and out of the address


def new_token() -> str:
    return secrets.token_urlsafe(24)


def link(port: int, token: str, host: str = "127.0.0.1") -> str:
    return f"http://{host}:{port}/?{QUERY}={token}"


def planned_view(plan) -> dict:
    """What the dashboard keeps of the plan (no environment: secrets stay out of its file)."""
    services = {}
    for name in plan.start_order:
        s = plan.services[name]
        gpu = None
        if s.gpu or s.gpu_devices or s.gpu_placement:
            gpu = {"devices": list(s.gpu_devices), "placement": s.gpu_placement}
        services[name] = {"mode": s.mode, "url": s.url, "depends_on": dict(s.depends_on), "gpu": gpu,
                          "health": {"kind": s.health.kind, "url": s.health.url, "ca": s.health.ca},
                          "metrics": s.metrics,  # the declared Prometheus path: the only one scraped
                          "warm": s.mode == "native" and warm.is_warm(s.command)}
    return {"stack": plan.stack, "native": plan.native, "order": list(plan.start_order),
            "services": services, "left_out": dict(plan.left_out),
            # names only: the values the engine's log lines are masked of come from the environment
            "secrets": sorted({n for s in plan.services.values() for n in s.secrets})}


PARENT = "DUPLEX_DASHBOARD_PARENT"  # an attached run's pid: the dashboard dies with it
RUN = "DUPLEX_DASHBOARD_RUN"  # the pid of the `inv run` that started it
DEFAULT_PORT = 7980  # beside no service default (asr 8000, frontend 8080, moshi 8998)
HOLD = 5.0  # seconds the dashboard waits for the services' start before starting itself


def info_path(root: Path) -> Path:
    return Layout(root).base / "run" / "dashboard.json"


def choose_port(wanted: int | None, taken: set[int]) -> tuple[int, str | None]:
    """(port, why another than asked) — the stack's port, else the default; a free one when that is
    a service's port or already in use (a second stack running, say)."""
    port = wanted or DEFAULT_PORT
    if port in taken:
        return free_port(), f"port {port} is a service's port"
    if not port_free(port):
        return free_port(), f"port {port} is in use"
    return port, None


def port_free(port: int) -> bool:
    """Whether 127.0.0.1:`port` can be listened on now."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Dashboard:
    pid: int
    port: int
    token: str

    @property
    def link(self) -> str:
        return link(self.port, self.token)


def trace_port(telemetry: str | None) -> int | None:
    """The port of the stack's OTLP/HTTP endpoint when the dashboard should receive the traces
    itself: telemetry on, the endpoint on this host's loopback, and nothing listening there."""
    if not telemetry:
        return None
    url = urlparse(telemetry)
    if url.hostname not in ("127.0.0.1", "localhost") or url.scheme != "http":
        return None
    port = url.port or 80
    return port if port_free(port) else None


def container_gateway(port: int) -> tuple[str | None, str]:
    """(address, "") where the dashboard can take containers' trace exports on `port`: the engine's
    host gateway (what host.docker.internal is inside them), checked by binding it; else (None, why)."""
    address, how = probe_host_gateway()
    if address is None:
        return None, f"cannot find the Docker engine's host gateway: {how}"
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as exc:
            return None, f"cannot listen at {address}:{port}, {how} ({exc.strerror})"
    return address, ""


def start(root: Path, planned: dict, *, port: int, detach: bool, otlp_port: int | None = None,
          otlp_gateway: str | None = None) -> Dashboard:
    """Start the dashboard's server process and return at once: waiting for it to listen would add
    to `inv run`'s start (a browser opened on the link retries anyway)."""
    token = new_token()
    path = info_path(root)
    info = {"port": port, "token": token, "planned": planned, "pid": None, "start_time": None,
            "otlp_port": otlp_port, "otlp_gateway": otlp_gateway}
    _write(path, info)
    log = Layout(root).log("dashboard")
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in (PARENT, RUN)}
    env[RUN] = str(os.getpid())  # a detached run's dashboard starts itself once `inv run` has exited
    if not detach:  # it asks the kernel itself to end it with this process (no preexec_fn: vfork stays fast)
        env[PARENT] = str(os.getpid())
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "duplex.dashboard", str(root)], cwd=root, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # its own group: `inv stop` ends it whole
    info.update(pid=proc.pid, start_time=start_time(proc.pid))
    _write(path, info)
    return Dashboard(proc.pid, port, token)


def services_started(root: Path) -> None:
    """Said by `inv run` once every service is healthy: the dashboard's process holds its own start
    until then (at most HOLD seconds), so it never competes with the services for the CPU."""
    with state_change(root):  # read-modify-write: an `inv stop` removing the file meanwhile wins
        info = read(root)
        if info is not None:
            info["started"] = True
            _write(info_path(root), info)


def _write(path: Path, info: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the token: the user's only
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(info, fh)
    os.replace(tmp, path)


def read(root: Path) -> dict | None:
    try:
        data = json.loads(info_path(root).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def running(root: Path) -> Dashboard | None:
    """The dashboard of the run in progress, if its process is still the one started."""
    info = read(root)
    if not info or not isinstance(info.get("pid"), int):
        return None
    pid = info["pid"]
    if not (group_alive(pid) and start_time(pid) == info.get("start_time")):
        return None
    return Dashboard(pid, int(info["port"]), str(info["token"]))


def hold(root: Path, attached: bool, clock=None, sleep=None) -> None:
    """In the dashboard's process, before it loads its web stack: wait until the services are
    healthy and (detached) `inv run` has exited, at most HOLD seconds: it never competes with them."""
    clock, sleep = clock or time.monotonic, sleep or time.sleep
    run = os.environ.pop(RUN, "")
    began = clock()
    while clock() - began < HOLD:
        started = (read(root) or {}).get("started")
        if started and (attached or not run.isdigit() or not _exists(int(run))):
            return
        sleep(0.05)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def die_with_parent() -> bool:
    """In the dashboard's process: if an attached `inv run` started it, end with that process, even
    when it is SIGKILLed (Linux: PR_SET_PDEATHSIG; then a parent already gone is noticed too).
    Returns whether it was started by an attached run."""
    parent = os.environ.pop(PARENT, "")
    if not parent.isdigit():
        return False
    if sys.platform == "linux":
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != int(parent):  # it died before the request took hold
        sys.exit(0)
    return True


def current(root: Path) -> Dashboard:
    """`inv dashboard`: the running dashboard, or an error that says how to get one."""
    found = running(root)
    if found is None:
        raise RunError("no dashboard is running for this stack",
                       fix="start a run with `inv run` or `inv run --detach` (`[stack] dashboard = false` "
                           "or `--no-dashboard` turn it off)")
    return found


def terminate(root: Path) -> bool:
    """Ask the dashboard's process to end (SIGTERM to its group) without waiting. A stop asks it
    first, since it watches every service, and `stop(root, signalled=True)` waits for it after
    them: it drains beside the services instead of after them. True if it ran."""
    found = running(root)
    if found is None:
        return False
    try:
        os.killpg(found.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def stop(root: Path, grace: float = 3.0, signalled: bool = False) -> bool:
    """End the dashboard's process (if it is still ours) and forget its token. True if it ran.
    `signalled`: `terminate` asked it already (SIGTERM is never sent twice)."""
    found = running(root)
    if found is not None:
        stop_group(found.pid, grace, signalled=signalled)
    try:
        with state_change(root):
            info_path(root).unlink(missing_ok=True)
    except OSError:
        pass  # a read-only disk: the file names a process that is gone, which `running` sees
    return found is not None
