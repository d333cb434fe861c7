"""`inv publish --push`: build the stack's images, tag them with the stack and a content hash,
push them to the registry, and hand back each one's `name:tag@digest` for the published files.

Order keeps failures whole: the registry is asked first (a registry that is down stops before any
build), every image is built before the first push, and the files are written only after the last
push succeeded (`publish` does that), so a failure leaves nothing that refers to a missing image.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

from ..engine import short_error
from ..images.references import REGISTRY_RULE, is_digest, registry_problem
from ..images.registry import api_root_problem
from ..plan import Plan
from ..run.containers import ContainerRunner
from .common import PublishError


def check_registry(registry: str, timeout: float = 5.0) -> None:
    """The registry's API root answers (200, or 401: it wants a login the engine has), or one line."""
    why = registry_problem(registry)
    if why:
        raise PublishError(f"--registry {registry!r}: {why}", fix=f"give {REGISTRY_RULE}")
    reason = api_root_problem(registry.split("/", 1)[0], timeout)
    if reason:
        raise PublishError(f"--registry {registry}: no image registry answers ({reason}); nothing was built or pushed",
                           fix="start the registry or correct --registry (HOST[:PORT]/PREFIX), then publish again")


def push_images(the_plan: Plan, registry: str, *, progress: Callable[[str], None], client=None) -> Plan:
    """The plan with each built service's image replaced by what was pushed: `registry/duplex-STACK-
    SERVICE:CONTENTHASH@sha256:...` (the tag is the image id's first 12 hex digits: the same
    source gives the same tag; the digest is what the registry stored)."""
    from docker.errors import DockerException  # heavy: only `inv publish --push` talks to the engine
    check_registry(registry)
    runner = ContainerRunner(Path(the_plan.root), the_plan.stack, client=client)
    built = [the_plan.services[n] for n in the_plan.start_order if the_plan.services[n].dockerfile]
    ids = {svc.name: runner.build(svc, progress) for svc in built}
    pushed = {}
    for svc in built:
        repo = f"{registry.rstrip('/')}/{svc.image.split(':')[0]}"
        tag = ids[svc.name].split(":")[-1][:12]
        try:
            runner.client.images.get(ids[svc.name]).tag(repo, tag)
            digest = _push(runner.client, repo, tag, svc.name, progress)
        except DockerException as exc:
            raise PublishError(f"{svc.name}: pushing {repo}:{tag} failed ({short_error(exc)})",
                               fix="check --registry and that you may push there (`docker login HOST`)") from exc
        pushed[svc.name] = f"{repo}:{tag}@{digest}"
        progress(f"{svc.name}: pushed {pushed[svc.name]}")
    services = {n: dataclasses.replace(s, image=pushed.get(n, s.image)) for n, s in the_plan.services.items()}
    return dataclasses.replace(the_plan, services=services)


def _push(client, repo: str, tag: str, service: str, progress: Callable[[str], None]) -> str:
    digest, seen = None, set()
    for chunk in client.api.push(repo, tag, stream=True, decode=True):
        if isinstance(chunk, (bytes, str)):
            chunk = json.loads(chunk)
        if "error" in chunk:
            raise PublishError(f"{service}: pushing {repo}:{tag} failed: {chunk['error'].strip()}",
                               fix="check --registry and that you may push there (`docker login HOST`)")
        status = chunk.get("status", "")
        if status in ("Pushed", "Layer already exists", "Mounted from") and chunk.get("id") not in seen:
            seen.add(chunk.get("id"))
            progress(f"{service}: push {chunk.get('id')}: {status}")
        aux = chunk.get("aux")
        digest = (aux.get("Digest") if isinstance(aux, dict) else None) or digest
    if not is_digest(digest):  # it goes into the published files: nothing else than a digest
        raise PublishError(f"{service}: the registry took {repo}:{tag} but named no digest"
                           + (f" (it said {str(digest)[:80]!r})" if digest else ""),
                           fix="check the registry's logs, then publish again")
    return digest
