"""ports: each service's port is free on 127.0.0.1; when not, name the process holding it (Linux /proc)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from duplex.plan import port_variable

from . import Context, Result, fail, passed

LISTEN = "0A"


@dataclass(frozen=True)
class PortFacts:
    port: int
    free: bool
    error: str | None = None  # why binding failed ("Address already in use")
    holders: tuple[str, ...] = ()  # "python3 (pid 4242): python -m http.server 8000"


def probe_port(port: int, host: str = "127.0.0.1", proc: str = "/proc") -> PortFacts:
    """Bind the port the way a server would (SO_REUSEADDR, so TIME_WAIT does not count as taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return PortFacts(port, False, exc.strerror or str(exc), tuple(holders(port, proc)))
    return PortFacts(port, True)


def listening_inodes(port: int, proc: str = "/proc") -> set[str]:
    """Socket inodes listening on `port` (any address), from /proc/net/tcp and tcp6."""
    found = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(proc, "net", table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and cols[3] == LISTEN and int(cols[1].rsplit(":", 1)[1], 16) == port:
                found.add(cols[9])
    return found


def holders(port: int, proc: str = "/proc") -> list[str]:
    """Who listens on `port`: 'name (pid N): command line'; other users' processes may stay unnamed."""
    inodes = listening_inodes(port, proc)
    if not inodes:
        return []
    wanted = {f"socket:[{i}]" for i in inodes}
    out = []
    for pid_dir in Path(proc).iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            fds = os.listdir(pid_dir / "fd")
        except OSError:
            continue  # gone, or another user's process
        for fd in fds:
            try:
                if os.readlink(pid_dir / "fd" / fd) in wanted:
                    out.append(_describe(pid_dir))
                    break
            except OSError:
                continue
    return out


def _describe(pid_dir: Path) -> str:
    try:
        comm = (pid_dir / "comm").read_text().strip()
        cmd = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        comm, cmd = "?", ""
    cmd = cmd if len(cmd) <= 100 else cmd[:97] + "..."
    return f"{comm} (pid {pid_dir.name})" + (f": {cmd}" if cmd else "")


def check(ctx: Context, facts: dict[int, PortFacts], own: dict[str, str] | None = None) -> list[Result]:
    """One result per service; `own` maps services to this stack's running persistent container (reused)."""
    own = own or {}
    results = []
    for svc in ctx.services():
        name = f"ports.{svc.name}"
        fact = facts.get(svc.port)
        if fact is None or fact.free:
            results.append(passed(name, f"{svc.port} is free on 127.0.0.1"))
            continue
        if svc.persistent and svc.mode == "container" and svc.name in own:
            results.append(passed(name, f"{svc.port} is held by this stack's persistent container "
                                        f"{own[svc.name]}, which the run reuses"))
            continue
        who = "; ".join(fact.holders) if fact.holders else "a process this user cannot see (try `sudo ss -ltnp`)"
        var = port_variable(svc.service)  # a replica moves with its service's base port
        hint = ""
        if any(h.startswith("docker-proxy") for h in fact.holders):
            hint = f"a container publishes it (`docker ps --filter publish={svc.port}`); "
        results.append(fail(name, f"{svc.port} on 127.0.0.1 is in use ({fact.error}) by {who}",
                            f"{hint}stop that process (or `inv stop` if it is an earlier run), "
                            f"or give {svc.service} another port: export {var}=<free port>"
                            + (" (its replicas take the ports after it)" if svc.name != svc.service else "")))
    return results
