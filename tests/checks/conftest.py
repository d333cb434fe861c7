"""Helpers for preflight tests: stacks written to disk, plans, recorded NVML facts, a hub-like HTTP server."""

from __future__ import annotations

from pathlib import Path

import pytest

from checks import Context
from duplex.machine import Machine, NvmlFacts
from duplex.plan import plan
from duplex.stack import load_stack
from tests.support import fakenvml
from tests.support.stacks import write_stack

from .hubserver import HubServer

NO_GPU = NvmlFacts(error_code=12, error="NVML Shared Library Not Found")
_LIB: list[Path] = []  # the stand-in libnvidia-ml, set by the autouse fixture below
_SERVED: dict[tuple, NvmlFacts] = {}


@pytest.fixture(autouse=True)
def _nvml_library(fake_nvml):
    _LIB[:] = [fake_nvml]


def nvml_fixture(name: str, environ: dict[str, str] | None = None) -> NvmlFacts:
    """What duplex's real NVML probe reports for a simulated host (tests/support/gpu_hosts/NAME.json),
    served by the stand-in libnvidia-ml through nvidia-ml-py. Once per host and environment."""
    name = name.removeprefix("nvml_")
    key = (name, tuple(sorted((environ or {}).items())))
    if key not in _SERVED:
        _SERVED[key] = fakenvml.probe(_LIB[0], name, _LIB[0] / "served", environ)
    return _SERVED[key]


def make(folder: Path, *, native: bool = False, services=None, gpus: int = 0, environ=None,
         for_run: bool = False, text: str | None = None, **values):
    """(stack, plan, Context) for a stack written to `folder`."""
    stack = load_stack(write_stack(folder, text, **values))
    environ = dict(environ or {})
    machine = Machine(gpu_count=gpus, nvidia_runtime=bool(gpus), hf_home=str(folder / "hf"),
                      env={k: v for k, v in environ.items() if k.startswith(("HF_", "DUPLEX_"))})
    the_plan = plan(stack, machine, native=native, services=services)
    return stack, the_plan, Context(stack, the_plan, {"HF_HOME": str(folder / "hf"), **environ}, for_run)


def by_name(results) -> dict:
    return {r.name: r for r in results}


@pytest.fixture
def hub_server():
    server = HubServer()
    server.start()
    yield server
    server.stop()
