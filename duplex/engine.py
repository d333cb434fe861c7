"""The Docker engine: a client that answered, and what the engine offers (GPU paths, images).

Facts are gathered once (`probe_docker`, one short `docker info` and image lookups) and handed on
as plain data: preflight's docker checks judge them, `inv run` decides from them whether containers
may request a GPU. The docker SDK is imported only when the engine is asked.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import EngineError


def connect(factory: Callable | None = None):
    """A docker client that answered a ping, or an EngineError that says how to get one."""
    import docker  # lazy: the docker SDK is only loaded for container runs
    from docker.errors import DockerException
    try:
        client = (factory or docker.from_env)()
        client.ping()
        return client
    except DockerException as exc:
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise EngineError(f"the Docker engine at {where} is not answering ({short_error(exc)})",
                          fix="start Docker (`sudo systemctl start docker`, or `bash scripts/docker-engine.sh`), "
                              "set DOCKER_HOST, or run natively with `inv run --native`") from exc


@dataclass(frozen=True)
class DockerFacts:
    reachable: bool
    host: str
    error: str | None = None
    fix: str | None = None
    version: str | None = None
    runtimes: tuple[str, ...] = ()
    gpu_hook: bool = False  # nvidia-container-runtime-hook next to a local engine: `--gpus` works
    cdi_nvidia: bool = False  # a CDI spec that names nvidia.com/gpu, and CDI is on in the engine
    cdi_devices: tuple[str, ...] = ()  # the devices those specs define: "nvidia.com/gpu=0", "nvidia.com/gpu=all"
    images: dict[str, bool] = field(default_factory=dict)  # image -> present
    image_users: dict[str, str] = field(default_factory=dict)  # present image -> its USER ("" = root)
    own: dict[str, str] = field(default_factory=dict)  # service -> running container of this stack
    mirrors: tuple[str, ...] = ()  # the engine's Docker Hub mirrors (--registry-mirror), where it pulls from
    platform: str = "linux/amd64"  # what it pulls: the manifest whose size preflight shows
    repo_digests: dict[str, tuple[str, ...]] = field(default_factory=dict)  # present image -> name@digest it came from


def _cdi(dirs) -> bool:
    return bool(cdi_devices(dirs))


def cdi_devices(dirs) -> list[str]:
    """The nvidia.com/gpu devices the CDI spec files (YAML or JSON) in these folders define."""
    import yaml  # heavy: only GPU hosts with CDI spec files read them
    found = []
    for folder in dirs:
        for spec in sorted(Path(folder).glob("*")) if Path(folder).is_dir() else ():
            try:
                doc = yaml.safe_load(spec.read_text(errors="replace")[:2_000_000])
            except (OSError, yaml.YAMLError):
                continue
            if isinstance(doc, dict) and doc.get("kind") == "nvidia.com/gpu" and isinstance(doc.get("devices"), list):
                # YAML reads `name: 0` as a number: a name is text or a whole number, never null
                found += [f"nvidia.com/gpu={d['name']}" for d in doc["devices"] if isinstance(d, dict)
                          and isinstance(d.get("name"), (str, int)) and not isinstance(d["name"], bool)
                          and str(d["name"]).strip()]
    return found


def probe_docker(environ: dict[str, str], images: list[str], stack: str, timeout: float = 3.0,
                 root: str | None = None) -> DockerFacts:
    """Ping the engine DOCKER_HOST names (or the default socket) with a short timeout; read what checks need.
    `root`: only this checkout's containers count as the stack's own (another checkout of the same
    stack name is not ours to reuse)."""
    host = environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"

    def factory():
        import docker  # heavy: only when checks ask the engine
        return docker.from_env(timeout=timeout, environment=environ)
    try:
        client = connect(factory)
    except EngineError as err:
        return DockerFacts(False, host, str(err), err.fix)
    try:
        from docker.errors import DockerException, ImageNotFound  # heavy: only when checks ask the engine
        info = client.info()
        present, users, digests = {}, {}, {}
        for image in images:
            try:
                attrs = client.images.get(image).attrs
                users[image] = (attrs.get("Config") or {}).get("User") or ""
                digests[image] = _names(attrs.get("RepoDigests"))
                present[image] = True
            except ImageNotFound:
                present[image] = False
        labels = [f"dev.duplex.stack={stack}"] + ([f"dev.duplex.root={root}"] if root else [])
        own = {c.labels.get("dev.duplex.service"): c.name for c in
               client.containers.list(filters={"label": labels, "status": "running"})}
    except DockerException as exc:
        return DockerFacts(False, host, f"the engine at {host} answered a ping but then failed: {exc}",
                           "restart the Docker engine")
    finally:
        client.close()
    return dataclasses.replace(facts_from_info(host, info, images=present, own={k: v for k, v in own.items() if k},
                                               image_users=users), repo_digests=digests)


def facts_from_info(host: str, info: dict, *, images: dict[str, bool] | None = None,
                    own: dict[str, str] | None = None, which=shutil.which, cdi=_cdi,
                    image_users: dict[str, str] | None = None) -> DockerFacts:
    """What `docker info` says about GPUs, plus what lies beside a local engine (the hook, CDI specs).

    The engine lists CDISpecDirs only while CDI is enabled (an empty list means it is off), so
    spec files on disk count only then; the hook and the files are only ours to see for a local engine.
    Engines differ (Docker, Debian's docker.io, Podman's compat API, versions): every key may be
    missing, null, or of another shape, and none of that is an error here."""
    info = info if isinstance(info, dict) else {}
    local = host.startswith("unix://")
    cdi_dirs = _names(info.get("CDISpecDirs"))
    devices = tuple(cdi_devices(cdi_dirs)) if local and cdi_dirs and cdi is _cdi else ()
    machine = _text(info.get("Architecture"))
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine or "amd64")
    registry = info.get("RegistryConfig") if isinstance(info.get("RegistryConfig"), dict) else {}
    return DockerFacts(True, host, version=_text(info.get("ServerVersion")) or None,
                       runtimes=_names(info.get("Runtimes")), mirrors=_names(registry.get("Mirrors")),
                       platform=f"{_text(info.get('OSType')) or 'linux'}/{arch}",
                       gpu_hook=local and bool(which("nvidia-container-runtime-hook")),
                       cdi_nvidia=local and bool(cdi_dirs) and cdi(cdi_dirs), cdi_devices=devices,
                       images=dict(images or {}),
                       own=dict(own or {}), image_users=dict(image_users or {}))


def _text(value) -> str:
    return value.strip() if isinstance(value, str) else ""


def _names(value) -> tuple[str, ...]:
    """A list of names as engines give it: a dict's keys (`Runtimes`), a list, one string, or null."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (dict, list, tuple)):
        return ()
    return tuple(v for v in value if isinstance(v, str) and v)


def gpu_paths(facts: DockerFacts | None) -> list[str]:
    """The ways this engine can hand a GPU to a container; empty when it cannot."""
    if facts is None or not facts.reachable:
        return []
    return [way for way, ok in (("nvidia runtime", "nvidia" in facts.runtimes),
                                ("nvidia-container-runtime-hook", facts.gpu_hook),
                                ("CDI spec for nvidia.com/gpu", facts.cdi_nvidia)) if ok]


def gpu_request(facts: DockerFacts | None) -> str | None:
    """The form of GPU request this engine takes: "nvidia" (its NVIDIA device driver, registered when
    NVIDIA's runtime hook is there: `--gpus`), "cdi" (CDI specs only: `--device nvidia.com/gpu=0`),
    or None when it cannot hand out a GPU at all."""
    if facts is None or not facts.reachable:
        return None
    if "nvidia" in facts.runtimes or facts.gpu_hook:
        return "nvidia"
    if facts.cdi_nvidia:
        return "cdi"
    return None


BRIDGE_NAME = "com.docker.network.bridge.name"  # the default bridge's interface on the host (docker0)


def host_gateway(bridge: dict | None, addresses: dict[str, list[str]]) -> tuple[str | None, str]:
    """Where host.docker.internal ("host-gateway") leads from a container: (address, how it was
    found), or (None, why not). Pure: `bridge` is `docker network inspect bridge` as recorded (any
    shape), `addresses` this host's IPv4 addresses by interface (`local_addresses()`).

    Engines differ: most give the bridge's IPAM `Gateway`; Debian's docker.io 20.10, started fresh,
    gives only `{"Subnet": "172.17.0.0/16"}`. Then the bridge interface's own address is the
    gateway (the engine's host-gateway unless its --host-gateway-ip says otherwise), else an address
    of this host inside the subnet, else the subnet's first host (what the engine gives its bridge)."""
    bridge = bridge if isinstance(bridge, dict) else {}
    ipam = bridge.get("IPAM") if isinstance(bridge.get("IPAM"), dict) else {}
    configs = ipam.get("Config") if isinstance(ipam.get("Config"), list) else []
    subnets = []
    for config in (c for c in configs if isinstance(c, dict)):
        gateway = _ipv4(config.get("Gateway"))
        if gateway:
            return str(gateway.ip), "the bridge network's gateway"
        try:
            net = ipaddress.ip_network(_text(config.get("Subnet")), strict=False)
        except ValueError:
            continue
        if net.version == 4:
            subnets.append(net)
    options = bridge.get("Options") if isinstance(bridge.get("Options"), dict) else {}
    name = _text(options.get(BRIDGE_NAME)) or "docker0"
    for address in addresses.get(name) or ():
        if not subnets or any(ipaddress.ip_address(address) in net for net in subnets):
            return address, f"the address of {name}, the bridge's interface"
    for interface, found in sorted(addresses.items()):
        inside = [a for a in found if any(ipaddress.ip_address(a) in net for net in subnets)]
        if inside:
            return inside[0], f"this host's address on {interface}, inside the bridge's subnet"
    if subnets and subnets[0].num_addresses > 2:
        return str(next(subnets[0].hosts())), "the bridge subnet's first host"
    return None, ("the engine has no default bridge network" if not bridge else
                  "its bridge network names no gateway or subnet, and this host has no bridge interface")


def _ipv4(value):
    try:
        found = ipaddress.ip_interface(_text(value))  # some engines add the prefix: 172.17.0.1/16
    except ValueError:
        return None
    return found if found.version == 4 else None


def local_addresses() -> dict[str, list[str]]:
    """This host's IPv4 addresses by interface (psutil: a dependency already, for the dashboard)."""
    import psutil  # lazy: `inv config` imports this module and never needs psutil (2-3% of its start-up)
    try:
        return {name: [a.address for a in found if a.family == socket.AF_INET]
                for name, found in psutil.net_if_addrs().items()}
    except OSError:
        return {}


def probe_host_gateway(environ: dict[str, str] | None = None, timeout: float = 3.0) -> tuple[str | None, str]:
    """`host_gateway` of the engine DOCKER_HOST names, read now; (None, why) when there is no
    local engine to ask (a remote engine's containers reach its host, not this one)."""
    environ = dict(os.environ if environ is None else environ)
    host = environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if not host.startswith("unix://"):
        return None, f"the engine at {host} is on another host"
    try:
        import docker  # heavy: only container runs ask the engine
        from docker.errors import DockerException, NotFound
        client = connect(lambda: docker.from_env(timeout=timeout, environment=environ))
    except EngineError as exc:
        return None, f"the engine is not answering ({exc})"
    try:
        bridge = client.networks.get("bridge").attrs
    except NotFound:
        bridge = None
    except (DockerException, OSError) as exc:
        return None, f"the engine did not describe its bridge network ({short_error(exc)})"
    finally:
        client.close()
    return host_gateway(bridge, local_addresses())


def wanted_images(plan) -> list[str]:
    """The base image of each Dockerfile build, or the prebuilt image, of a plan's container
    services, in start order."""
    out = []
    for svc in (plan.services[name] for name in plan.start_order):
        if svc.mode != "container":
            continue
        image = svc.build_args.get("BASE_IMAGE") if svc.dockerfile else svc.image
        if image and image not in out:
            out.append(image)
    return out


def short_error(exc: Exception) -> str:
    text = str(getattr(exc, "explanation", None) or exc)
    return text.splitlines()[0][:300] if text else type(exc).__name__
