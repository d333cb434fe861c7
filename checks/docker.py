"""docker: the engine answers, it can hand GPUs to containers when one needs them, and the images exist.

The facts come from duplex.engine (probed once, before the checks run); this module only judges them."""

from __future__ import annotations

from duplex.engine import DockerFacts, gpu_paths
from duplex.envs.lock import lock_path

from . import Context, Result, fail, passed, skip, warn

NO_DRIVER = 'could not select device driver "" with capabilities: [[gpu]]'
TOOLKIT_FIX = ("install the NVIDIA Container Toolkit, then `sudo nvidia-ctk runtime configure --runtime=docker && "
               "sudo systemctl restart docker` (or a CDI spec: `sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`)")


def check(ctx: Context, facts: DockerFacts | None, host_gpus: int,
          registry: dict[str, dict] | None = None) -> list[Result]:
    """`registry`: what duplex.images.registry.probe_registry said of the base images that are not here."""
    containers = ctx.services("container")
    if not containers:
        return [skip("docker", "no service runs in a container in this mode",
                     "nothing to do; plain `inv preflight` checks container mode")]
    if facts is None or not facts.reachable:
        return [fail("docker.engine", (facts.error if facts else "not probed"),
                     (facts.fix if facts and facts.fix else "start Docker, or run natively with --native"))]
    out = [passed("docker.engine", f"Docker {facts.version} answers at {facts.host}")]
    for svc in containers:
        if svc.gpu_policy == "none":
            continue
        name = f"docker.gpu.{svc.name}"
        how = gpu_paths(facts)
        if how and svc.gpu:
            out.append(_request(name, svc, facts, how))
        elif how:
            out.append(passed(name, f"the engine can hand GPUs to {svc.name} ({', '.join(how)})"))
        elif svc.gpu_policy == "optional" and not host_gpus:
            out.append(skip(name, f"no GPU on this host: {svc.name}'s container runs on the CPU",
                            "nothing to do"))
        else:
            detail = (f"the engine has no NVIDIA runtime, hook or CDI spec: starting {svc.name} with a GPU fails "
                      f"with `{NO_DRIVER}`")
            out.append(fail(name, detail, TOOLKIT_FIX) if svc.gpu_policy == "required"
                       else warn(name, detail + "; it runs on the CPU instead", TOOLKIT_FIX))
    for svc in containers:
        out.append(_image(ctx, svc, facts, registry or {}))
    return out


def _request(name: str, svc, facts: DockerFacts, how: list[str]) -> Result:
    """What the runner will send (duplex.run.containers.gpu_device_request) against what the engine has."""
    devices = ", ".join(svc.gpu_devices) if svc.gpu_devices else "every GPU"
    if svc.gpu_request == "cdi":
        wanted = [f"nvidia.com/gpu={d}" for d in svc.gpu_devices or ["all"]]
        missing = [w for w in wanted if w not in facts.cdi_devices]
        if missing:
            return fail(name, f"{svc.name} will be started with the CDI device {', '.join(missing)}, which the "
                              f"engine's CDI specs do not define (they have: {', '.join(facts.cdi_devices) or 'none'})",
                        "regenerate the spec after a GPU or MIG change: `sudo nvidia-ctk cdi generate "
                        "--output=/etc/cdi/nvidia.yaml` (then `nvidia-ctk cdi list` shows the names)")
        return passed(name, f"{svc.name} gets {', '.join(wanted)} through CDI (the engine has no NVIDIA runtime hook)")
    if "nvidia runtime" not in how and "nvidia-container-runtime-hook" not in how:
        return fail(name, f"{svc.name} would request a GPU from the NVIDIA device driver, which this engine lacks "
                          f"(it has: {', '.join(how)}): `{NO_DRIVER}`", TOOLKIT_FIX)
    return passed(name, f"the engine can hand {svc.name} its GPU ({devices}) through {', '.join(how)}")


def check_torch_builds(ctx: Context) -> list[Result]:
    """A GPU-required service must not be built with CPU torch: it would pass every other check and
    crash at start (or run a 7B model on the CPU). Says why no CUDA build was chosen."""
    out = []
    for svc in ctx.services("container"):
        if not svc.dockerfile or svc.gpu_policy != "required" or svc.build_args.get("TORCH") != "cpu":
            continue
        note = svc.torch_note or ""
        why, _, fix = note.partition(" (fix: ")
        spec = ctx.stack.envs.get(svc.env) if svc.env else None
        if getattr(spec, "torch", "auto") == "cpu":
            why, fix = f"env {svc.env!r} has torch = \"cpu\"", f"set envs.{svc.env}.torch = \"auto\" in stack.toml)"
        elif not why:
            why, fix = "no NVIDIA driver or GPU was found", "see gpu.driver)"
        out.append(fail(f"docker.torch.{svc.name}", f"{svc.name} needs a GPU (gpu = \"required\") but its image "
                                                    f"would install CPU torch: {why}", fix.rstrip(")") or "see gpu.driver"))
    return out


def _image(ctx: Context, svc, facts: DockerFacts, registry: dict[str, dict]) -> Result:
    name = f"docker.image.{svc.name}"
    if svc.dockerfile:
        base = svc.build_args.get("BASE_IMAGE")
        if facts.images.get(base):
            return passed(name, f"base image {base} is present; {svc.dockerfile} builds from it")
        answer = registry.get(base)
        if answer and "digest" in answer:  # the engine pulls it on the first build
            size = f" ({answer['size'] / 1e6:.0f} MB to pull)" if answer.get("size") else ""
            pin = "" if "@" in base else "; not pinned yet: the first run records its digest in images.lock"
            return passed(name, f"base image {base} is not here yet: the registry has it, the first build "
                                f"pulls it{size}{pin}")
        if answer:  # "digest": one line and the update command; else both ways out
            return fail(name, answer["error"], answer["fix"])
        return fail(name, f"base image {base} is not on this machine and no registry was asked",
                    f"`docker pull {base}`; air-gapped: `sudo bash scripts/base-image.sh` and "
                    "DUPLEX_BASE_IMAGE=duplex/python:3.11-bookworm")
    if facts.images.get(svc.image):
        user = facts.image_users.get(svc.image, "")
        if user.split(":")[0] in ("", "root", "0"):  # duplex's own images run as the host's UID; a pulled one as its USER
            return warn(name, f"image {svc.image} is present but runs as root (its USER is {user or 'unset'})",
                        f"give {svc.name} a `dockerfile` that starts FROM {svc.image} and ends with `USER 1000` "
                        "(or the image's own unprivileged user), so a compromised service is not root")
        return passed(name, f"image {svc.image} is present (runs as user {user})")
    return warn(name, f"image {svc.image} is not on this machine: the run pulls it from its registry",
                f"pull it now (`docker pull {svc.image}`) so the first start is not a long download")


def check_image_locks(ctx: Context) -> list[Result]:
    """Each image built with a torch variant needs that variant's lock: the Dockerfile COPYs it."""
    out = []
    for svc in ctx.services("container"):
        variant = svc.build_args.get("TORCH")
        spec = ctx.stack.envs.get(svc.env) if svc.env else None
        if not svc.dockerfile or not variant or spec is None:
            continue
        lock = lock_path(ctx.root, svc.env, spec, variant)
        rel = lock.relative_to(ctx.root) if lock.is_relative_to(ctx.root) else lock
        name = f"docker.lock.{svc.name}"
        if lock.is_file():
            out.append(passed(name, f"{svc.name}'s image installs torch {variant} from {rel}"))
            continue
        have = sorted(p.name for p in lock.parent.glob("*.lock"))
        out.append(fail(name, f"{svc.name}'s image needs torch {variant} (what fits this driver) but "
                              f"{rel} does not exist (have: {', '.join(have) or 'none'})",
                        f"`inv lock --env {svc.env} --torch {variant}` where download.pytorch.org is "
                        f"reachable, and commit the lock; or set torch = \"cuXYZ\" on env {svc.env!r} "
                        "to a variant that has a lock and that this driver runs"))
    return out
