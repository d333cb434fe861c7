"""How each published service scales (pure): its replicas, its autoscaler's bounds and target, how
its live sessions are counted, and how long a pod that is scaled down may drain them.

From the stack's `replicas`, `max_replicas` and `sessions`, and from a capacity file (`inv loadtest
--json`, duplex.capacity) when one is given: its measured `per_replica` is what the autoscaler aims
at. docs/publish.md, "Replicas and autoscaling".
"""

from __future__ import annotations

from dataclasses import dataclass

from ..capacity import ServiceCapacity
from ..stack import ServiceSpec, Stack
from .common import PublishError

# The autoscaler's target is this share of what one pod serves: a full pod refuses the next session,
# so its count can never rise above its slots, and the HPA adds a pod only when the average is 10 %
# above target (its tolerance). At 100 % it would never scale a moshi (1 slot) out; at 80 % a pod is
# added while the others still meet the budget, because a new one takes minutes to load its weights.
HEADROOM = 0.8
DEFAULT_SESSION_LIMIT = 3900  # s: a session's longest life where the server sets none (moshi): asr's default
GRACE_MARGIN = 30  # s beyond the drain for the server's own shutdown after SIGTERM
# The servers' own wall-time limit on one session: (variable, default, how the default is derived).
SESSION_LIMITS = {
    "servers.asr.app": ("ASR_STREAM_MAX_WALL_SECONDS", ("ASR_STREAM_MAX_SECONDS", 3600.0, 300.0)),
    "servers.mt.app": ("MT_WS_MAX_WALL_SECONDS", (None, 3900.0, 0.0)),
}
METRIC = "active_sessions"  # the gauge asr's and mt's /metrics expose (and the adapter serves per pod)
BUSY_METRIC = "busy_sessions"  # a one-slot WebSocket server: its failing readiness probes, per pod


@dataclass(frozen=True)
class Scaling:
    replicas: int = 1
    max_replicas: int | None = None   # an autoscaler, when set
    sessions: int | None = None       # slots per pod, as the stack declares them
    per_replica: int | None = None    # measured (the capacity file), else None
    target: float | None = None       # the autoscaler's averageValue per pod
    target_from: str = ""             # where the target comes from, in words
    count: str | None = None          # "metrics" (the active_sessions gauge) | "handshake" (busy = no 0x00)
    busy_readiness: bool = False      # one-slot WebSocket server: readiness fails while a conversation runs
    session_limit: int = DEFAULT_SESSION_LIMIT  # s: the longest a session lives (the drain's bound)
    session_limit_from: str = ""

    @property
    def drains(self) -> bool:
        """A pod that can be taken away while others serve (scale-down, a rolling update, a node
        drain) waits for its sessions first, when there is a way to count them."""
        return self.count is not None and (self.replicas > 1 or self.max_replicas is not None)

    @property
    def metric(self) -> str:
        return BUSY_METRIC if self.count == "handshake" else METRIC

    @property
    def grace(self) -> int:
        return self.session_limit + GRACE_MARGIN


def plan_scaling(stack: Stack, services: list[str], capacity: dict[str, ServiceCapacity] | None = None,
                 source: str = "the capacity file") -> dict[str, Scaling]:
    """{service: Scaling} for the published `services`. Raises PublishError (before anything is
    written) for a capacity file that does not fit the stack, or an autoscaler with nothing to aim at."""
    capacity = capacity or {}
    _check_capacity(stack, capacity, source)
    out = {}
    for name in services:
        spec = stack.services[name]
        count = _count(spec)
        measured = capacity.get(name)
        per_replica = measured.per_replica if measured else None
        target, target_from = None, ""
        if spec.max_replicas is not None:
            if count is None:
                raise PublishError(
                    f"{name} has max_replicas = {spec.max_replicas}, but nothing counts its live sessions: it has "
                    "no `metrics` endpoint (whose active_sessions gauge an autoscaler reads) and is not a one-slot "
                    "WebSocket server (health = \"ws:...\" and sessions = 1, counted by its busy readiness)",
                    fix=f"give [services.{name}] a metrics = \"/metrics\" that exposes active_sessions, or "
                        "remove its max_replicas (docs/publish.md, 'Replicas and autoscaling')")
            if per_replica is not None:
                base, target_from = per_replica, f"per_replica {per_replica} measured in {source}"
            elif spec.sessions is not None:
                base, target_from = spec.sessions, f"sessions = {spec.sessions} (no capacity measured)"
            else:
                raise PublishError(
                    f"{name} has max_replicas = {spec.max_replicas}, but nothing says how many sessions one pod "
                    "serves: no `sessions` in stack.toml and no capacity file",
                    fix=f"measure it (`inv loadtest`, then `inv publish --capacity .duplex/loadtest/"
                        f"loadtest.json`), or set sessions = N under [services.{name}]")
            target = round(base * HEADROOM, 3)
            target_from += f", x {HEADROOM:g} headroom"
        limit, limit_from = DEFAULT_SESSION_LIMIT, ""
        if spec.replicas > 1 or spec.max_replicas is not None:  # only then is there a drain to bound
            limit, limit_from = _session_limit(name, spec)
        out[name] = Scaling(replicas=spec.replicas, max_replicas=spec.max_replicas, sessions=spec.sessions,
                            per_replica=per_replica, target=target, target_from=target_from, count=count,
                            busy_readiness=_one_slot_websocket(spec), session_limit=limit,
                            session_limit_from=limit_from)
    return out


def _check_capacity(stack: Stack, capacity: dict[str, ServiceCapacity], source: str) -> None:
    problems, fixes = [], []
    for name, measured in capacity.items():
        if name not in stack.services:
            problems.append(f"{source} measured {name!r}, which {stack.path.name} does not have "
                            f"(its services: {', '.join(stack.services)})")
            fixes.append("pass the capacity file of this stack's own load test")
        elif measured.per_replica is None:
            problems.append(f"{source}: {name} met its budget at no load level ({measured.stopped or 'no level passed'}), "
                            "so there is no capacity to aim an autoscaler at")
            fixes.append(f"rerun `inv loadtest` with a budget {name} can meet on that hardware, "
                         "or publish without --capacity (the autoscaler then aims at its `sessions`)")
        elif stack.services[name].max_replicas is None:
            problems.append(f"{source} measured {name}, but {name} has no max_replicas: there is no autoscaler "
                            "for its capacity to set")
            fixes.append(f"set max_replicas = N (at least its replicas) under [services.{name}] in "
                         f"{stack.path.name}, or drop {name} from the load test")
    if problems:
        raise PublishError("; ".join(problems), fix="; ".join(dict.fromkeys(fixes)))


def _one_slot_websocket(spec: ServiceSpec) -> bool:
    return bool(spec.health and spec.health.startswith("ws:")) and spec.sessions == 1


def _count(spec: ServiceSpec) -> str | None:
    """How a pod's live sessions are known: its /metrics gauge, or (one slot, WebSocket health)
    whether its handshake is answered."""
    if spec.metrics:
        return "metrics"
    if _one_slot_websocket(spec):
        return "handshake"
    return None


def _session_limit(name: str, spec: ServiceSpec) -> tuple[int, str]:
    """The longest a session of this service lives: the server's own limit, from its environment
    when set there, else the server's default; a server without one gets DEFAULT_SESSION_LIMIT."""
    app = (spec.app or "").split(":")[0]
    if app not in SESSION_LIMITS:
        return DEFAULT_SESSION_LIMIT, f"duplex's default for a server without its own limit ({DEFAULT_SESSION_LIMIT} s)"
    variable, (base_var, base_default, plus) = SESSION_LIMITS[app]
    env = {k: str(v) for k, v in spec.environment.items()}
    if variable in env:
        return _seconds(name, variable, env[variable]), f"{variable} in its environment"
    if base_var and base_var in env:
        return _seconds(name, base_var, env[base_var]) + int(plus), f"{base_var} + {plus:g} s in its environment"
    return int(base_default + plus), f"{variable}'s default"


def _seconds(name: str, variable: str, value: str) -> int:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 7 * 86400:
        raise PublishError(f"{name}: {variable} = {value!r} is not a number of seconds (at most a week)",
                           fix=f"set {variable} under [services.{name}.environment] to seconds, e.g. 3900")
    return int(-(-seconds // 1))
