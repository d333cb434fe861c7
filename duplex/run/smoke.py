"""Smoke checks: speak to each running service once (transcribe, translate, page, handshake) and time it.
The checks of duplex's own apps are in smoke_apps, the GPU row in smoke_gpu, moshi's latency row in
smoke_moshi; here: which services to check, each one's check chosen, all run in parallel."""

from __future__ import annotations

import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from ..errors import DuplexError
from ..layout import Layout
from ..plan import Health, Plan, base_image
from ..project import Project
from ..syntax import service_of_instance
from .health import client_context, probe_once, websocket_problem
from .smoke_apps import (
    ASR_APP,
    EXPECTED,
    FRONTEND_APP,
    MT_APP,
    SAMPLE,
    Problem,
    asr_latency_row,
    check_asr,
    check_frontend,
    check_mt,
)
from .smoke_gpu import gpu_check
from .smoke_moshi import moshi_latency_row
from .smoke_results import SmokeReport, SmokeResult, Target
from .state import read_state
from .status import status


def app_of(command: list[str]) -> str | None:
    """The ASGI app a command serves: `-m uvicorn MODULE:APP ...` or the warm runner's `--app`."""
    for i, part in enumerate(command):
        if part == "--app" and i + 1 < len(command):
            return command[i + 1]
    if "uvicorn" in command:
        for part in command[command.index("uvicorn") + 1:]:
            if not part.startswith("-"):
                return part if ":" in part else None
    return None


def plan_targets(plan: Plan) -> list[Target]:
    """Every service of a plan, as just started (`inv run --smoke`)."""
    return [Target(s.name, s.mode, s.url, s.health, app_of(s.command))
            for s in (plan.services[n] for n in plan.start_order)]


def running_targets(plan: Plan, rows: list[dict], records: dict[str, dict]) -> list[Target]:
    """What `inv status` shows (rows) with the URLs it was started on (state records)."""
    targets = []
    for row in rows:
        record = records.get(row["name"], {})
        # a replica the plan at hand lacks (a run's --replicas) runs its service's app
        svc = plan.services.get(row["name"]) or plan.services.get(service_of_instance(row["name"]))
        raw = record.get("health") or ({"kind": svc.health.kind, "url": svc.health.url} if svc else None)
        ca = {"ca": raw["ca"]} if raw and raw.get("ca") else {}  # recorded by tls runs
        health = Health(raw["kind"], raw["url"], 5.0, **ca) if raw else Health("none", None, 5.0)
        url = row.get("url") or record.get("url") or (svc.url if svc else "")
        targets.append(Target(row["name"], row["mode"], url, health,
                              app_of(svc.command) if svc else None, row.get("state", "running"),
                              record.get("container")))
    return targets


def targets_at(root: Path, plan: Plan) -> list[Target]:
    """The services a run of this stack (at `root`) left running or crashed, as `inv status` sees them."""
    return running_targets(plan, status(root), read_state(root)["services"])


def smoke(what: Plan | list[Target], *, sample: Path = SAMPLE, expected: str = EXPECTED,
          timeout: float = 30.0, services: list[str] | None = None,
          gpu: Callable[[], SmokeResult] | None = None, ca: Path | None = None,
          latency: bool = False) -> SmokeReport:
    """Run each target's check in parallel; `gpu` (see `gpu_check`) adds the GPU container row;
    `latency` adds a `latency` row per asr service (speech replayed at real time through WS /stream)."""
    targets = plan_targets(what) if isinstance(what, Plan) else list(what)
    if services:
        known = {m for t in targets for m in (t.name, service_of_instance(t.name))}
        missing = [n for n in services if n != "gpu" and n not in known]
        targets = [t for t in targets if t.name in services or service_of_instance(t.name) in services]  # asr: its replicas too
        targets += [Target(n, "-", "", Health("none", None, 0), state="not running") for n in missing]
    try:
        context = client_context(str(ca)) if ca else None
    except (OSError, ssl.SSLError) as exc:
        raise SmokeError(f"the local CA {ca} cannot be read ({exc})",
                         fix="run `inv certs` again (it remakes a missing or broken CA file)") from exc
    jobs: list[Callable[[], SmokeResult]] = [
        (lambda t=t: _timed(t, sample, expected, timeout, context)) for t in targets]
    if gpu is not None and (not services or "gpu" in services):
        jobs.append(gpu)
    if latency:
        jobs += [(lambda t=t: asr_latency_row(t, sample, expected, timeout, context))
                 for t in targets if t.app == ASR_APP and t.state == "running"]
        jobs += [(lambda t=t: moshi_latency_row(t, sample, timeout))
                 for t in targets if t.health.kind == "websocket" and t.container and t.state == "running"]
    with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        return SmokeReport(list(pool.map(lambda job: job(), jobs)))


def _timed(target: Target, sample: Path, expected: str, timeout: float, context) -> SmokeResult:
    started = time.monotonic()
    check, status, reason, detail = _check(target, sample, expected, timeout, context)
    return SmokeResult(target.name, check, status, round(time.monotonic() - started, 3), reason, detail)


def _check(t: Target, sample: Path, expected: str, timeout: float, context):
    if t.state != "running":
        return "state", "fail", f"{t.name} is {t.state} (`inv status`; `inv logs --service {t.name}` says why)", {}
    try:
        if t.app == ASR_APP:
            return ("transcribe", *check_asr(t.url, sample, expected, timeout, context))
        if t.app == FRONTEND_APP:
            return ("page", *check_frontend(t.url, timeout, context))
        if t.app == MT_APP:
            return ("translate", *check_mt(t.url, expected, timeout, context))
    except Problem as exc:
        hint = f" (is {t.name} up? `inv status`, `inv logs --service {t.name}`)" if str(exc).startswith("cannot") else ""
        return exc.check, "fail", str(exc) + hint, {}
    except Exception as exc:  # noqa: BLE001 - an answer of the wrong shape (not JSON, a list...): a failed check
        return "answer", "fail", f"{t.url} answered something unexpected ({type(exc).__name__}: {exc})", {}
    kind = "handshake" if t.health.kind == "websocket" else "health"
    if t.health.kind == "none":
        return kind, "skip", "no health check declared and no smoke check for its app", {}
    if kind == "handshake":  # the real handshake; a moshi busy with a conversation is told apart
        problem = websocket_problem(t.health.url, timeout, context)
        if problem is None:
            return kind, "pass", f"{t.health.url}: WebSocket handshake done, ready byte 0x00 received", {}
        if problem.startswith("upgraded") and websocket_problem(t.health.url, timeout, context, "alive") is None:
            return kind, "pass", (f"{t.health.url}: upgraded and answering, but busy: moshi serves one "
                                  "conversation at a time and one is running"), {"busy": True}
        return kind, "fail", f"{t.health.url}: {problem}", {}
    if probe_once(t.health, timeout=timeout):
        return kind, "pass", f"{t.health.url}: answered 2xx", {}
    return kind, "fail", f"{t.health.url} did not answer healthy within {timeout:g}s", {}


class SmokeError(DuplexError):
    """The smoke checks cannot run at all."""


def smoke_project(stack, machine, targets: list[Target], *, services: list[str] | None = None,
                  timeout: float = 30.0, latency: bool = False) -> SmokeReport:
    """`inv smoke` for a project: its targets, the GPU container check from the stack's base image,
    and https health verified with the project's local CA when `inv certs` made one."""
    ca = Layout(stack.root).ca
    return smoke(targets, services=services, timeout=timeout,
                 gpu=gpu_check(machine.nvidia_runtime, base_image(stack, machine), form=machine.gpu_request),
                 ca=ca if ca.exists() else None, latency=latency)


def smoke_running(*, services: list[str] | None = None, timeout: float = 30.0,
                  latency: bool = False) -> SmokeReport:
    """`inv smoke`: the services the project's current run left running (or crashed), checked once."""
    project = Project.load()
    machine = project.machine()
    native = read_state(project.root).get("mode") == "native"
    targets = targets_at(project.root, project.plan(machine, native=native))
    if not targets:
        raise SmokeError("nothing is running to smoke",
                         fix="`inv run --detach` or `inv run --native --detach` first")
    return smoke_project(project.stack, machine, targets, services=services, timeout=timeout, latency=latency)
