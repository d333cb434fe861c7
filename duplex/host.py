"""Read what the machine offers, once, into the plain `Machine` facts that planning takes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from .engine import gpu_request, probe_docker
from .envs.torch_builds import choose
from .envs.torch_choice import torch_choice
from .errors import EnvError
from .gpu import probe_nvml_facts
from .machine import PASSTHROUGH, Machine, hf_endpoint, hf_home


def probe_machine(environ: dict[str, str] | None = None, *, gpus: int | None = None,
                  nvidia_runtime: bool | None = None, keep: Iterable[str] = (), stack=None) -> Machine:
    """Read the host cheaply. GPU facts come from the NVML probe when not given; whether containers
    can get a GPU from the Docker engine, asked only when there is a GPU to hand them. With the
    `stack`, each `torch = "auto"` env's build is chosen for its own torch range and locks."""
    environ = dict(os.environ if environ is None else environ)
    hf_endpoint(environ)  # checked where it enters: services get it as it is
    torch, devices, torch_envs, notes = "cpu", (), {}, {}
    if gpus is None:
        facts = probe_nvml_facts(environ)
        gpus, devices = len(facts.gpus), facts.gpus
        if gpus:
            try:
                torch = choose("auto", facts, None).variant
            except EnvError:  # no fitting variant: preflight and setup explain why
                torch = "cpu"
        if stack is not None:
            torch_envs, notes = torch_choices(stack, facts)
    home = hf_home(environ)
    hub = environ.get("HF_HUB_CACHE")
    if hub and Path(hub).expanduser().resolve() == (Path(home) / "hub").resolve():
        hub = None
    keep = set(keep)  # the stack's `secrets`: host variables its services are handed
    kept = {k: v for k, v in environ.items() if k in PASSTHROUGH or k in keep or k.startswith("DUPLEX_")}
    request = "nvidia"
    if nvidia_runtime is None:
        form = None
        if gpus:
            form = gpu_request(probe_docker(environ, [], ""))
        nvidia_runtime, request = form is not None, form or "nvidia"
    return Machine(
        gpu_count=gpus,
        nvidia_runtime=nvidia_runtime,
        gpu_request=request,
        gpus=tuple(devices),
        torch_envs=torch_envs,
        torch_notes=notes,
        hf_home=home,
        hf_hub_cache=str(Path(hub).expanduser()) if hub else None,
        torch=torch,
        uid=os.getuid() if hasattr(os, "getuid") else 1000,
        gid=os.getgid() if hasattr(os, "getgid") else 1000,
        env=kept,
    )


def torch_choices(stack, facts) -> tuple[dict[str, str], dict[str, str]]:
    """(env -> variant, env -> why) for the stack's `torch = "auto"` envs on this machine. An env no
    build fits gets "cpu", and its note says why and what would work (preflight fails a GPU service
    whose image that leaves with CPU torch)."""
    variants, notes = {}, {}
    for name, spec in stack.envs.items():
        if getattr(spec, "torch", "none") != "auto":
            continue
        try:
            choice = torch_choice(stack.root, name, spec, probe=facts)
            variants[name], notes[name] = choice.variant, choice.reason
        except EnvError as err:
            variants[name] = "cpu"
            notes[name] = f"no torch build fits: {err} (fix: {err.fix})"
    return variants, notes
