"""The checks `inv run` cannot start without: cheap, and all reported at once."""

from __future__ import annotations

import socket
from pathlib import Path

from .errors import RunError
from .plan import Plan
from .probe import Machine


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_run(plan: Plan, machine: Machine, *, reusable: set[str] = frozenset()) -> None:
    problems: list[str] = []
    fixes: list[str] = []
    from .models import missing as models_missing  # pinned in models.lock and wholly cached
    hub = Path(machine.hf_hub_cache or Path(machine.hf_home) / "hub")
    for name in plan.start_order:
        svc = plan.services[name]
        if name not in reusable and not port_free(svc.port):
            problems.append(f"{name}: port {svc.port} on 127.0.0.1 is already in use")
            fixes.append(f"stop what holds it (`inv stop`, or `ss -ltnp 'sport = :{svc.port}'`) "
                         f"or set DUPLEX_PORT_{name.upper().replace('-', '_')}")
        if svc.gpu_policy == "required" and machine.gpu_count == 0:
            problems.append(f"{name}: needs a GPU (gpu = \"required\") and this machine has none")
            fixes.append(f"run {name} on a GPU machine, or leave it out with --services")
        missing = models_missing(plan.root, svc.models, machine.hf_home, machine.hf_hub_cache)
        if missing:
            problems.append(f"{name}: model{'s' if len(missing) > 1 else ''} not in the shared cache "
                            f"({hub}): {', '.join(missing)}")
            fixes.append(f"inv prefetch --services {name}")
    if problems:
        raise RunError("cannot start the stack:\n" + "\n".join(f"  - {p}" for p in problems),
                       fix="; ".join(dict.fromkeys(fixes)))

