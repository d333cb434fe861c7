"""Pure translation: a container plan -> a Compose file (plus a CPU-host override). No I/O."""

from __future__ import annotations

from dataclasses import dataclass

from ..plan import CACHE_IN_CONTAINER, Plan, ServicePlan, port_variable
from .common import (
    CACHE_VOLUME,
    MARKER,
    PublishError,
    health_path,
    http_check,
    image_name,
    labels,
    secret_keys,
    user_ids,
    websocket_check,
)

INIT = "model-cache-init"  # one-shot: hands the fresh named volume to the non-root user
INTERVAL = 5  # seconds between health checks; the first one runs one interval after start
FILE = "compose.yaml"
CPU_FILE = "compose.cpu.yaml"


@dataclass(frozen=True)
class Reset:
    """Compose's `!reset` tag: in an override file, drop what the base file set for a key."""

    value: object = None


def compose_files(plan: Plan, *, context: str, bind: str = "127.0.0.1",
                  registry: str | None = None, replicas: dict[str, int] | None = None) -> dict[str, dict]:
    """{file name: document}. `context` is the repo root as seen from the output folder ('..').
    `replicas`: containers per service (`deploy.replicas`; Compose has no autoscaler)."""
    replicas = replicas or {}
    _check_host_ports(plan, replicas)
    services: dict[str, dict] = {}
    init = _init_service(plan, registry)
    if init:
        services[INIT] = init
    for name in plan.start_order:
        if name == INIT:
            raise PublishError(f"a service may not be called {INIT!r}: duplex uses that name in Compose",
                               fix="rename the service in stack.toml")
        services[name] = _service(plan, plan.services[name], context, bind, registry, bool(init),
                                  replicas.get(name, 1))
    files = {FILE: {"name": plan.stack, "services": services, "volumes": {CACHE_VOLUME: {
        "labels": {"dev.duplex.stack": plan.stack, "dev.duplex.volume": "model-cache"}}}}}
    cpu = _cpu_override(plan, replicas)
    if cpu:
        files[CPU_FILE] = cpu
    return files


def _service(plan: Plan, svc: ServicePlan, context: str, bind: str, registry: str | None,
             init: bool, replicas: int = 1) -> dict:
    out: dict = {"image": image_name(svc, registry)}
    if svc.dockerfile and "@" not in svc.image:  # pushed by digest: pulled, never rebuilt
        out["build"] = {"context": context, "dockerfile": svc.dockerfile,
                        "args": dict(sorted(svc.build_args.items()))}
    out["command"] = [_escape(part) for part in svc.command]
    ids = user_ids(svc)
    if ids:
        out["user"] = f"{ids[0]}:{ids[1]}"
    secrets = set(secret_keys(svc))
    out["environment"] = {k: (f"${{{k}:-}}" if k in secrets else _escape(v))
                          for k, v in sorted(svc.environment.items())}
    var = port_variable(svc.name)
    host = f"${{{var}:-{svc.port}}}:{svc.container_port}"
    if replicas > 1:  # one host port per container: a range from the stack's port, Compose hands them out
        host = f"{svc.port}-{svc.port + replicas - 1}:{svc.container_port}"
    ip = f"[{bind}]" if ":" in bind else bind  # an IPv6 address in brackets
    out["ports"] = [host if bind == "0.0.0.0" else f"{ip}:{host}"]
    if any(m.target.startswith(CACHE_IN_CONTAINER) for m in svc.mounts):
        out["volumes"] = [f"{CACHE_VOLUME}:{CACHE_IN_CONTAINER}"]
    check = _healthcheck(svc)
    if check:
        out["healthcheck"] = check
    deps: dict[str, dict] = {}
    if init and "volumes" in out:
        deps[INIT] = {"condition": "service_completed_successfully"}
    for dep, required in svc.depends_on.items():
        healthy = plan.services[dep].health.kind != "none"
        deps[dep] = {"condition": "service_healthy" if healthy else "service_started",
                     "required": required}
    if deps:
        out["depends_on"] = deps
    deploy: dict = {"replicas": replicas} if replicas > 1 else {}
    if svc.gpu:
        deploy["resources"] = {"reservations": {"devices": [
            {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]}}
    if deploy:
        out["deploy"] = deploy
    out["restart"] = "unless-stopped"
    out["labels"] = labels(plan, svc, "compose")
    return out


def _healthcheck(svc: ServicePlan) -> dict | None:
    path = health_path(svc)
    if path is None:
        return None
    if svc.health.kind == "websocket":  # handshake until it passed once, then alive (duplex.standalone.wscheck)
        test = websocket_check(svc.container_port, path, 3, tls=svc.health.url.startswith("wss"), once=MARKER)
    else:
        test = ["python", "-c", http_check(svc.container_port, path, 3)]
    return {"test": ["CMD", *(_escape(part) for part in test)], "interval": f"{INTERVAL}s",
            "timeout": "5s", "retries": 3, "start_period": f"{int(svc.health.timeout)}s"}


def _check_host_ports(plan: Plan, replicas: dict[str, int]) -> None:
    """A replicated service publishes the host ports port .. port + replicas - 1: none may be
    another service's, nor past 65535 (`up` would fail on the second container)."""
    taken: dict[int, str] = {}
    said: dict[str, str] = {}
    for name in plan.start_order:
        svc, count = plan.services[name], replicas.get(name, 1)
        ports = range(svc.port, svc.port + count)
        said[name] = f"{name}'s ({count} replicas: {svc.port}-{ports[-1]})" if count > 1 else f"{name}'s"
        if ports[-1] > 65535:
            raise PublishError(f"{name}'s {count} replicas would publish host ports {svc.port}-{ports[-1]}, past 65535",
                               fix=f"give {name} a lower port, or fewer replicas, in stack.toml")
        clash = next((p for p in ports if p in taken), None)
        if clash is not None:
            other = taken[clash]
            raise PublishError(f"Compose: host port {clash} would be both {said[other]} and {said[name]}",
                               fix=f"move {name} or {other} to a port clear of the other's in stack.toml, "
                                   "or give fewer replicas")
        taken.update(dict.fromkeys(ports, name))


def _init_service(plan: Plan, registry: str | None) -> dict | None:
    """A fresh named volume belongs to root; the services run as the Dockerfiles' non-root user."""
    built = [s for s in plan.services.values() if s.dockerfile]
    if not built:
        return None  # images we did not build: their user is theirs to know
    uid, gid = user_ids(built[0])
    return {"image": image_name(built[0], registry), "user": "0:0", "network_mode": "none",
            "command": ["chown", f"{uid}:{gid}", CACHE_IN_CONTAINER],
            "volumes": [f"{CACHE_VOLUME}:{CACHE_IN_CONTAINER}"], "restart": "no",
            "labels": {"dev.duplex.stack": plan.stack, "dev.duplex.service": INIT,
                       "dev.duplex.publisher": "compose"}}


def _cpu_override(plan: Plan, replicas: dict[str, int]) -> dict | None:
    """`-f compose.yaml -f compose.cpu.yaml` on a host without GPU: optional-GPU services run on
    the CPU, GPU-required ones move to the `gpu` profile (optional dependants start without them)."""
    services: dict[str, dict] = {}
    for name, svc in plan.services.items():
        if svc.gpu_policy == "required":
            services[name] = {"profiles": ["gpu"]}
        elif svc.gpu and replicas.get(name, 1) > 1:  # the reservation goes, the replicas stay
            services[name] = {"deploy": {"resources": Reset({})}}
        elif svc.gpu:
            services[name] = {"deploy": Reset({})}
    return {"services": services} if services else None


def _escape(value: str) -> str:
    """A literal `$` must be `$$` in Compose, or it is read as a variable."""
    return str(value).replace("$", "$$")
