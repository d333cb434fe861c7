"""Pure planning: from the stack, the mode flags and a Machine, decide what runs where.

No I/O here. Both runners and `inv config` consume the same Plan, which is what keeps native and
container runs behaving the same.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from . import warm
from .errors import PlanError
from .images.lock import official_base
from .images.references import image_problem
from .layout import Layout
from .machine import Machine
from .redact import URL_CREDENTIALS
from .stack import IMAGE, REVISION, TEMPLATE, Stack
from .syntax import instance_name, service_of_instance
from .vram import Need, place

LOOPBACK = "127.0.0.1"
HOST_FROM_CONTAINER = "host.docker.internal"  # mapped to the host gateway by the container runner
CACHE_IN_CONTAINER = "/cache/huggingface"
CERTS_IN_CONTAINER = "/certs"  # `inv certs`' stack folder: cert.pem, key.pem, bundle.pem
# Command services whose TLS switch is not uvicorn's, named by module path: the extra arguments.
TLS_ARGS = {"moshi.server": ["--ssl", "{certs}"]}  # moshi wants a folder with cert.pem and key.pem
LOOPBACK_URL = re.compile(r"^(https?://)(127\.0\.0\.1|localhost)(?=[:/]|\Z)")  # this host's loopback, as a URL
OTLP_SECRETS = ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS")
SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "API_KEY")
LABEL = "dev.duplex"


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class Health:
    kind: str  # "http" | "websocket" | "none"
    url: str | None  # as reached from the host (where duplex runs)
    timeout: float
    ca: str | None = None  # with tls: the local CA that verifies https/wss health URLs


@dataclass(frozen=True)
class ServicePlan:
    name: str
    mode: str  # "native" | "container"
    env: str | None  # the pinned env it runs in
    port: int  # on the host (127.0.0.1)
    container_port: int
    bind: str  # address the process listens on (inside its container, for containers)
    url: str  # from the host
    command: list[str]  # native: argv ("python" = the env's interpreter); container: CMD
    environment: dict[str, str]
    secrets: set[str]
    depends_on: dict[str, bool]  # in this run: name -> required
    health: Health
    image: str | None = None
    dockerfile: str | None = None
    build_args: dict[str, str] = field(default_factory=dict)
    mounts: list[Mount] = field(default_factory=list)
    gpu: bool = False  # request GPUs from the container runtime
    gpu_policy: str = "none"  # the stack's none | optional | required
    gpu_request: str = "nvidia"  # the engine's form: "nvidia" (device driver) or "cdi" (nvidia.com/gpu=ID)
    gpu_devices: list[str] = field(default_factory=list)  # placement: ["1"], ["0:2"] (MIG); empty = every GPU
    gpu_placement: str | None = None  # placement in words: "GPU 1 (NVIDIA L40S): ~24.0 GB of 44.3 GiB free ..."
    gpu_need: int | None = None  # the GPU memory the service needs, bytes (duplex.vram), when known
    torch_note: str | None = None  # why its env's torch = "auto" is the build it is (or why none fits)
    watch: list[str] = field(default_factory=list)
    persistent: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    metrics: str | None = None  # the Prometheus endpoint's path, when it has one
    sticky: bool = False  # WebSocket sessions: a client must stay on one replica
    sessions: int | None = None  # the stack's `sessions`: live sessions one replica serves at once

    @property
    def service(self) -> str:
        """The stack's service this runs (its own name, or a replica's: asr_1 -> asr)."""
        return service_of_instance(self.name)


@dataclass(frozen=True)
class Plan:
    stack: str
    root: str
    native: bool
    services: dict[str, ServicePlan]
    start_order: list[str]
    waves: list[list[str]]  # services in one wave start in parallel
    warnings: list[str]
    left_out: dict[str, str]  # services of the stack not in this run, and why
    telemetry: str | None = None  # the OTLP collector every service exports to (host's view), or off

    def masked_env(self, name: str) -> dict[str, str]:
        """The service's variables as `inv config` shows them: secrets as ***, and any URL's
        `user:password@` (HF_ENDPOINT, a database URL) as `***@`."""
        svc = self.services[name]
        return {k: ("***" if k in svc.secrets else URL_CREDENTIALS.sub(r"\g<1>***@", v))
                for k, v in sorted(svc.environment.items())}


def plan(stack: Stack, machine: Machine, *, native: bool = False,
         services: list[str] | None = None, pins: dict[str, str] | None = None,
         tls: bool | None = None, otlp: str | None = None, needs: dict[str, Need] | None = None,
         image_pins: dict[str, str] | None = None, replicas: dict[str, int] | None = None) -> Plan:
    """`pins`: each model repo's pinned commit (models.lock), for `{revision:ORG/NAME}` templates.
    `image_pins`: each base image's digest (images.lock): builds start FROM name:tag@digest.
    `needs`: each GPU service's GPU memory need (duplex.vram), for placing it on a GPU.
    `tls`: serve https/wss with `inv certs`' files (default: the stack's `tls`).
    `otlp`: a collector URL turns telemetry on (default: the stack's `telemetry`).
    `replicas`: None plans one of each service (what `inv publish` scales itself); a dict (what a
    run gives: --replicas, maybe empty) plans the stack's `replicas` of each, overridden by it. Replica K is planned as `NAME_K` (replica 0 keeps NAME) on port + K, each
    health-gated, its dependents waiting for every one (duplex.syntax.instance_name)."""
    tls = stack.stack.tls if tls is None else tls
    otlp = otlp or (stack.stack.otlp_endpoint if stack.stack.telemetry == "otlp" else None)
    warnings: list[str] = []
    chosen, left_out = _select(stack, machine, services, warnings)
    modes = {name: _mode(stack, name, native, warnings) for name in chosen}
    counts = _counts(stack, chosen, left_out, replicas)
    ports = _ports(stack, chosen, machine, counts)
    # A native service a container depends on must be reachable from the docker bridge.
    exposed = {dep for name in chosen if modes[name] == "container"
               for dep in stack.services[name].dependencies
               if dep in chosen and modes[dep] == "native"}
    for name in sorted(exposed):
        warnings.append(f"{name} runs natively but a container depends on it: it binds 0.0.0.0 "
                        f"so containers reach it at {HOST_FROM_CONTAINER}")
    result: dict[str, ServicePlan] = {}
    for name in chosen:
        for replica in range(counts[name]):
            svc = _service(stack, machine, name, modes, ports, chosen, name in exposed,
                           warnings if replica == 0 else [], pins or {}, tls, image_pins or {}, replica)
            environment = {**svc.environment, **telemetry_env(otlp, stack.name, name, modes[name], machine.env)}
            if otlp and counts[name] > 1:  # one service name in the traces, each replica told apart
                environment["OTEL_RESOURCE_ATTRIBUTES"] += f",service.instance.id={svc.name}"
            result[svc.name] = dataclasses.replace(svc, environment=environment,
                                                   secrets=svc.secrets | {k for k in environment if k in OTLP_SECRETS})
    result = _placed(result, machine, needs or {})
    waves = _waves({n: [d for d in result[n].depends_on] for n in result})
    return Plan(stack=stack.name, root=str(stack.root), native=native, services=result,
                start_order=[n for wave in waves for n in wave], waves=waves,
                warnings=warnings, left_out=left_out, telemetry=otlp)


def _counts(stack: Stack, chosen: list[str], left_out: dict[str, str],
            replicas: dict[str, int] | None) -> dict[str, int]:
    if replicas is None:
        return {name: 1 for name in chosen}
    unknown = [n for n in replicas if n not in stack.services]
    if unknown:
        raise PlanError(f"--replicas: unknown service{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}",
                        fix=f"choose from: {', '.join(stack.services)}")
    out = [n for n in replicas if n not in chosen]
    if out:
        why = "; ".join(f"{n}: {left_out.get(n, 'not selected')}" for n in out)
        raise PlanError(f"--replicas names {', '.join(out)}, which this run leaves out ({why})",
                        fix="add it to --services, or drop it from --replicas")
    return {name: replicas.get(name, stack.services[name].replicas) for name in chosen}


def _placed(services: dict[str, ServicePlan], machine: Machine, needs: dict[str, Need]) -> dict[str, ServicePlan]:
    """Put each service that will use a GPU on one device (duplex.vram.place): a container is given
    that device only, a native process sees only it (CUDA_VISIBLE_DEVICES=its UUID, whatever
    CUDA_DEVICE_ORDER says). Without NVML's device list (a hand-built Machine) nothing is placed."""
    users = [n for n, s in services.items() if (s.gpu if s.mode == "container" else s.gpu_policy != "none")]
    if not machine.gpus or not users:
        return services
    wanted = {n: (needs[s].bytes if (s := service_of_instance(n)) in needs else None) for n in users}
    placed = place(wanted, machine.gpus)
    out = dict(services)
    for name, gpu in placed.items():
        svc = services[name]
        room = gpu.memory_free if gpu.memory_free is not None else gpu.memory_total
        need = needs.get(service_of_instance(name))
        words = (f"{gpu.label} ({gpu.name}" + (f", {gpu.uuid}" if gpu.uuid else "") + ")"
                 + (f": needs ~{need.bytes / 1024 ** 3:.1f} GiB" if need and need.bytes else "")
                 + (f", {room / 1024 ** 3:.1f} GiB free" if room is not None else ", free memory unknown"))
        changes: dict = {"gpu_need": need.bytes if need else None, "gpu_placement": words}
        if svc.mode == "container":
            changes["gpu_devices"] = [gpu.device_id]
        else:
            changes["environment"] = {**svc.environment, "CUDA_VISIBLE_DEVICES": gpu.cuda_id}
        out[name] = dataclasses.replace(svc, **changes)
    for name, gpu in placed.items():  # services that share a device: say with whom, and the sum
        others = [n for n, g in placed.items() if g.device_id == gpu.device_id and n != name]
        if others:
            known = [needs[s].bytes for n in (name, *others)
                     if (s := service_of_instance(n)) in needs and needs[s].bytes]
            total = f": ~{sum(known) / 1024 ** 3:.1f} GiB together" if len(known) == 1 + len(others) else ""
            out[name] = dataclasses.replace(out[name], gpu_placement=f"{out[name].gpu_placement}; "
                                            f"shared with {', '.join(others)}{total}")
    return out


def _select(stack: Stack, machine: Machine, requested: list[str] | None,
            warnings: list[str]) -> tuple[list[str], dict[str, str]]:
    """Requested services plus everything they require; by default every service that can run."""
    left_out: dict[str, str] = {}
    if requested:
        wanted = known_services(stack, requested)
    else:
        wanted = []
        for name, svc in stack.services.items():
            if svc.gpu == "required" and machine.gpu_count == 0:
                left_out[name] = "needs a GPU and this machine has none"
                warnings.append(f"{name} left out: it needs a GPU and none was found "
                                f"(run it on a GPU machine, or name it with --services to insist)")
            else:
                wanted.append(name)
    chosen = with_requirements(stack, wanted)
    for name in chosen:
        left_out.pop(name, None)  # a GPU service another one requires is in after all
    for name in stack.services:
        if name not in chosen and name not in left_out:
            left_out[name] = "not selected"
    return chosen, left_out


def known_services(stack: Stack, names: list[str]) -> list[str]:
    """The names, once each, or a PlanError naming the ones the stack does not define."""
    unknown = [n for n in names if n not in stack.services]
    if unknown:
        raise PlanError(f"unknown service{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}",
                        fix=f"choose from: {', '.join(stack.services)}")
    return list(dict.fromkeys(names))


def with_requirements(stack: Stack, names: list[str]) -> list[str]:
    """The services plus every service they require (`required = false` ones are not pulled in),
    in the stack file's order."""
    chosen: set[str] = set()

    def add(name: str) -> None:
        if name not in chosen:
            chosen.add(name)
            for dep, required in stack.services[name].dependencies.items():
                if required:
                    add(dep)
    for name in names:
        add(name)
    return [n for n in stack.services if n in chosen]


def _mode(stack: Stack, name: str, native: bool, warnings: list[str]) -> str:
    allowed = stack.services[name].modes
    want = "native" if native else "container"
    if want in allowed:
        return want
    if native:
        return "container"  # container-only services (moshi) stay in containers: expected
    warnings.append(f"{name} cannot run in a container (modes = {allowed}); it runs natively")
    return "native"


def base_image(stack: Stack, machine: Machine, env: str | None = None,
               image_pins: dict[str, str] | None = None) -> str:
    """The image a service's Dockerfile builds FROM: DUPLEX_BASE_IMAGE, else the stack's
    `base_image`, else the official Python image of its env's Python (python:3.11-slim-bookworm);
    with its digest from images.lock when pinned there (`image_pins`: reference -> digest)."""
    chosen = machine.env.get("DUPLEX_BASE_IMAGE") or stack.stack.base_image
    why = image_problem(chosen, IMAGE) if chosen is not None else None
    if why:
        raise PlanError(f"DUPLEX_BASE_IMAGE={chosen!r} is not an image reference ({why})",
                        fix="set it to an image such as python:3.11-slim-bookworm, or unset it")
    if chosen is None:
        spec = stack.envs.get(env) if env else None
        chosen = official_base(spec.python if spec else None)
    digest = (image_pins or {}).get(chosen)
    return f"{chosen}@{digest}" if digest and "@" not in chosen else chosen


def port_variable(service: str) -> str:
    """The host variable that moves a service to another port: DUPLEX_PORT_MY_SVC for `my-svc`."""
    return "DUPLEX_PORT_" + service.upper().replace("-", "_")


def _ports(stack: Stack, chosen: list[str], machine: Machine, counts: dict[str, int]) -> dict[str, list[int]]:
    """Each service's host ports, one per replica: its port (or DUPLEX_PORT_<NAME>), then port + 1, ..."""
    ports: dict[str, int] = {}
    for name in chosen:
        var = port_variable(name)
        raw = machine.env.get(var)
        if raw is None:
            ports[name] = stack.services[name].port
            continue
        if not raw.isdigit() or not 1 <= int(raw) <= 65535:
            raise PlanError(f"{var}={raw!r} is not a port number", fix=f"set {var} to 1-65535 or unset it")
        ports[name] = int(raw)
    every = {n: list(range(p, p + counts[n])) for n, p in ports.items()}
    if any(p[-1] > 65535 for p in every.values()):
        name = next(n for n, p in every.items() if p[-1] > 65535)
        raise PlanError(f"{name}'s {counts[name]} replicas from port {ports[name]} go past port 65535",
                        fix=f"set {port_variable(name)} lower, or run fewer replicas")
    taken = [p for ps in every.values() for p in ps]
    clash = {p for p in taken if taken.count(p) > 1}
    if clash:
        names = [n for n, ps in every.items() if clash & set(ps)]
        raise PlanError(f"services {', '.join(names)} would share port {min(clash)}"
                        + (" (each replica takes the next port)" if any(counts[n] > 1 for n in names) else ""),
                        fix="give each a distinct DUPLEX_PORT_<SERVICE>" +
                            (" far enough apart for its replicas" if any(counts[n] > 1 for n in names) else ""))
    return every


def addresses(target: str, consumer_mode: str, modes: dict[str, str], ports: dict[str, list[int]],
              container_ports: dict[str, int]) -> list[tuple[str, int]]:
    """Host and port at which each replica of `target` is reached from a process running in `consumer_mode`."""
    if consumer_mode == "native":
        return [(LOOPBACK, p) for p in ports[target]]  # containers publish on 127.0.0.1
    if modes[target] == "container":  # the stack's docker network alias: each replica's own name
        return [(instance_name(target, k), container_ports[target]) for k in range(len(ports[target]))]
    return [(HOST_FROM_CONTAINER, p) for p in ports[target]]


def _service(stack: Stack, machine: Machine, name: str, modes: dict[str, str], ports: dict[str, list[int]],
             chosen: list[str], exposed: bool, warnings: list[str], pins: dict[str, str],
             tls: bool = False, image_pins: dict[str, str] | None = None, replica: int = 0) -> ServicePlan:
    spec = stack.services[name]
    mode = modes[name]
    scheme = "https" if tls else "http"
    certs_host = str(Layout(stack.root).stack_certs(stack.name))  # path arithmetic only: `inv certs` makes it
    certs = certs_host if mode == "native" else CERTS_IN_CONTAINER
    container_ports = {n: stack.services[n].port for n in chosen}
    port = ports[name][replica]
    bind, listen_port = _listen(mode, exposed, port, spec.port)
    env, mounts = _model_cache(mode, machine)
    if tls:  # every service serves TLS; clients trust the local CA on top of the system roots
        env["SSL_CERT_FILE"] = f"{certs}/bundle.pem"
        if mode == "container":
            mounts.append(Mount(certs_host, CERTS_IN_CONTAINER, read_only=True))
    env.update(_from_host(spec, mode, machine))
    deps = {d: req for d, req in spec.dependencies.items() if d in chosen}
    env.update(_discovery(deps, mode, modes, ports, container_ports, scheme))
    own, own_secrets = _stack_environment(spec, name, mode, modes, ports, container_ports, chosen, pins, tls,
                                          warnings, stack)
    env.update(own)
    secrets = {k for k in spec.secrets} | {"HF_TOKEN"} | own_secrets
    gpu = _gpu(spec, name, mode, machine, warnings)
    health = _health(spec.health, port, spec.start_timeout, tls, f"{certs_host}/bundle.pem")
    if tls and mode == "native" and spec.app and spec.reload == "warm":
        warnings.append(f"{name}: warm reload does not serve TLS yet; with tls on it restarts on each "
                        "edit (uvicorn --reload)")
    image, dockerfile, build_args = _image(stack, machine, name, mode, image_pins)
    return ServicePlan(
        name=instance_name(name, replica), mode=mode, env=spec.env, port=port, container_port=spec.port, bind=bind,
        url=f"{scheme}://{LOOPBACK}:{port}",
        command=_command(spec, mode, bind, listen_port, stack, certs if tls else None),
        environment=env, secrets={s for s in secrets if s in env}, health=health,
        depends_on={instance_name(d, k): req for d, req in deps.items() for k in range(len(ports[d]))},
        image=image, dockerfile=dockerfile, build_args=build_args, mounts=mounts, gpu=gpu, gpu_policy=spec.gpu,
        gpu_request=machine.gpu_request, torch_note=machine.torch_notes.get(spec.env or ""),
        watch=_watch(spec) if mode == "native" else [], persistent=spec.persistent,
        labels={f"{LABEL}.stack": stack.name, f"{LABEL}.service": instance_name(name, replica),
                f"{LABEL}.root": str(stack.root)},
        models=list(spec.models), metrics=spec.metrics,
        sticky=spec.websocket or bool(spec.health and spec.health.startswith("ws:")), sessions=spec.sessions,
    )


def _listen(mode: str, exposed: bool, port: int, container_port: int) -> tuple[str, int]:
    """The address and port the process listens on: a native one on the host's port (loopback, or
    every interface when a container depends on it); a container inside, published on 127.0.0.1."""
    if mode == "native":
        return ("0.0.0.0" if exposed else LOOPBACK), port
    return "0.0.0.0", container_port


def _model_cache(mode: str, machine: Machine) -> tuple[dict[str, str], list[Mount]]:
    """The shared model cache: the same files for both modes (a container mounts the host's)."""
    env: dict[str, str] = {}
    mounts: list[Mount] = []
    if mode == "native":
        env["HF_HOME"] = machine.hf_home
        if machine.hf_hub_cache:
            env["HF_HUB_CACHE"] = machine.hf_hub_cache
    else:
        env["HF_HOME"] = CACHE_IN_CONTAINER
        mounts.append(Mount(machine.hf_home, CACHE_IN_CONTAINER))
        if machine.hf_hub_cache:
            env["HF_HUB_CACHE"] = CACHE_IN_CONTAINER + "/hub"
            mounts.append(Mount(machine.hf_hub_cache, CACHE_IN_CONTAINER + "/hub"))
    return env, mounts


def _from_host(spec, mode: str, machine: Machine) -> dict[str, str]:
    """The host's variables a service gets: the hub's endpoint and offline switch, a native one's
    CUDA_VISIBLE_DEVICES, the token when it loads models, the secrets it declares."""
    env = {var: machine.env[var] for var in ("HF_ENDPOINT", "HF_HUB_OFFLINE") if var in machine.env}
    if mode == "native" and "CUDA_VISIBLE_DEVICES" in machine.env:
        env["CUDA_VISIBLE_DEVICES"] = machine.env["CUDA_VISIBLE_DEVICES"]
    if spec.models:
        # Models come from the shared cache, prefetched and pinned: a run never downloads at start.
        env.setdefault("HF_HUB_OFFLINE", "1")
        if "HF_TOKEN" in machine.env:
            env["HF_TOKEN"] = machine.env["HF_TOKEN"]
    for var in spec.secrets:
        if var in machine.env:
            env[var] = machine.env[var]
    return env


def _discovery(deps: dict[str, bool], mode: str, modes: dict[str, str], ports: dict[str, list[int]],
               container_ports: dict[str, int], scheme: str) -> dict[str, str]:
    """Aspire-style variables for each dependency in the run, as this service reaches it: one per
    replica (services__asr__http__0, services__asr__http__1, ...)."""
    env = {}
    for dep in deps:
        for k, (host, dport) in enumerate(addresses(dep, mode, modes, ports, container_ports)):
            env[f"services__{dep}__{scheme}__{k}"] = f"{scheme}://{host}:{dport}"
    return env


def _stack_environment(spec, name: str, mode: str, modes: dict[str, str], ports: dict[str, list[int]],
                       container_ports: dict[str, int], chosen: list[str], pins: dict[str, str], tls: bool,
                       warnings: list[str], stack: Stack) -> tuple[dict[str, str], set[str]]:
    """The stack file's `environment` with its templates filled ({svc.url}, {revision:ORG/NAME}), and
    which of them are secrets by name; a variable whose service is not in the run, or whose model is
    not pinned yet, is left out with a warning."""
    env: dict[str, str] = {}
    secrets: set[str] = set()
    for key, value in spec.environment.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        refs = {ref for ref, fld in TEMPLATE.findall(text) if fld != "sessions"}  # sessions: the stack's
        missing = sorted(refs - set(chosen))
        if missing:
            warnings.append(f"{name}: {key} not set because {', '.join(missing)} is not part of this run")
            continue
        unpinned = sorted({r for r in REVISION.findall(text) if r.split("@")[0] not in pins})
        if unpinned:
            warnings.append(f"{name}: {key} not set because {', '.join(unpinned)} is not pinned yet "
                            f"(run `inv prefetch --services {name}`)")
            continue
        text = REVISION.sub(lambda m: pins[m.group(1).split("@")[0]], text)
        env[key] = _fill(text, mode, modes, ports, container_ports, tls,
                         {r: stack.services[r].sessions for r, _ in TEMPLATE.findall(text)})
        if any(word in key.upper() for word in SECRET_WORDS):
            secrets.add(key)
    return env, secrets


def _gpu(spec, name: str, mode: str, machine: Machine, warnings: list[str]) -> bool:
    """Whether the container runtime is asked for GPUs; what a missing GPU means is a warning here
    (preflight fails a required one)."""
    gpu = False
    if mode == "container" and spec.gpu != "none":
        gpu = machine.nvidia_runtime and machine.gpu_count > 0
        if not gpu and spec.gpu == "optional":
            warnings.append(f"{name}: no GPU available to containers; it runs on the CPU")
    if spec.gpu == "required" and machine.gpu_count == 0:
        warnings.append(f"{name} needs a GPU and none was found: preflight will fail it")
    elif spec.gpu == "required" and mode == "container" and not gpu:
        warnings.append(f"{name} needs a GPU but Docker cannot hand one to containers (no NVIDIA "
                        "container runtime): preflight will fail it")
    return gpu


def _image(stack: Stack, machine: Machine, name: str, mode: str,
           image_pins: dict[str, str] | None) -> tuple[str | None, str | None, dict[str, str]]:
    """(image, dockerfile, build args) of a container: built from the stack's Dockerfile FROM the
    base image, as the host user, with its env's torch build; or the stack's image as it is."""
    spec = stack.services[name]
    if mode != "container":
        return None, None, {}
    if not spec.dockerfile:
        return spec.image, None, {}
    build_args = {"BASE_IMAGE": base_image(stack, machine, spec.env, image_pins),
                  # the host user, so the bind-mounted cache is readable; never root
                  "UID": str(machine.uid or 1000), "GID": str(machine.gid or 1000)}
    torch = stack.envs[spec.env].torch if spec.env in stack.envs else "none"
    if torch != "none":  # the image gets the same torch build a native env would
        build_args["TORCH"] = machine.torch_for(spec.env) if torch == "auto" else torch
    return f"duplex-{stack.name}-{name}:dev", spec.dockerfile, build_args


def telemetry_env(otlp: str | None, stack: str, name: str, mode: str, host_env: dict[str, str]) -> dict[str, str]:
    """The standard OpenTelemetry variables, so instrumented servers export without code changes."""
    if otlp is None:  # off means off, even with OTEL_* variables in the user's shell
        return {"OTEL_SDK_DISABLED": "true"}
    if mode == "container":  # the collector on the host's loopback is the host gateway from a container
        otlp = LOOPBACK_URL.sub(rf"\g<1>{HOST_FROM_CONTAINER}", otlp)
    env = {"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.rstrip("/"),
           "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_SERVICE_NAME": name,
           "OTEL_RESOURCE_ATTRIBUTES": f"service.namespace={stack},duplex.mode={mode}",
           "OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
    for key in OTLP_SECRETS:  # a collector's auth headers: passed through, always masked
        if key in host_env:
            env[key] = host_env[key]
    return env


def _fill(text: str, mode: str, modes, ports, container_ports, tls: bool = False,
          sessions: dict[str, int | None] | None = None) -> str:
    """The value with its templates filled. A value naming the host, port or url of a service with N
    replicas becomes N copies of itself, comma-joined, copy K naming replica K (a service with fewer
    replicas than another in the same value: its last one); {svc.sessions} is the same in each copy."""
    found = [(ref, fld) for ref, fld in TEMPLATE.findall(text) if fld != "sessions"]
    copies = max((len(ports[ref]) for ref, _ in found), default=1)
    return ",".join(_filled(text, k, mode, modes, ports, container_ports, tls, sessions or {}) for k in range(copies))


def _filled(text: str, k: int, mode: str, modes, ports, container_ports, tls: bool,
            sessions: dict[str, int | None]) -> str:
    def one(match) -> str:
        ref, fld = match.group(1), match.group(2)
        if fld == "sessions":  # empty when the stack does not say: the server's own default then
            return "" if sessions.get(ref) is None else str(sessions[ref])
        every = addresses(ref, mode, modes, ports, container_ports)
        host, port = every[min(k, len(every) - 1)]
        return {"host": host, "port": str(port), "url": f"{'https' if tls else 'http'}://{host}:{port}"}[fld]
    filled = TEMPLATE.sub(one, text)
    if tls and TEMPLATE.search(text):  # "ws://{moshi.host}:..." points at a service that now serves TLS
        for plain, secure in (("ws://", "wss://"), ("http://", "https://")):
            if filled.startswith(plain):
                filled = secure + filled[len(plain):]
    return filled


def _health(spec: str | None, port: int, timeout: float, tls: bool = False, ca: str | None = None) -> Health:
    s = "s" if tls else ""
    ca = ca if tls else None
    if spec is None:
        return Health("none", None, timeout)
    if spec.startswith("ws:"):
        return Health("websocket", f"ws{s}://{LOOPBACK}:{port}{spec[3:]}", timeout, ca)
    return Health("http", f"http{s}://{LOOPBACK}:{port}{spec}", timeout, ca)


def _command(spec, mode: str, bind: str, port: int, stack: Stack, certs: str | None = None) -> list[str]:
    """`certs`: with tls, the folder holding cert.pem and key.pem as this service sees it."""
    ssl = ["--ssl-certfile", f"{certs}/cert.pem", "--ssl-keyfile", f"{certs}/key.pem"] if certs else []
    if spec.app and mode == "native" and spec.reload == "warm" and not certs:  # warm runner: no TLS yet
        return warm.command(spec.app, bind, port, _watch(spec), spec.preload)
    if spec.app:
        argv = ["python", "-m", "uvicorn", spec.app, "--host", bind, "--port", str(port), *ssl]
        if mode == "native":
            argv.append("--reload")
            for folder in _watch(spec):
                argv += ["--reload-dir", folder]
        return argv
    argv = [part.replace("{port}", str(port)).replace("{host}", bind) for part in spec.command]
    if certs and len(argv) > 2 and argv[1] == "-m" and argv[2] in TLS_ARGS:
        argv += [a.replace("{certs}", certs) for a in TLS_ARGS[argv[2]]]
    return argv


def _watch(spec) -> list[str]:
    """What --reload watches: the stack's `watch`, else the folder of the app's package."""
    if spec.watch is not None:
        return list(spec.watch)
    if spec.app:
        module = spec.app.split(":")[0]
        return ["/".join(module.split(".")[:-1]) or "."]
    return []


def _waves(graph: dict[str, list[str]]) -> list[list[str]]:
    """Dependency levels (Kahn): each wave needs only earlier waves. The stack has no cycles."""
    done: set[str] = set()
    waves: list[list[str]] = []
    while len(done) < len(graph):
        wave = sorted(n for n in graph if n not in done and all(d in done for d in graph[n]))
        if not wave:  # defensive: load_stack already rejects cycles
            raise PlanError("dependency cycle among: " + ", ".join(sorted(set(graph) - done)))
        waves.append(wave)
        done.update(wave)
    return waves
