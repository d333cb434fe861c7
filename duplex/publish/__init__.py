"""`inv publish`: the same plan, written as a Compose file and as Kubernetes manifests, validated."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from ..capacity import read_capacity
from ..envs.lock import lock_path
from ..images.references import REGISTRY_RULE, registry_problem
from ..machine import Machine
from ..pinning import pin_unpinned
from ..plan import CACHE_IN_CONTAINER, LOOPBACK_URL, Plan, plan
from ..run.build_context import stage_build_ca
from ..stack import Stack
from . import argocd as argocd_mod
from . import compose as compose_mod
from . import kubernetes as k8s_mod
from . import validate, write
from .common import HEADER, PublishError, check_dns_names, check_publishable
from .push import check_registry, push_images
from .scaling import Scaling, plan_scaling
from .torch_build import publish_torch

__all__ = ["PublishError", "PublishReport", "publish", "target_plan"]
SECRET_PLACEHOLDER = "<from the deployment's secret store>"  # never a value: replaced by references
TLS_WARNING = ("the stack has tls = true, but published services serve plain HTTP inside the "
               "Compose host / cluster: terminate TLS at your ingress or reverse proxy "
               "(docs/publish.md, 'TLS')")


@dataclass
class PublishReport:
    stack: str
    out: str
    services: list[str]
    files: list[str]  # written, relative to `out`
    removed: list[str] = field(default_factory=list)  # stale generated files of an earlier publish
    validated: dict[str, str] = field(default_factory=dict)  # target -> tool and version, or why not
    warnings: list[str] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # generate, validate, write

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def summary(self) -> str:
        lines = [f"published stack {self.stack!r} ({', '.join(self.services)}) to {self.out}/:"]
        lines += [f"  {f}" for f in self.files]
        lines += [f"  removed stale {f}" for f in self.removed]
        lines += [f"validated {k}: {v}" for k, v in self.validated.items()]
        lines += [f"left out: {n} ({why})" for n, why in self.left_out.items()]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def missing_locks(stack: Stack, the_plan: Plan) -> dict[str, tuple[str, str, Path]]:
    """service -> (env, torch variant, lock path) for each image whose Dockerfile would COPY a
    lock that is not there: such a build fails halfway, so `--push` refuses before building."""
    out = {}
    for name, svc in the_plan.services.items():
        variant = svc.build_args.get("TORCH")
        if svc.dockerfile and variant and svc.env and svc.env in stack.envs:
            lock = lock_path(stack.root, svc.env, stack.envs[svc.env], variant)
            if not lock.is_file():
                out[name] = (svc.env, variant, lock)
    return out


def check_build_locks(stack: Stack, the_plan: Plan) -> None:
    """One line naming every image that cannot be built for want of its lock, and the command."""
    missing = missing_locks(stack, the_plan)
    if not missing:
        return
    what = "; ".join(f"{n} needs {lock.relative_to(stack.root) if lock.is_relative_to(stack.root) else lock} "
                     f"(torch {variant})" for n, (_env, variant, lock) in missing.items())
    cmds = " and ".join(dict.fromkeys(f"`inv lock --env {env} --torch {variant}`"
                                      for env, variant, _lock in missing.values()))
    raise PublishError(f"cannot build the images to push, for want of their torch lock: {what}; "
                       "nothing was built or pushed",
                       fix=f"{cmds} where download.pytorch.org is reachable, and commit the lock (docs/publish.md, "
                           "'The torch build of GPU images'); or publish with --torch set to a build that has a lock")


def target_plan(stack: Stack, *, services: list[str] | None = None, pins: dict[str, str] | None = None,
                environ: dict[str, str] | None = None, gpus: int = 1, torch: str | None = None,
                image_pins: dict[str, str] | None = None) -> Plan:
    """A container plan for the production host, not this one: it has `gpus` GPUs (so GPU services
    are kept even when this machine has none), the model cache lives in a volume, the services run
    as the Dockerfiles' uid 1000, and secrets are placeholders the writers turn into references.
    From `environ` only DUPLEX_BASE_IMAGE and DUPLEX_PORT_* are read. `torch`: the build GPU images
    get (see `torch_build.publish_torch`)."""
    environ = dict(os.environ if environ is None else environ)
    env = {k: v for k, v in environ.items() if k == "DUPLEX_BASE_IMAGE" or k.startswith("DUPLEX_PORT_")}
    for name in {"HF_TOKEN", *(s for svc in stack.services.values() for s in svc.secrets)}:
        env[name] = SECRET_PLACEHOLDER
    variants, notes = publish_torch(stack, torch)
    machine = Machine(gpu_count=gpus, nvidia_runtime=gpus > 0, hf_home=CACHE_IN_CONTAINER,
                      hf_hub_cache=None, uid=1000, gid=1000, env=env, torch_envs=variants, torch_notes=notes)
    # Always plain HTTP: `inv run`'s TLS uses `inv certs`' local files, which no published
    # deployment mounts (and a local CA is no production certificate).
    local = plan(stack, machine, native=False, services=services, pins=pins, tls=False, image_pins=image_pins)
    warnings = [*local.warnings, *([TLS_WARNING] if stack.stack.tls else [])]
    warnings += _lock_warnings(stack, local)
    endpoint = stack.stack.otlp_endpoint
    if local.telemetry and LOOPBACK_URL.match(endpoint):
        warnings.append(f"telemetry: otlp_endpoint {endpoint} is loopback, which inside a published "
                        "container is the container itself; set it to the collector's address as "
                        "the cluster or Compose network sees it (e.g. http://otel-collector:4318)")
    published = {name: dataclasses.replace(svc, environment=_published_telemetry(local.telemetry, endpoint,
                                                                                 svc.environment))
                 for name, svc in local.services.items()}
    return dataclasses.replace(local, services=published, warnings=warnings)


def _lock_warnings(stack: Stack, the_plan: Plan) -> list[str]:
    """An image built with a torch variant COPYs that variant's lock: say when it is not there yet."""
    out = []
    for name, svc in the_plan.services.items():
        variant = svc.build_args.get("TORCH")
        if not variant or not svc.env or svc.env not in stack.envs:
            continue
        lock = lock_path(stack.root, svc.env, stack.envs[svc.env], variant)
        why = f" ({svc.torch_note})" if svc.torch_note else ""
        if lock.is_file():
            out.append(f"{name}: image built with torch {variant}{why}")
        else:
            out.append(f"{name}: image built with torch {variant}{why}, but {lock.relative_to(stack.root)} does "
                       f"not exist yet, so neither `docker compose build` nor --push can build it: "
                       f"`inv lock --env {svc.env} --torch {variant}` where download.pytorch.org "
                       "is reachable, and commit it")
    return out


def _published_telemetry(telemetry: str | None, endpoint: str, environment: dict[str, str]) -> dict[str, str]:
    """Off: no OTEL_* at all, so a platform's own OpenTelemetry setup (an operator injecting the
    variables) still applies. On: the stack's collector as written, not this host's view of it."""
    if telemetry is None:
        return {k: v for k, v in environment.items() if not k.startswith("OTEL_")}
    return {**environment, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint.rstrip("/")}


def publish_project(project, *, out: str | Path = "deploy", compose: bool = False, k8s: bool = False,
                    services: list[str] | None = None, **options) -> PublishReport:
    """`inv publish` for a project: its production plan, written under `out` (relative to the stack
    file's folder), Compose and Kubernetes both unless one is asked for. `options`: publish's."""
    both = not (compose or k8s)
    # beside the stack file: two stacks sharing a project folder (examples/translate) publish apart
    folder = Path(out) if Path(out).is_absolute() else project.stack.path.resolve().parent / out
    if folder.exists() and not folder.is_dir():
        raise PublishError(f"--out {out}: {folder} is a file, not a folder",
                           fix="give a folder for the published files, e.g. --out deploy")
    torch = options.pop("torch", None)
    options["gpu_sharing"] = options.get("gpu_sharing") or project.stack.stack.gpu_sharing
    repo, path = options.pop("argocd", None), options.pop("argocd_path", None)
    if path and not repo:
        raise PublishError("--path names the kustomization's folder for --argocd, which was not given",
                           fix="add --argocd REPO_URL, or leave out --path")
    if repo and not (k8s or both):
        raise PublishError("--argocd points Argo CD at the Kubernetes manifests, and --compose writes none",
                           fix="drop --compose (or add --k8s)")
    if repo:
        k8s_folder = folder.resolve() / "k8s"
        if path is None and not k8s_folder.is_relative_to(project.root):
            raise PublishError(f"--out {out} is outside the project, so the kustomization's path in the repo is unknown",
                               fix="give it with --path (relative to the repo root), e.g. --path deploy/k8s")
        options["argocd"] = (repo, path or k8s_folder.relative_to(project.root).as_posix())
    the_plan = target_plan(project.stack, services=services, pins=project.pins(), torch=torch,
                           image_pins=project.image_pins())
    capacity = options.pop("capacity", None)  # checked against the stack before anything is built or written
    measured = read_capacity(Path(capacity)) if capacity else None
    options["scaling"] = plan_scaling(project.stack, the_plan.start_order, measured,
                                      source=Path(capacity).name if capacity else "the capacity file")
    if options.pop("push", False):
        if not options.get("registry"):
            raise PublishError("--push needs --registry: where to push the images",
                               fix="e.g. inv publish --registry ghcr.io/team --push")
        say = options.get("progress") or (lambda _line: None)
        check_build_locks(project.stack, the_plan)  # a build without its lock fails halfway: refuse first
        check_registry(options["registry"])  # before anything is pinned or built
        if pin_unpinned(the_plan, say):  # pushed images start FROM pinned bases, as `inv run`'s do
            the_plan = target_plan(project.stack, services=services, pins=project.pins(), torch=torch,
                                   image_pins=project.image_pins())
        the_plan = push_images(the_plan, options["registry"], progress=say)
    needs = project.gpu_needs()  # what sharing one GPU sums (duplex.vram), as `inv run` places them
    the_plan = dataclasses.replace(the_plan, services={
        n: dataclasses.replace(s, gpu_need=needs[n].bytes) if s.gpu and n in needs else s
        for n, s in the_plan.services.items()})
    return publish(the_plan, out=folder, compose=compose or both, k8s=k8s or both,
                   stack_file=project.stack.path.name, **options)


def publish(the_plan: Plan, *, out: Path, compose: bool = True, k8s: bool = True, bind: str = "127.0.0.1",
            progress: Callable[[str], None] | None = None, registry: str | None = None,
            storage_class: str | None = None, cache_size: str = "50Gi", check: bool = True,
            stack_file: str = "stack.toml", gpu_sharing: str = "none",
            argocd: tuple[str, str] | None = None, scaling: dict[str, Scaling] | None = None) -> PublishReport:
    """Write `out`/compose.yaml (+ compose.cpu.yaml) and `out`/k8s/*.yaml from a container plan
    (see `target_plan`), validate them with Compose v2 and the Kubernetes schemas (`check`), and
    only then move them into place. A validator that is not installed is reported, not fatal.
    `gpu_sharing` (mps, time-slicing): the GPU services share one GPU, plus k8s/gpu-sharing.yaml.
    `argocd` (repo URL, path of k8s/ in it): also `out`/argocd-application.yaml.
    `scaling` (publish.scaling.plan_scaling): replicas, autoscalers, disruption budgets and drains;
    with an autoscaler also k8s/prometheus-adapter.yaml (the adapter's rules, outside the kustomization)."""
    scaling = scaling or {}
    say = progress or (lambda _line: None)
    if not (compose or k8s):
        raise PublishError("nothing to publish", fix="pass --compose, --k8s, or neither for both")
    _check_bind(bind)
    if registry is not None and registry_problem(registry):  # what a library caller passes, as the flag
        raise PublishError(f"registry {registry!r}: {registry_problem(registry)}", fix=f"give {REGISTRY_RULE}")
    check_publishable(the_plan)
    if k8s:
        check_dns_names(the_plan)
    out = Path(out)
    header = HEADER.format(stack_file=stack_file, stack=the_plan.stack)
    report = PublishReport(stack=the_plan.stack, out=str(out), services=list(the_plan.start_order),
                           files=[], warnings=list(the_plan.warnings), left_out=dict(the_plan.left_out))
    t0 = time.perf_counter()
    texts: dict[str, str] = {}
    if compose:
        context = os.path.relpath(the_plan.root, out.resolve())
        replicas = {n: s.replicas for n, s in scaling.items()}
        for name, doc in compose_mod.compose_files(the_plan, context=context, bind=bind,
                                                   registry=registry, replicas=replicas).items():
            texts[name] = write.dump(doc, header)
    manifests: dict[str, list[dict]] = {}
    if k8s:
        manifests = k8s_mod.manifests(the_plan, registry=registry, storage_class=storage_class,
                                      cache_size=cache_size, gpu_sharing=gpu_sharing, scaling=scaling)
        for name, docs in manifests.items():
            texts[f"k8s/{name}"] = write.dump(docs, header)
        texts["k8s/kustomization.yaml"] = write.dump(k8s_mod.kustomization(list(manifests)), header)
        rules = k8s_mod.adapter_rules(the_plan, scaling)
        if rules:  # the adapter's namespace, not the app's: outside the kustomization
            texts[f"k8s/{k8s_mod.ADAPTER_FILE}"] = write.dump([rules], header)
            report.warnings += [f"{n}: autoscaled {s.replicas}-{s.max_replicas} pods on {s.metric} "
                                f"(target {s.target:g} per pod: {s.target_from}); it needs the Prometheus "
                                f"adapter with k8s/{k8s_mod.ADAPTER_FILE}'s rules (docs/publish.md, "
                                "'Replicas and autoscaling')" for n, s in scaling.items()
                                if s.max_replicas is not None and n in the_plan.services]
        sharing = k8s_mod.device_plugin_config(the_plan, gpu_sharing)
        if sharing:  # the device plugin's namespace, not the app's: outside the kustomization
            texts["k8s/gpu-sharing.yaml"] = write.dump([sharing], header)
            report.warnings += [w for w in [k8s_mod.mps_warning(the_plan, gpu_sharing)] if w]
        elif gpu_sharing != "none":
            report.warnings.append(f"gpu sharing {gpu_sharing}: no published service uses a GPU")
    if argocd:
        texts[argocd_mod.FILE] = write.dump(argocd_mod.application(the_plan.stack, *argocd), header)
    report.seconds["generate"] = round(time.perf_counter() - t0, 4)
    say(f"generated {len(texts)} files for {', '.join(the_plan.start_order)}")

    t0 = time.perf_counter()
    staged = write.stage(out, texts)
    try:
        if check:
            _validate(staged, out, compose, k8s, report, say)
        report.seconds["validate"] = round(time.perf_counter() - t0, 4)
        written = write.commit(staged)
    except BaseException:
        write.discard(staged)
        raise
    folders = (["."] if compose else []) + (["k8s"] if k8s else [])
    removed = write.prune(out, folders, written)
    report.files = [str(p.relative_to(out)) for p in written]
    report.removed = [str(p.relative_to(out)) for p in removed]
    if compose and any(s.dockerfile for s in the_plan.services.values()):
        _ensure_ca_file(Path(the_plan.root))
    for name, svc in the_plan.services.items():
        if svc.models:
            report.warnings.append(f"{name} loads {', '.join(svc.models)} from the model cache offline: "
                                   f"fill the volume before it starts (docs/publish.md, 'Models')")
    if registry is None and k8s and any(s.dockerfile and "@" not in s.image for s in the_plan.services.values()):
        report.warnings.append("images carry local names: push them to a registry the cluster can "
                               "pull from and publish with --registry (or retag in kustomization.yaml)")
    say(f"wrote {len(written)} files under {out}")
    return report


def _validate(staged: dict[Path, Path], out: Path, compose: bool, k8s: bool, report: PublishReport,
              say: Callable[[str], None]) -> None:
    if compose:
        base = staged[out / compose_mod.FILE]
        cpu = staged.get(out / compose_mod.CPU_FILE)
        try:
            version = validate.validate_compose([base], names=[compose_mod.FILE])
            if cpu:
                validate.validate_compose([base, cpu], names=[compose_mod.FILE, compose_mod.CPU_FILE])
            report.validated["compose"] = f"docker compose {version} config"
            say(f"compose: valid ({version})")
        except validate.ValidatorMissing as err:
            report.validated["compose"] = f"not checked: {err} ({err.fix})"
            report.warnings.append(report.validated["compose"])
    argo = staged.get(out / argocd_mod.FILE)
    if argo:
        try:
            report.validated["argocd"] = argocd_mod.validate_application(yaml.safe_load(argo.read_text(encoding="utf-8")))
            say("argocd: valid")
        except validate.ValidatorMissing as err:
            report.validated["argocd"] = f"not checked: {err} ({err.fix})"
            report.warnings.append(report.validated["argocd"])
    if k8s:
        docs = {final.name: list(yaml.safe_load_all(tmp.read_text(encoding="utf-8")))
                for final, tmp in staged.items() if final.parent.name == "k8s"}
        try:
            versions = validate.validate_manifests(docs)
            report.validated["kubernetes"] = "kubernetes-validate, strict, " + " and ".join(versions)
            say(f"kubernetes: valid against {' and '.join(versions)}")
        except validate.ValidatorMissing as err:
            report.validated["kubernetes"] = f"not checked: {err} ({err.fix})"
            report.warnings.append(report.validated["kubernetes"])


def _check_bind(bind: str) -> None:
    try:
        ipaddress.ip_address(bind)
    except ValueError:
        raise PublishError(f"--bind {bind!r} is not an IP address",
                           fix="use 127.0.0.1 (this host only, the default) or 0.0.0.0 (every interface)") from None


def _ensure_ca_file(root: Path) -> None:
    """The Dockerfiles COPY .duplex/build/ca.pem (maybe empty): Compose builds need it present."""
    stage_build_ca(root, keep=True)
