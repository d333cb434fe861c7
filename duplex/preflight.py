"""`inv preflight`: gather every probe once (in parallel, with timeouts), run the checks that apply, report.

Probes are plain attributes of `Probes`, so tests hand in recorded facts where a thing cannot exist here
(a GPU) and keep the real probe everywhere else.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from checks import Context, Result, disk, docker, gpu, hub, models, opus, ports, python, skip, token, torch, warn

from .engine import probe_docker, wanted_images
from .errors import RunError
from .gpu import probe_nvml_facts
from .images.registry import probe_registry
from .layout import Layout
from .machine import NvmlFacts
from .plan import Plan

GROUPS = ("python", "gpu", "token", "models", "disk", "ports", "docker", "opus")
PROBE_TIMEOUT = 20.0  # a probe that has not answered by then is reported, never waited on


@dataclass
class Probes:
    """The side effects, one callable each; swap any of them for recorded data in tests."""

    nvml: Callable[[dict], NvmlFacts] = probe_nvml_facts
    interpreters: Callable = python.probe_interpreters
    env_state: Callable = python.probe_env
    torch: Callable = torch.probe_torch
    hub: Callable = hub.gather
    docker: Callable = probe_docker
    port: Callable = ports.probe_port
    disk: Callable = disk.probe_disk
    libs: Callable = opus.probe_libs
    registry: Callable = probe_registry


@dataclass
class Report:
    results: list[Result]
    seconds: float
    mode: str
    services: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.status == "fail"]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def counts(self) -> dict[str, int]:
        return {s: sum(r.status == s for r in self.results) for s in ("pass", "warn", "fail", "skip")}

    def as_list(self) -> list[dict]:
        return [r.to_dict() for r in self.results]

    def to_json(self) -> str:
        """What `inv preflight --json` prints: a list of the results."""
        return json.dumps(self.as_list(), indent=2)


def _parallel(jobs: dict[str, Callable[[], object]], timeout: float) -> dict[str, object]:
    """Run each job in a daemon thread; a job that raises or outlives `timeout` yields the exception."""
    answers: dict[str, object] = {}

    def work(key, fn):
        try:
            answers[key] = fn()
        except Exception as exc:  # noqa: BLE001 - a probe's bug must not hide the other checks
            answers[key] = exc
    threads = [threading.Thread(target=work, args=item, daemon=True) for item in jobs.items()]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return {k: answers.get(k, TimeoutError(f"no answer within {timeout:.0f} s")) for k in jobs}


def run_preflight(stack, plan: Plan, *, environ: dict[str, str] | None = None, probes: Probes | None = None,
                  for_run: bool = False, timeout: float | None = None) -> Report:
    """Every check that applies to this plan's services and modes; never raises for what it finds."""
    started = time.perf_counter()
    environ = dict(os.environ if environ is None else environ)
    probes = probes or Probes()
    ctx = Context(stack, plan, environ, for_run)
    root = ctx.root
    cache = Layout(root).cache
    net_timeout = timeout or hub.env_timeout(environ)
    nvml = probes.nvml(environ)  # milliseconds; env states and torch need it
    envs = ctx.native_envs()
    repos = list(ctx.models())
    jobs: dict[str, Callable] = {}
    if envs:
        jobs["interpreters"] = lambda: probes.interpreters(environ)
        for env in envs:
            jobs[f"env:{env}"] = lambda env=env: probes.env_state(root, env, stack.envs[env], nvml)
            python_bin = Layout(root).env_python(env)
            if getattr(stack.envs[env], "torch", "none") != "none" and python_bin.exists():
                jobs[f"torch:{env}"] = lambda p=python_bin: probes.torch(p, driver=nvml.driver_version,
                                                                          memo=cache / "torch.json")
    if repos and not ctx.offline:
        jobs["hub"] = lambda: probes.hub(environ, repos, timeout=net_timeout, root=root)
    if ctx.services("container"):
        jobs["docker"] = lambda: probes.docker(environ, wanted_images(plan), plan.stack, max(net_timeout, 1.0),
                                               root=plan.root)
    for svc in ctx.services():
        jobs[f"port:{svc.port}"] = lambda p=svc.port: probes.port(p)
    jobs["disk"] = lambda: probes.disk(models.hub_cache(environ))
    libs = sorted({name for _, name in opus.wanted(ctx)})
    if libs:
        jobs["libs"] = lambda: probes.libs(libs)
    got = _parallel(jobs, PROBE_TIMEOUT)
    results: list[Result] = []
    broken = {k: v for k, v in got.items() if isinstance(v, Exception) and not k.startswith("env:")}
    for key, exc in broken.items():
        results.append(warn(f"{key.split(':')[0]}.probe", f"the {key} probe failed: {exc}",
                            "rerun; if it persists, report it with this message"))

    def ok(key, default=None):
        value = got.get(key, default)
        return default if isinstance(value, Exception) else value

    hub_facts = ok("hub")
    model_facts = models.gather(repos, environ, hub_facts.models if hub_facts else {}, cache / "model-sizes.json")
    if envs:
        results += python.check_interpreters(ctx, ok("interpreters", []))
        results += python.check_envs(ctx, {e: got.get(f"env:{e}", "missing") for e in envs})
        results += torch.check(ctx, {e: ok(f"torch:{e}") for e in envs if ok(f"torch:{e}")}, nvml)
    results.append(gpu.check_driver(ctx, nvml))
    results += gpu.check_services(ctx, nvml)
    results += gpu.check_vram(ctx, nvml, model_facts)
    results += token.check(ctx, hub_facts)
    results += models.check(ctx, model_facts)
    if ok("disk"):
        results.append(disk.check(ctx, got["disk"], model_facts))
    docker_facts = ok("docker")
    registry = _registry(probes, plan, docker_facts, net_timeout)
    results += ports.check(ctx, {s.port: ok(f"port:{s.port}") for s in ctx.services() if ok(f"port:{s.port}")},
                           docker_facts.own if docker_facts else {})
    results += docker.check(ctx, docker_facts, len(nvml.gpus), registry)
    results += docker.check_image_locks(ctx)
    results += docker.check_torch_builds(ctx)
    results += opus.check(ctx, ok("libs", {}))
    results += _not_applicable(ctx, results)
    order = {g: i for i, g in enumerate(GROUPS)}
    results.sort(key=lambda r: order.get(r.group, len(GROUPS)))  # stable: checks keep their own order
    return Report(results, time.perf_counter() - started, "native" if plan.native else "container",
                  list(plan.start_order))


def _registry(probes: Probes, plan: Plan, facts, timeout: float) -> dict[str, dict]:
    """Ask the registries (the engine's mirrors first) only for base images the engine lacks: the
    usual run, with everything pulled, makes no network call. After the engine: it names the mirrors."""
    if facts is None or not facts.reachable:
        return {}
    bases = [s.build_args["BASE_IMAGE"] for s in plan.services.values()
             if s.mode == "container" and s.dockerfile and s.build_args.get("BASE_IMAGE")]
    missing = [b for b in dict.fromkeys(bases) if not facts.images.get(b)]
    if not missing:
        return {}
    try:
        return probes.registry(missing, mirrors=facts.mirrors, platform=facts.platform, timeout=max(timeout, 2.0))
    except Exception as exc:  # noqa: BLE001 - a probe's bug must not hide the other checks
        return {b: {"kind": "unreachable", "error": f"the registry probe failed: {exc}",
                    "fix": "rerun; if it persists, report it with this message"} for b in missing}


def _not_applicable(ctx: Context, results: list[Result]) -> list[Result]:
    """A skip row for each group with nothing to check, so the table says why it is empty."""
    seen = {r.group for r in results}
    why = {"python": "no service runs natively in this mode (`inv preflight --native` checks the envs)",
           "models": "no service in this run uses a Hugging Face model",
           "ports": "no service in this run",
           "opus": "no native env declares a system library"}
    return [skip(g, text) for g, text in why.items() if g not in seen]


def require_ready(report: Report) -> None:
    """What `inv run` does with a preflight: stop before anything is built or started when a check failed."""
    if report.failed:
        lines = [f"  - {r.name}: {r.detail}\n    fix: {r.fix}" for r in report.failed]
        raise RunError("cannot start the stack, preflight found:\n" + "\n".join(lines),
                       fix="`inv preflight` shows every check; --skip-preflight starts anyway")


__all__ = ["Probes", "Report", "require_ready", "run_preflight"]
