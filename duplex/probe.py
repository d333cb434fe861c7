"""What the machine offers, gathered once and handed to planning as plain data."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

# Host variables the plan reads or passes through; nothing else of the host leaks into services.
PASSTHROUGH = ("HF_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE", "CUDA_VISIBLE_DEVICES",
               "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS")  # a collector's auth


@dataclass(frozen=True)
class Machine:
    """The facts planning needs. Tests build these by hand; `probe_machine` reads the real ones."""

    gpu_count: int = 0
    nvidia_runtime: bool = False  # docker can hand GPUs to containers
    hf_home: str = str(Path.home() / ".cache" / "huggingface")
    hf_hub_cache: str | None = None  # only when set apart from HF_HOME
    uid: int = 1000
    gid: int = 1000
    env: dict[str, str] = field(default_factory=dict)  # host variables (PASSTHROUGH, DUPLEX_*)
    torch: str = "cpu"  # what torch = "auto" resolves to here: the CUDA variant that fits the driver


def hf_home(environ: dict[str, str]) -> str:
    """The Hugging Face home as huggingface_hub computes it (HF_HOME, else XDG, else ~/.cache)."""
    if environ.get("HF_HOME"):
        return str(Path(environ["HF_HOME"]).expanduser())
    xdg = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(xdg).expanduser() / "huggingface")


def container_gpus(environ: dict[str, str], engine=None) -> bool:
    """Whether Docker can hand GPUs to containers, as the engine says (its `nvidia` runtime, the
    runtime hook, or an enabled CDI spec): never assumed from the host having one. `engine`: the
    checks.docker facts when already gathered; else one short `docker info`."""
    from checks.docker import gpu_paths, probe_docker  # lazy: the docker SDK only when asked
    return bool(gpu_paths(engine if engine is not None else probe_docker(environ, [], "")))


def probe_machine(environ: dict[str, str] | None = None, *, gpus: int | None = None,
                  nvidia_runtime: bool | None = None, keep: Iterable[str] = ()) -> Machine:
    """Read the host cheaply. GPU facts come from the NVML probe when not given; whether containers
    can get a GPU from the Docker engine, asked only when there is a GPU to hand them."""
    environ = dict(os.environ if environ is None else environ)
    torch = "cpu"
    if gpus is None:
        from .gpu import probe_nvml_facts  # lazy: NVML is only loaded when asked
        facts = probe_nvml_facts(environ)
        gpus = len(facts.gpus)
        if gpus:
            from .envs.torch import choose
            try:
                torch = choose("auto", facts.to_torch_probe(), None).variant
            except Exception:  # noqa: BLE001 - no fitting variant: preflight and setup explain why
                torch = "cpu"
    home = hf_home(environ)
    hub = environ.get("HF_HUB_CACHE")
    if hub and Path(hub).expanduser().resolve() == (Path(home) / "hub").resolve():
        hub = None
    keep = set(keep)  # the stack's `secrets`: host variables its services are handed
    kept = {k: v for k, v in environ.items() if k in PASSTHROUGH or k in keep or k.startswith("DUPLEX_")}
    if nvidia_runtime is None:
        nvidia_runtime = bool(gpus) and container_gpus(environ)
    return Machine(
        gpu_count=gpus,
        nvidia_runtime=nvidia_runtime,
        hf_home=home,
        hf_hub_cache=str(Path(hub).expanduser()) if hub else None,
        torch=torch,
        uid=os.getuid() if hasattr(os, "getuid") else 1000,
        gid=os.getgid() if hasattr(os, "getgid") else 1000,
        env=kept,
    )
