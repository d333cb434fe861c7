"""Helpers for preflight tests: stacks written to disk, plans, recorded NVML facts, a hub-like HTTP server."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from checks import Context
from duplex.gpu import NvmlFacts
from duplex.plan import plan
from duplex.machine import Machine
from duplex.stack import load_stack
from tests.support.stacks import write_stack

from .hubserver import HubServer

FIXTURES = Path(__file__).parent / "fixtures"
NO_GPU = NvmlFacts(error_code=12, error="NVML Shared Library Not Found")


def nvml_fixture(name: str) -> NvmlFacts:
    return NvmlFacts.from_dict(json.loads((FIXTURES / f"{name}.json").read_text()))


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


@dataclass(frozen=True)
class _Memory:  # the shape of pynvml's c_nvmlMemory_t
    total: int
    free: int
    used: int = 0


@dataclass
class RecordedNvml:
    """Stands in for the pynvml module, replaying recorded facts (a GPU cannot exist here)."""

    facts: NvmlFacts
    init_error: int | None = None  # an NVML error code nvmlInit raises (real pynvml exception classes)
    calls: list[str] = field(default_factory=list)

    def __post_init__(self):
        import pynvml
        self.NVMLError = pynvml.NVMLError

    def nvmlInit(self):
        self.calls.append("init")
        if self.init_error is not None:
            raise self.NVMLError(self.init_error)

    def nvmlShutdown(self):
        self.calls.append("shutdown")

    def nvmlSystemGetDriverVersion(self):
        return self.facts.driver_version

    def nvmlSystemGetCudaDriverVersion_v2(self):
        return self.facts.cuda_driver

    def nvmlDeviceGetCount(self):
        return len(self.facts.gpus)

    def nvmlDeviceGetHandleByIndex(self, index):
        return self.facts.gpus[index]

    def nvmlDeviceGetName(self, handle):
        return handle.name.encode()  # older nvidia-ml-py returned bytes

    def nvmlDeviceGetCudaComputeCapability(self, handle):
        return handle.capability

    def nvmlDeviceGetMemoryInfo(self, handle):
        return _Memory(handle.memory_total, handle.memory_free, handle.memory_total - handle.memory_free)


@pytest.fixture
def hub_server():
    server = HubServer()
    server.start()
    yield server
    server.stop()
