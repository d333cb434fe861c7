"""The stack's containers as the engine holds them: found by duplex's labels (running or not), one
found by id or name, stopped and removed; the stack's networks once no container uses them."""

from __future__ import annotations

from pathlib import Path

from ..engine import connect
from ..plan import LABEL

PERSISTENT_LABEL = f"{LABEL}.persistent"  # "true": kept warm between runs


def list_containers(root: Path, client=None, *, everything: bool = True) -> list:
    """The containers runs of the stack at `root` made (running or not); `everything=False` leaves
    out the persistent ones kept warm between runs."""
    client = client or connect()
    found = client.containers.list(all=True, filters={"label": f"{LABEL}.root={root}"})
    return found if everything else [c for c in found if c.labels.get(PERSISTENT_LABEL) != "true"]


def remove_idle_networks(names: set[str], client=None) -> list[str]:
    """Remove those of these networks that no container uses any more (a persistent container kept
    warm keeps its network): left behind, each takes one of the engine's ~30 default address pools,
    and a machine that runs many stacks runs out."""
    from docker.errors import APIError, NotFound
    client = client or connect()
    removed = []
    for name in sorted(names):
        try:
            network = client.networks.get(name)
            if not network.attrs.get("Containers"):
                network.remove()
                removed.append(name)
        except (APIError, NotFound):  # gone already, or a container joined it meanwhile
            pass
    return removed


def find_container(ident: str, client=None):
    """A container by id or name, or None when the engine no longer has it."""
    from docker.errors import NotFound
    try:
        return (client or connect()).containers.get(ident)
    except NotFound:
        return None


def remove_container(container, grace: float) -> None:
    """Stop (SIGTERM, then SIGKILL after `grace`) and remove, whatever its state."""
    from docker.errors import NotFound
    try:
        if container.status == "running":
            container.stop(timeout=int(grace))
        container.remove(force=True)
    except NotFound:
        pass
