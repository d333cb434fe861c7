"""Pinning base images: images.lock (duplex.images.lock) filled from what the engine has or what a
registry says (duplex.images.registry); used by `inv lock --images`, the first container run and publish."""

from __future__ import annotations

import os
from pathlib import Path

from .engine import probe_docker
from .images.lock import LockedImage, lock_path, read_images, unpinned, write_images
from .images.references import is_digest
from .images.registry import RegistryError, parse, resolve
from .machine import Machine
from .plan import base_image


def pin_bases(root: Path | str, references: list[str], facts=None, *, update: bool = False,
              strict: bool = True, say=lambda _line: None) -> dict[str, LockedImage]:
    """Record the digest of each base image in images.lock: those not pinned yet, or all (`update`,
    `inv lock --images`). An image the engine already has from a registry is pinned to the digest
    it has (no network); an image built or imported here (no registry digest: the air-gapped
    base) has nothing to pin. Otherwise the registry is asked (the engine's mirrors first).
    `strict`: a registry error is raised (`inv lock`); else it is left for preflight to report.
    Returns what was written."""
    locked = read_images(root)
    mirrors = getattr(facts, "mirrors", ())
    platform = getattr(facts, "platform", "linux/amd64")
    here = getattr(facts, "repo_digests", {}) or {}
    changed: dict[str, LockedImage] = {}
    for reference in dict.fromkeys(unpinned(r) for r in references if "@" not in r or update):
        if reference in locked and not update:
            continue
        if reference in here and not here[reference] and not update:
            say(f"{reference}: built here (no registry digest): nothing to pin")
            continue
        have = engine_digests(reference, here.get(reference))
        if have and not update:
            changed[reference] = LockedImage(reference, have[0], locked.get(reference, LockedImage("", "")).size)
        else:
            try:
                found = resolve(reference, mirrors=mirrors, platform=platform)
            except RegistryError:
                if reference in here and not here[reference]:
                    say(f"{reference}: built here (no registry digest): nothing to pin")
                    continue
                if strict:
                    raise
                continue  # not dropped: preflight's image check says it, in one line with its fix
            changed[reference] = LockedImage(reference, found.digest, found.size)
        old = locked.get(reference)
        if old is None or old.digest != changed[reference].digest:
            say(f"{reference}: pinned to {changed[reference].digest}"
                + (f" (was {old.digest[:19]}…)" if old else ""))
    if any(locked.get(r) != image for r, image in changed.items()):
        write_images(root, {**locked, **changed})
    return changed


def engine_digests(reference: str, repo_digests) -> list[str]:
    """The digests the engine says `reference` came from (its RepoDigests, `name@sha256:...`), of
    the same repository and well formed: engines differ, and what they say goes into images.lock."""
    if not isinstance(repo_digests, (list, tuple)):
        return []
    repository = parse(reference).repository
    return [d.split("@", 1)[1] for d in repo_digests if isinstance(d, str) and "@" in d
            and is_digest(d.split("@", 1)[1]) and parse(d).repository == repository]


def plan_bases(plan, pinned: bool | None = None) -> list[str]:
    """The base images of a plan's container builds, once each; `pinned`: only those with (True) or
    without (False) a digest."""
    bases = [s.build_args["BASE_IMAGE"] for n in plan.start_order for s in [plan.services[n]]
             if s.mode == "container" and s.dockerfile and s.build_args.get("BASE_IMAGE")]
    return [b for b in dict.fromkeys(bases) if pinned is None or ("@" in b) == pinned]


def lock_project_images(project, say=lambda _line: None) -> Path:
    """`inv lock --images`: re-pin every service's base image to what its tag names now."""
    stack = project.stack
    machine = Machine(env={k: v for k, v in os.environ.items() if k == "DUPLEX_BASE_IMAGE"})
    refs = list(dict.fromkeys(base_image(stack, machine, spec.env) for spec in stack.services.values()
                              if spec.dockerfile and "container" in spec.modes))
    if not refs:
        say("no service is built from a Dockerfile: no base image to pin")
        return lock_path(stack.root)
    facts = probe_docker(dict(os.environ), refs, stack.name)
    pin_bases(stack.root, refs, facts if facts.reachable else None, update=True, say=say)
    return lock_path(stack.root)


def pin_unpinned(the_plan, say=lambda _line: None, facts=None) -> dict[str, LockedImage]:
    """Pin the plan's bases that images.lock lacks (asking the engine once); a base no registry
    answers for is left to the build (or preflight) to report."""
    bases = plan_bases(the_plan, pinned=False)
    if not bases:
        return {}
    facts = facts or probe_docker(dict(os.environ), bases, the_plan.stack)
    if not facts.reachable:
        return {}
    return pin_bases(the_plan.root, bases, facts, strict=False, say=say)
