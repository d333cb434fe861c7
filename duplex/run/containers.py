"""Container runner: build or pull each image, run it through the docker SDK, stream its logs."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

from ..engine import connect, short_error
from ..errors import RunError
from ..layout import Layout
from ..plan import CERTS_IN_CONTAINER, LABEL, ServicePlan, port_variable
from .build_context import stage_build_ca, stage_wheels
from .container_certs import for_container
from .inventory import PERSISTENT_LABEL, remove_idle_networks
from .logfile import LogFile, deliver
from .native import secret_masker
from .runner import LineSink

CONFIG_LABEL = f"{LABEL}.config"


def container_name(stack: str, service: str) -> str:
    return f"duplex-{stack}-{service}"


def run_kwargs(svc: ServicePlan, stack: str, network: str, config_hash: str) -> dict:
    """Pure translation from a service plan to `containers.run` keyword arguments."""
    from docker.types import EndpointConfig  # heavy: docker loads only when a container runs (not for a native run)
    kwargs = dict(
        image=svc.image, command=svc.command, name=container_name(stack, svc.name), detach=True,
        environment=dict(svc.environment),
        ports={f"{svc.container_port}/tcp": ("127.0.0.1", svc.port)},  # never all interfaces
        volumes={m.source: {"bind": m.target, "mode": "ro" if m.read_only else "rw"} for m in svc.mounts},
        labels={**svc.labels, CONFIG_LABEL: config_hash, PERSISTENT_LABEL: str(svc.persistent).lower()},
        network=network,
        networking_config={network: EndpointConfig(version="1.44", aliases=[svc.name])},
        extra_hosts={"host.docker.internal": "host-gateway"},  # a native dependency, from inside
    )
    if svc.gpu:
        kwargs["device_requests"] = [gpu_device_request(svc)]
    return kwargs


def gpu_device_request(svc: ServicePlan):
    """The engine's GPU request for the plan's placement (`device_request`)."""
    return device_request(svc.gpu_request, svc.gpu_devices)


def device_request(form: str | None, devices: list[str] | tuple[str, ...] | None = None):
    """The one GPU request duplex sends, for a service and for `inv smoke`'s GPU check alike.
    "nvidia": the engine's NVIDIA device driver (registered when NVIDIA's runtime hook is on the
    engine's PATH) with the placed device ids, or every GPU; "cdi": the CDI device names
    (`nvidia.com/gpu=0`, `=0:1` for MIG, `=all`), for engines that have CDI specs but no NVIDIA
    runtime hook (the nvidia form fails there with `could not select device driver`)."""
    from docker.types import DeviceRequest  # heavy: docker loads only when a container runs (not for a native run)
    devices = [str(d) for d in devices or () if str(d).strip()]
    if form == "cdi":
        return DeviceRequest(driver="cdi", device_ids=[f"nvidia.com/gpu={d}" for d in devices or ["all"]])
    if devices:
        return DeviceRequest(device_ids=devices, capabilities=[["gpu"]])
    return DeviceRequest(count=-1, capabilities=[["gpu"]])


def config_hash(svc: ServicePlan, image_id: str) -> str:
    """Same image and configuration: a persistent container may be reused as it is."""
    blob = json.dumps({"image": image_id, "cmd": svc.command, "env": svc.environment,
                       "port": svc.port, "mounts": [m.__dict__ for m in svc.mounts], "gpu": svc.gpu,
                       "gpu_devices": svc.gpu_devices, "gpu_request": svc.gpu_request},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class ContainerHandle:
    def __init__(self, svc: ServicePlan, container, log: Path, sink: LineSink | None, reused: bool):
        self.service = svc
        self.name = svc.name
        self.url = svc.url
        self.persistent = svc.persistent
        self.container = container
        self.ident = f"container {container.short_id}" + (" reused" if reused else "")
        self.proven = reused  # a persistent container is kept warm only once it has been healthy
        self.lines: deque[str] = deque(maxlen=200)
        self.log = log
        self.reader = None
        if sink is not None:
            self.reader = threading.Thread(target=self._pump, args=(sink,), daemon=True)
            self.reader.start()

    def _pump(self, sink: LineSink) -> None:
        """Follow the engine's log to its end, whatever happens to the log file or the terminal."""
        # heavy: docker loads only when a container runs (not for a native run)
        from docker.errors import DockerException
        out = LogFile(self.log, lambda text: deliver(sink, "duplex", f"{self.name}: {text}"))
        redact = secret_masker(self.service)
        buf, broken_sink = b"", False
        try:
            for chunk in self.container.logs(stream=True, follow=True):
                buf += chunk
                while b"\n" in buf:
                    raw, buf = buf.split(b"\n", 1)
                    line = redact(raw.decode("utf-8", errors="replace"))
                    self.lines.append(line)
                    out.write(line)
                    if not broken_sink:
                        broken_sink = not deliver(sink, self.name, line)
        except (DockerException, OSError, ValueError):
            pass  # the container went away; its exit is reported by exit_code()
        finally:
            out.close()

    def exit_code(self) -> int | None:
        from docker.errors import NotFound  # heavy: docker loads only when a container runs (not for a native run)
        try:
            self.container.reload()
        except NotFound:
            return -1
        state = self.container.attrs.get("State")
        state = state if isinstance(state, dict) else {}  # engines differ: read every key as optional
        if state.get("Status") in ("created", "running", "restarting") or state.get("Running"):
            return None
        code = state.get("ExitCode")
        return code if isinstance(code, int) else -1

    def healthy(self) -> None:
        """The supervisor saw it healthy: a persistent container is worth keeping warm now."""
        self.proven = True

    def terminate(self) -> None:
        """SIGTERM now (the supervisor signals a whole stop wave first, then waits for each)."""
        # heavy: docker loads only when a container runs (not for a native run)
        from docker.errors import DockerException
        if self.persistent and self.proven:
            return
        try:
            self.container.kill(signal="SIGTERM")
            self.signalled = True
        except DockerException:
            pass  # gone already, or not running: stop() removes what is left

    def stop(self, grace: float, force: bool = False) -> None:
        from docker.errors import NotFound  # heavy: docker loads only when a container runs (not for a native run)
        if self.persistent and self.proven and not force:
            return  # kept warm for the next run; `inv stop --all` removes it
        # (one that never became healthy is a failed start: it leaves nothing behind)
        try:
            if getattr(self, "signalled", False):  # wait out the grace period, then force it
                try:
                    self.container.wait(timeout=grace)
                except Exception:  # noqa: BLE001 - the wait timed out: removing it kills it
                    pass
            else:
                self.container.stop(timeout=int(grace))
            self.container.remove(force=True)
        except NotFound:
            pass

    def tail(self, lines: int) -> list[str]:
        if self.lines:
            return list(self.lines)[-lines:]
        try:
            return self.container.logs(tail=lines).decode("utf-8", errors="replace").splitlines()
        except Exception:  # noqa: BLE001 - best effort for a crash report
            return []

    def record(self) -> dict:
        return {"name": self.name, "mode": "container", "container": self.container.id,
                "url": self.url, "persistent": self.persistent}


class Pull:
    """Progress of a base image pulled by a build's FROM: one line per layer as it starts and
    completes (with its size), then the total and the time, so the pull shows apart from the build."""

    def __init__(self, service: str, progress: Callable[[str], None], clock=time.monotonic):
        self.service, self.progress, self.clock = service, progress, clock
        self.started: float | None = None
        self.seconds: float | None = None
        self.sizes: dict[str, int] = {}
        self.seen: set[tuple[str, str]] = set()

    def update(self, chunk: dict) -> None:
        if self.started is None:
            self.started = self.clock()
        status, layer = chunk.get("status", ""), chunk.get("id", "")
        total = (chunk.get("progressDetail") or {}).get("total")
        if status == "Downloading" and total:
            self.sizes[layer] = total
        if status in ("Downloading", "Extracting", "Waiting", "Verifying Checksum") or (status, layer) in self.seen:
            if status == "Downloading" and (status, layer) not in self.seen and total:
                self.seen.add((status, layer))
                self.progress(f"{self.service}: pull {layer}: downloading {total / 1e6:.1f} MB")
            return
        self.seen.add((status, layer))
        self.progress(f"{self.service}: pull {f'{layer}: ' if layer else ''}{status}")

    def done(self) -> None:
        if self.started is not None and self.seconds is None:
            self.seconds = self.clock() - self.started
            size = sum(self.sizes.values())
            self.progress(f"{self.service}: base image pulled in {self.seconds:.1f}s"
                          + (f" ({size / 1e6:.1f} MB)" if size else ""))


class ContainerRunner:
    def __init__(self, root: Path, stack: str, *, client=None, detach: bool = False,
                 build_network: str | None = None):
        self.root = root
        self.stack = stack
        self.network = f"duplex-{stack}"
        self.detach = detach
        self.build_network = build_network or os.environ.get("DUPLEX_BUILD_NETWORK")
        self._client = client
        self.image_ids: dict[str, str] = {}
        self.pull_seconds: dict[str, float] = {}  # base images pulled by a build: how long it took

    @property
    def client(self):
        if self._client is None:
            self._client = connect()
        return self._client

    def prepare(self, services: list[ServicePlan], progress: Callable[[str], None]) -> None:
        from docker.errors import ImageNotFound  # heavy: docker loads only when a container runs (not for a native run)
        client = self.client
        for svc in services:  # before any build: never touch another checkout's containers
            self._ours_or_absent(svc)
        if not client.networks.list(names=[self.network]):
            client.networks.create(self.network, labels={f"{LABEL}.stack": self.stack})
        built: dict[str, str] = {}  # image -> id: a service's replicas share one build (or pull)
        for svc in services:
            for mount in svc.mounts:  # created by us, as the user: a root-owned cache is a classic failure
                Path(mount.source).mkdir(parents=True, exist_ok=True)
            if svc.image in built:
                self.image_ids[svc.name] = built[svc.image]
                continue
            if svc.dockerfile:
                base = svc.build_args.get("BASE_IMAGE")
                try:
                    client.images.get(base)
                except ImageNotFound:  # the build's FROM pulls it (preflight asked the registry first)
                    progress(f"{svc.name}: base image {base} is not here: the build pulls it")
                self.image_ids[svc.name] = self.build(svc, progress)
            else:
                self.image_ids[svc.name] = self.pull(svc, progress)
            if svc.image:
                built[svc.image] = self.image_ids[svc.name]

    def build(self, svc: ServicePlan, progress: Callable[[str], None]) -> str:
        stage_build_ca(self.root)
        build_args = {**svc.build_args, **stage_wheels(self.root, svc)}
        progress(f"{svc.name}: building {svc.image} from {svc.dockerfile}")
        log: list[str] = []
        image_id = None
        pull = Pull(svc.name, progress)
        for chunk in self.client.api.build(
                path=str(self.root), dockerfile=svc.dockerfile, tag=svc.image, buildargs=build_args,
                rm=True, forcerm=True, decode=True, network_mode=self.build_network,
                labels={f"{LABEL}.stack": self.stack, f"{LABEL}.service": svc.name}):
            if "status" in chunk:  # the FROM image being pulled: layer by layer, sizes shown
                pull.update(chunk)
            if "stream" in chunk:
                for line in chunk["stream"].splitlines():
                    if line.strip():
                        log.append(line)
                        if line.startswith("Step "):
                            pull.done()
                            progress(f"{svc.name}: {line}")
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
            if "error" in chunk:
                step = next((l for l in reversed(log) if l.startswith("Step ")), "(before the first step)")
                tail = "\n".join("    " + l for l in log[-12:])
                base = build_args.get("BASE_IMAGE", "")
                if " FROM " in step and base:
                    raise RunError(f"{svc.name}: cannot pull the base image {base}: {chunk['error'].strip()}",
                                   fix="`inv preflight` says why; `inv lock --images` if its digest is gone; "
                                       "air-gapped: `sudo bash scripts/base-image.sh` and "
                                       "DUPLEX_BASE_IMAGE=duplex/python:3.11-bookworm")
                lock = _missing_lock(step, chunk["error"])
                if lock:  # the torch build's lock was never made: not the Dockerfile's fault
                    variant = lock.rsplit(".", 2)[-2]
                    raise RunError(f"{svc.name}: the image installs torch {variant} from {lock}, which does not "
                                   "exist (nothing of it was built)",
                                   fix=f"`inv lock --env {svc.env or 'ENV'} --torch {variant}` where "
                                       "download.pytorch.org is reachable, and commit the lock; or choose a build "
                                       "that has one (docs/publish.md, 'The torch build of GPU images')")
                raise RunError(f"{svc.name}: image build failed at {step}: {chunk['error'].strip()}\n{tail}",
                               fix=f"fix {svc.dockerfile} or what it copies, then run again")
        if pull.seconds is not None:
            self.pull_seconds[svc.name] = pull.seconds
        return image_id or self.client.images.get(svc.image).id

    def pull(self, svc: ServicePlan, progress: Callable[[str], None]) -> str:
        # heavy: docker loads only when a container runs (not for a native run)
        from docker.errors import DockerException, ImageNotFound
        try:
            return self.client.images.get(svc.image).id
        except ImageNotFound:
            pass
        progress(f"{svc.name}: pulling {svc.image}")
        try:
            return self.client.images.pull(svc.image).id
        except DockerException as exc:
            raise RunError(f"{svc.name}: cannot pull {svc.image} ({short_error(exc)})",
                           fix="check the image name and your registry login, or give a `dockerfile`") from exc

    def start(self, svc: ServicePlan, sink: LineSink | None) -> ContainerHandle:
        # heavy: docker loads only when a container runs (not for a native run)
        from docker.errors import APIError, NotFound
        client = self.client
        digest = config_hash(svc, self.image_ids.get(svc.name, ""))
        log = Layout(self.root).log(svc.name)
        old = self._ours_or_absent(svc)
        if old is not None:
            same = old.labels.get(CONFIG_LABEL) == digest and old.status == "running"
            if svc.persistent and same:
                return ContainerHandle(svc, old, log, None if self.detach else sink, reused=True)
            old.remove(force=True)
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("")
        except OSError:
            pass  # a full disk: the handle's log pump says so once and the service still runs
        kwargs = run_kwargs(svc, self.stack, self.network, digest)
        _readable_certs(svc, kwargs)
        kwargs.pop("detach", None)
        container = None
        try:  # create, then start: a start the engine refuses (a busy port) must leave nothing behind
            container = client.containers.create(**kwargs)
            container.start()
        except APIError as exc:
            if container is not None:
                try:
                    container.remove(force=True)
                except (APIError, NotFound):
                    pass
            raise RunError(f"{svc.name}: the engine refused to start the container ({short_error(exc)})",
                           fix=_run_fix(exc, svc)) from exc
        return ContainerHandle(svc, container, log, None if self.detach else sink, reused=False)

    def cleanup(self) -> None:
        """After the run's containers are gone: its network, unless a persistent one still uses it."""
        if self._client is not None:
            remove_idle_networks({self.network}, self._client)

    def _ours_or_absent(self, svc: ServicePlan):
        """The container named for this service when it is this checkout's (or None when there is
        none); a RunError when another checkout of a stack with the same name owns it."""
        from docker.errors import NotFound  # heavy: docker loads only when a container runs (not for a native run)
        name = container_name(self.stack, svc.name)
        try:
            found = self.client.containers.get(name)
        except NotFound:
            return None
        owner = found.labels.get(f"{LABEL}.root")
        if owner != str(self.root):
            there = bool(owner) and Path(owner).is_dir()  # a deleted checkout can no longer stop its own
            where = (f"the checkout at {owner}" if there else f"a checkout that no longer exists ({owner})"
                     if owner else "something other than duplex")
            raise RunError(f"{svc.name}: the container {name} belongs to {where}, not to this one "
                           f"({self.root}); both use the stack name {self.stack!r}",
                           fix=(f"stop it there (`cd {owner} && inv stop --all`), or " if there else "")
                               + f"remove it (`docker rm -f {name}`), or give this checkout its own "
                                 "[stack] name in stack.toml (then containers, network and images are apart)")
        return found


def _missing_lock(step: str, error: str) -> str | None:
    """The env lock a failed COPY step wanted (`requirements.cu126.lock`), as the engine named it."""
    if "COPY" not in step and "COPY" not in error:
        return None
    found = re.search(r"(\S*requirements\.[\w-]+\.lock)\b", error)
    return found.group(1).split("stat ", 1)[-1] if found else None


def _readable_certs(svc: ServicePlan, kwargs: dict) -> None:
    """tls: mount a copy of the cert folder the container's user can read (see container_certs.for_container)."""
    for mount in svc.mounts:
        if mount.target == CERTS_IN_CONTAINER:
            uid, gid = int(svc.build_args.get("UID", 1000)), int(svc.build_args.get("GID", 1000))
            staged = str(for_container(mount.source, uid, gid))
            kwargs["volumes"][staged] = kwargs["volumes"].pop(mount.source)


def _run_fix(exc, svc: ServicePlan) -> str:
    text = str(exc)
    if "port is already allocated" in text or "address already in use" in text:
        return f"free port {svc.port} or set {port_variable(svc.service)} to another"
    if "could not select device driver" in text:
        return "install the NVIDIA Container Toolkit, or run this service on the CPU (gpu = \"optional\")"
    return "see the engine's message above"
