"""The torch build a published image gets: there is no GPU to probe where the stack is published, so
the user's word (`--torch`, `[stack] publish_torch`), else the locked build that runs on the widest
range of datacenter GPUs and drivers (duplex.envs.torch_builds is the table, torch_choice reads the locks)."""

from __future__ import annotations

from ..envs.torch_builds import RELEASES, allows, offered, release_of, widest
from ..envs.torch_choice import torch_wanted
from ..stack import Stack
from .common import PublishError


def publish_torch(stack: Stack, torch: str | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """(env -> variant, env -> why) for the published images of `torch = "auto"` envs. Publishing has
    no GPU to probe: the user's variant (`--torch`, else [stack] publish_torch), else the build of the
    release the env will install that runs on the widest range of current datacenter GPUs and drivers.
    `cpu` for an env a gpu = "required" service builds from is refused."""
    chosen = torch or stack.stack.publish_torch
    variants, notes = {}, {}
    for name, spec in stack.envs.items():
        if spec.torch != "auto":
            continue
        if chosen == "cpu":
            needy = [s for s, svc in stack.services.items() if svc.env == name and svc.gpu == "required"]
            if needy:
                raise PublishError(f"torch cpu for env {name!r}, which {', '.join(needy)} (gpu = \"required\") "
                                   "is built from: the image would start on a GPU node with CPU torch",
                                   fix="publish with a CUDA build (`inv publish --torch cu126`), or leave the "
                                       "service out with --services")
        if chosen:
            variants[name], notes[name] = chosen, ("--torch " if torch else "[stack] publish_torch = ") + chosen
            continue
        wanted = torch_wanted(stack.root, name, spec)
        # An image installs its build's lock (the Dockerfile COPYs it): only a locked build is
        # chosen, the widest of the newest release a lock pins. None locked: the widest build, and
        # the missing lock is a warning (the files) or a refusal before anything is built (--push).
        locked = {v: release_of(ver) for v, ver in wanted.locked.items() if v in offered(ver)}
        if locked:
            release = max(locked.values())
            variants[name], why = widest(f"{release[0]}.{release[1]}",
                                         among=tuple(v for v, r in locked.items() if r == release))
            wider, _ = widest(f"{release[0]}.{release[1]}")
            notes[name] = f"the locked build that runs on the widest range of datacenter GPUs and drivers: {why}"
            if wider != variants[name]:
                notes[name] += (f" ({wider} would cover more GPU and driver pairs, once "
                                f"envs/{name}/requirements.{wider}.lock exists: "
                                f"`inv lock --env {name} --torch {wider}`)")
            continue
        release = wanted.pin or next((f"{r[0]}.{r[1]}" for r in sorted(RELEASES, reverse=True)
                                      if allows(wanted.allowed, r)), None)
        variants[name], why = widest(release if release_of(release) in RELEASES else None)
        notes[name] = f"the published build that runs on the widest range of datacenter GPUs and drivers: {why}"
    return variants, notes
