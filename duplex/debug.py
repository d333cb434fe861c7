"""`inv run --native --debug NAME`: a native service under debugpy, and VS Code attach configs."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Callable

from .envs.installer import uv_command
from .errors import DuplexError
from .launch_json import PREFIX, LaunchJsonError, write_launch_json
from .layout import Layout
from .plan import Plan, ServicePlan
from .syntax import service_of_instance

DEBUGPY = "1.8.22"  # pinned: the debug adapter and the editor's client speak the same protocol
FIRST_PORT = 5678  # debugpy's customary port; services get 5678, 5679, ... (stable across runs)
_ARG_OPTIONS = ("-X", "-W", "-Q")  # interpreter options that take a separate value


class DebugError(DuplexError):
    """A service cannot be started under the debugger, or launch.json cannot be merged."""


def debug_command(command: list[str], port: int, wait: bool = False, host: str = "127.0.0.1") -> list[str]:
    """`python [opts] -m uvicorn ...` -> `python [opts] -m debugpy --listen H:P [--wait-for-client] -m uvicorn ...`.

    debugpy follows subprocesses by default, so uvicorn's --reload worker (a spawned child, and each
    new one after a save) is attached too.
    """
    if not command or Path(command[0]).name.split(".")[0] not in ("python", "python3"):
        raise DebugError(f"cannot debug {' '.join(command[:1]) or 'an empty command'}: debugpy wraps a "
                         "Python command (`python -m ...` or `python script.py`)",
                         fix="give the service an `app` or a command that starts with python")
    opts, rest = [], list(command[1:])
    while rest and rest[0].startswith("-") and rest[0] not in ("-m", "-c"):
        opt = rest.pop(0)
        opts.append(opt)
        if opt in _ARG_OPTIONS and rest:
            opts.append(rest.pop(0))
    if not rest:
        raise DebugError(f"nothing to run under the debugger in {command!r}")
    if not any("frozen_modules" in o for o in opts):
        opts.insert(0, "-Xfrozen_modules=off")  # 3.11+: frozen stdlib modules can hide breakpoints
    return [command[0], *opts, "-m", "debugpy", "--listen", f"{host}:{port}",
            *(["--wait-for-client"] if wait else []), *rest]


def free_ports(count: int, first: int = FIRST_PORT, taken: set[int] = frozenset()) -> list[int]:
    """`count` ports from `first` up that nothing listens on (so launch.json stays the same)."""
    ports, port = [], first
    while len(ports) < count:
        if port not in taken:
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                    ports.append(port)
                except OSError:
                    pass
        port += 1
    return ports


def debugpy_dir(root: Path, python: Path, *, run: Callable = subprocess.run) -> Path:
    """A folder holding only debugpy, built for the service's interpreter, put on its PYTHONPATH.

    Not installed into the env: the pinned env stays exactly its lock (its stamp stays valid, native
    and container runs keep the same packages), and only the debugged process sees debugpy. One
    folder per interpreter tag, since debugpy ships compiled speedups per CPython version.
    """
    if not python.exists():
        raise DebugError(f"no venv interpreter at {python}", fix=f"inv setup --env {python.parent.parent.name}")
    asked = run([str(python), "-c", "import sys, sysconfig; print(sys.implementation.cache_tag + '-' "
                 "+ sysconfig.get_platform())"], capture_output=True, text=True)
    if asked.returncode != 0:
        raise DebugError(f"the env's interpreter {python} does not run: {asked.stderr.strip()[-300:]}",
                         fix=f"inv setup --env {python.parent.parent.name} --force")
    tag = asked.stdout.strip()
    folder = Layout(root).tools / f"debugpy-{DEBUGPY}-{tag}"
    if (folder / "debugpy" / "__init__.py").exists():
        return folder
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    uv = uv_command()
    argv = ([*uv, "pip", "install", "--quiet", "--target", str(tmp), "--python", str(python)] if uv else
            [str(python), "-m", "pip", "install", "--quiet", "--target", str(tmp)])
    done = run([*argv, f"debugpy=={DEBUGPY}"], capture_output=True, text=True)
    if done.returncode != 0:
        raise DebugError(f"could not fetch debugpy {DEBUGPY} for {python}: {done.stderr.strip()[-400:]}",
                         fix="check the package index is reachable (PIP_INDEX_URL / UV_INDEX_URL), "
                             f"or `uv pip install --target {folder} debugpy=={DEBUGPY}` by hand")
    folder.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, folder)
    return folder


def debug_service(svc: ServicePlan, port: int, wait: bool, debugpy: Path) -> ServicePlan:
    """The same service, started under debugpy with debugpy importable (and nothing else added)."""
    if svc.mode != "native":
        raise DebugError(f"{svc.name} runs in a container; the debugger attaches to native services",
                         fix=f"run it natively: `inv run --native --debug {svc.name}`")
    env = dict(svc.environment)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(debugpy), env.get("PYTHONPATH")) if p)
    # --wait-for-client: the app starts only once an editor attaches, at the user's pace.
    health = dataclasses.replace(svc.health, timeout=max(svc.health.timeout, 3600.0)) if wait else svc.health
    return dataclasses.replace(svc, command=debug_command(svc.command, port, wait), environment=env,
                               health=health)


def attach_config(service: str, port: int, host: str = "127.0.0.1") -> dict:
    """A VS Code (Python Debugger extension) attach configuration for one service."""
    return {"name": f"{PREFIX}{service}", "type": "debugpy", "request": "attach",
            "connect": {"host": host, "port": port}, "justMyCode": False}


def how_to_attach(service: str, port: int, wait: bool) -> str:
    state = "waits for you before starting" if wait else "runs; attach any time"
    return (f"{service}: debugpy on 127.0.0.1:{port} ({state}). VS Code: Run and Debug > "
            f"'{PREFIX}{service}'; other editors: attach to 127.0.0.1:{port} (DAP). "
            f"Remote box: ssh -L {port}:127.0.0.1:{port} HOST first.")

__all__ = ["DebugError", "LaunchJsonError", "PREFIX", "attach_config", "debug_command", "debug_service", "debugpy_dir", "free_ports",
           "how_to_attach", "write_launch_json"]


def debug_plan(plan: Plan, names: list[str], wait: bool, say: Callable[[str], None]) -> Plan:
    """`inv run --debug a,b`: a new plan in which those native services start under debugpy (each on
    its own port, with attach instructions said and VS Code configurations merged into launch.json)."""
    unknown = [n for n in names if n not in plan.services]
    if unknown:
        raise DebugError(f"--debug {', '.join(unknown)}: not in this run (running: {', '.join(plan.services)})",
                         fix="name services of this run, e.g. --debug " + next(iter(plan.services), "asr"))
    names = [n for n in plan.start_order if n in names or service_of_instance(n) in names]  # and its replicas
    root = Path(plan.root)
    ports = free_ports(len(names))
    services = dict(plan.services)
    for name, port in zip(names, ports, strict=True):
        svc = services[name]
        services[name] = debug_service(svc, port, wait, debugpy_dir(root, Layout(root).env_python(svc.env)))
        say(how_to_attach(name, port, wait))
    try:
        path = write_launch_json(root, [attach_config(n, p) for n, p in zip(names, ports, strict=True)])
        say(f"VS Code: attach configurations in {path}")
    except LaunchJsonError as err:
        say(f"warning: {err.render()}")
    return dataclasses.replace(plan, services=services)
