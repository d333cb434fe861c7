"""Read what the machine offers, once, into the plain `Machine` facts that planning takes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from .machine import PASSTHROUGH, Machine, hf_home

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
                torch = choose("auto", facts, None).variant
            except Exception:  # noqa: BLE001 - no fitting variant: preflight and setup explain why
                torch = "cpu"
    home = hf_home(environ)
    hub = environ.get("HF_HUB_CACHE")
    if hub and Path(hub).expanduser().resolve() == (Path(home) / "hub").resolve():
        hub = None
    keep = set(keep)  # the stack's `secrets`: host variables its services are handed
    kept = {k: v for k, v in environ.items() if k in PASSTHROUGH or k in keep or k.startswith("DUPLEX_")}
    if nvidia_runtime is None:
        nvidia_runtime = False
        if gpus:
            from .engine import container_gpus  # lazy: the engine is asked only when there is a GPU to hand out
            nvidia_runtime = container_gpus(environ)
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
