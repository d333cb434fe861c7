"""What of a run is really there: the stack's containers as the engine holds them (found by duplex's
labels, running or not; stopped and removed; the stack's networks once no container uses them), and
whether a service the run state records still runs (a native pid still the same process, a container
still in the engine).

The engine is reached through an `Engine` (the real one: `DOCKER`), so `inv stop`, `inv status`,
`inv logs` and the one-service actions take a fake in tests and need no Docker there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ..engine import connect
from ..plan import LABEL
from .processes import group_is
from .state import read_state

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
    # heavy: docker loads only when the engine is asked (not for a native run)
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
    from docker.errors import NotFound  # heavy: docker loads only when the engine is asked (not for a native run)
    try:
        return (client or connect()).containers.get(ident)
    except NotFound:
        return None


def remove_container(container, grace: float) -> None:
    """Stop (SIGTERM, then SIGKILL after `grace`) and remove, whatever its state."""
    from docker.errors import NotFound  # heavy: docker loads only when the engine is asked (not for a native run)
    try:
        if container.status == "running":
            container.stop(timeout=int(grace))
        container.remove(force=True)
    except NotFound:
        pass


class Engine(Protocol):
    """What the runtime asks the Docker engine about a project's containers. A container is the
    docker SDK's (`id`, `short_id`, `name`, `labels`, `status`, `logs(...)`) or a fake with those."""

    def answers(self) -> bool:
        """Whether the engine is there: a native-only user may have no Docker at all."""

    def containers(self, root: Path, *, everything: bool = True) -> list:
        """The containers runs of the stack at `root` made (`everything=False`: not those kept warm)."""

    def by_id(self, root: Path | None = None) -> dict:
        """Every duplex container (of the project at `root` when given), by full id."""

    def find(self, ident: str):
        """A container by id or name, or None when the engine no longer has it."""

    def remove(self, container, grace: float) -> None:
        """Stop (SIGTERM, then SIGKILL after `grace`) and remove, whatever its state."""

    def remove_idle_networks(self, names: set[str]) -> list[str]:
        """Remove those of these networks no container uses any more; returns their names."""


class DockerEngine:
    """The real engine, through the docker SDK (duplex.engine and the functions above)."""

    def answers(self) -> bool:
        try:
            connect().close()
            return True
        except Exception:  # noqa: BLE001 - no engine means no containers to see or stop
            return False

    def containers(self, root: Path, *, everything: bool = True) -> list:
        return list_containers(root, everything=everything)

    def by_id(self, root: Path | None = None) -> dict:
        client = connect()
        try:
            filters = {"label": f"{LABEL}.root={root}"} if root else {"label": f"{LABEL}.service"}
            return {c.id: c for c in client.containers.list(all=True, filters=filters)}
        finally:
            client.close()

    def find(self, ident: str):
        return find_container(ident)

    def remove(self, container, grace: float) -> None:
        remove_container(container, grace)

    def remove_idle_networks(self, names: set[str]) -> list[str]:
        return remove_idle_networks(names)


DOCKER: Engine = DockerEngine()


def service_of(container) -> str:
    """The stack's name of the service a container runs (its label; else the container's name)."""
    return container.labels.get(f"{LABEL}.service", container.name)


def alive(record: dict, containers: dict | None = None, engine: Engine = DOCKER) -> bool:
    """Whether a service the run state records still runs: a native pid must still be the same
    process (same start time); a container must still exist in the engine and run (`containers`:
    the engine's containers of this project by id, when already listed; else the engine is asked)."""
    if record.get("mode") == "native":
        pid = record.get("pid")
        return isinstance(pid, int) and pid > 0 and group_is(pid, record.get("start_time"))
    if record.get("mode") == "container":
        ident = record.get("container")
        if not ident:
            return False
        if containers is None:
            containers = engine_containers_by_id(record.get("root"), engine)
        container = containers.get(ident) if containers is not None else None
        return container is not None and container.status in ("created", "running", "restarting")
    return False


def engine_containers_by_id(root=None, engine: Engine = DOCKER) -> dict | None:
    """Every duplex container the engine has (of the project at `root` when given), by full id;
    None when the engine does not answer (then no container of ours can be running through it)."""
    return engine.by_id(root) if engine.answers() else None


def live_records(root: Path, state: dict | None = None, engine: Engine = DOCKER) -> tuple[dict, list[str]]:
    """(the records that are still there, the names of stale ones), asking the engine at most once
    and only when the state records a container."""
    state = read_state(root) if state is None else state
    records = state["services"]
    containers = None
    if any(r.get("mode") == "container" for r in records.values()):
        containers = engine_containers_by_id(root, engine) or {}
    live, stale = {}, []
    for name, record in records.items():
        if alive(record, containers, engine):
            live[name] = record
        else:
            stale.append(name)
    return live, stale
