"""The capacity file: what `inv loadtest` writes and `inv publish --capacity` reads (pure).

One JSON document per load test. Per service: the replicas measured, the session slots each
declared, the budget applied, every level's figures, and the result: `capacity` (the most live
sessions, across the measured replicas, that met the budget) and `per_replica` (that divided by
the replicas, rounded down: the figure an autoscaler targets per pod). docs/capacity.md shows one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import DuplexError
from .textfile import TextFileError, read_text

FORMAT = 1


class CapacityError(DuplexError):
    """A capacity file that cannot be used: missing, not JSON, not this format."""


@dataclass(frozen=True)
class ServiceCapacity:
    service: str
    replicas: int                # replicas behind the front while measured
    sessions: int | None         # session slots per replica the stack declares (None: no limit known)
    budget: dict                 # the budget each level was held to (stack.Budget's keys that are set)
    capacity: int | None         # the most sessions that met the budget; None: not even the first level
    stopped: str                 # why the ramp stopped, in words ("final_p95 0.81 s > 0.5 s at 8 sessions")
    levels: list[dict] = field(default_factory=list)  # each level's figures, in the order run

    @property
    def per_replica(self) -> int | None:
        if self.capacity is None:
            return None
        return max(1, self.capacity // self.replicas)  # an autoscaler's target is at least one session


def document(stack: str, services: list[ServiceCapacity], generator: dict, machine: dict) -> dict:
    """The JSON document of one load test."""
    return {"format": FORMAT, "stack": stack, "machine": machine, "generator": generator,
            "services": {s.service: {**asdict(s), "per_replica": s.per_replica} for s in services}}


def parse(data: object, source: str) -> dict[str, ServiceCapacity]:
    """Service name -> its measured capacity, from a document `document` wrote."""
    fix = "pass the file `inv loadtest` wrote (.duplex/loadtest/loadtest.json, or in its --out folder)"
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("services"), dict):
        raise CapacityError(f"{source} is not a duplex capacity file (format {FORMAT})", fix=fix)
    found = {}
    for name, entry in data["services"].items():
        try:
            found[name] = ServiceCapacity(
                service=name, replicas=_count(entry["replicas"], 1), sessions=_optional(entry.get("sessions")),
                budget=dict(entry.get("budget") or {}), capacity=_optional(entry.get("capacity")),
                stopped=str(entry.get("stopped", "")), levels=list(entry.get("levels") or []))
        except (KeyError, TypeError, ValueError) as exc:
            raise CapacityError(f"{source}: services.{name} is malformed ({exc})", fix=fix) from None
    return found


def read_capacity(path: Path) -> dict[str, ServiceCapacity]:
    try:
        text = read_text(path, limit=8 * 2**20, what="capacity file")
    except FileNotFoundError:
        raise CapacityError(f"{path}: no such file", fix="run `inv loadtest` first (it writes .duplex/loadtest/loadtest.json)") from None
    except TextFileError as err:
        raise CapacityError(f"{path}: {err.problem}", fix=err.fix) from None
    except OSError as exc:
        raise CapacityError(f"{path}: cannot read: {exc.strerror}", fix="check the path and its permissions") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CapacityError(f"{path} is not JSON: {exc}", fix="pass the file `inv loadtest` wrote (.duplex/loadtest/loadtest.json, or in its --out folder)") from None
    return parse(data, str(path))


def _count(value: object, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"expected a whole number of at least {least}, found {value!r}")
    return value


def _optional(value: object, least: int = 1) -> int | None:
    return None if value is None else _count(value, least)
