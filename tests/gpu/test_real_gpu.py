"""What only real silicon can tell: run on an NVIDIA host with `python -m pytest -m gpu tests/gpu`.

Everywhere else these are skipped, visibly, with the reason (CI has no GPU; the simulated host in
tests/support/fakenvml.py stands in there). docs/gpu.md says what each one checks and what it needs:
  - NVML facts (driver, GPUs, UUIDs, memory) against `nvidia-smi`;
  - the torch build duplex chose for the moshi env sees its GPU and runs a kernel;
  - a container started with duplex's GPU request sees exactly the GPU placement gave it;
  - the VRAM check against the GPU's real free memory.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from duplex.gpu import probe_nvml_facts

ROOT = Path(__file__).resolve().parents[2]


def _real_gpu() -> str | None:
    """Why there is no GPU to test on, or None when there is one."""
    if not shutil.which("nvidia-smi"):
        return "no nvidia-smi: not an NVIDIA host (run `python -m pytest -m gpu tests/gpu` on one)"
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return "the NVIDIA driver's libnvidia-ml.so.1 does not load"
    if os.environ.get("FAKE_NVML_DESCRIPTION"):
        return "FAKE_NVML_DESCRIPTION is set: that is the simulated host, not a GPU"
    return None


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_real_gpu() is not None, reason=str(_real_gpu()))]


def _smi(*fields: str) -> list[list[str]]:
    out = subprocess.run(["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, check=True).stdout
    return [[v.strip() for v in line.split(",")] for line in out.strip().splitlines()]


def test_nvml_facts_match_nvidia_smi():
    facts = probe_nvml_facts({k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"})
    assert facts.ok, facts.error
    rows = _smi("index", "name", "uuid", "memory.total", "driver_version", "compute_cap", "mig.mode.current")
    assert facts.driver_version == rows[0][4]
    whole = [g for g in facts.gpus if g.mig is None]
    for g in whole:
        row = next(r for r in rows if r[2] == g.uuid)
        assert g.name == row[1] and int(row[0]) == g.index
        assert abs(g.memory_total / 2 ** 20 - float(row[3])) <= 1  # MiB
        assert f"{g.capability[0]}.{g.capability[1]}" == row[5]
    mig_on = [r for r in rows if r[6] == "Enabled"]
    if mig_on:  # every MIG instance nvidia-smi -L lists is one of duplex's devices
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=True).stdout
        for g in (g for g in facts.gpus if g.mig is not None):
            assert g.uuid in listed


def test_the_chosen_torch_build_sees_its_gpu_and_runs_a_kernel():
    """Needs the moshi env built for this host: `inv lock --env moshi` (if its variant's lock is not
    committed) and `inv setup --env moshi`."""
    from duplex.envs import env_status, torch_choice
    from duplex.layout import Layout, python_in
    from duplex.stack import load_stack
    stack = load_stack(ROOT / "stack.toml")
    choice = torch_choice(ROOT, "moshi", stack.envs["moshi"])
    status = env_status(ROOT, "moshi", stack.envs["moshi"])
    if status != "ok":
        pytest.skip(f"the moshi env is {status}: `inv setup --env moshi` (torch {choice.variant}: {choice.reason})")
    script = ("import json, torch; x = torch.randn(1024, 1024, device='cuda'); y = (x @ x).sum().item();"
              "torch.cuda.synchronize(); print(json.dumps({'cuda': torch.version.cuda, 'arch': torch.cuda.get_arch_list(),"
              "'cap': list(torch.cuda.get_device_capability(0)), 'name': torch.cuda.get_device_name(0), 'y': y}))")
    out = subprocess.run([str(python_in(Layout(ROOT).env("moshi"))), "-c", script], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    major, minor = seen["cap"]
    assert seen["cuda"].replace(".", "")[:3] == choice.variant[2:5] or choice.variant == "cpu"
    sms = [int(a[3:]) for a in seen["arch"] if a.startswith("sm_")]
    assert any(sm // 10 == major and sm <= major * 10 + minor for sm in sms), seen  # kernels for this GPU


def test_a_gpu_container_sees_the_gpu_placement_gave_it():
    """Needs Docker with the NVIDIA Container Toolkit (or CDI specs) and the base image
    (`bash scripts/base-image.sh`); nvidia-smi is mounted into the container by the toolkit."""
    docker = pytest.importorskip("docker")
    from duplex.engine import gpu_request, probe_docker
    from duplex.machine import Machine
    from duplex.plan import plan
    from duplex.run.containers import gpu_device_request
    from duplex.stack import load_stack
    engine = probe_docker(dict(os.environ), ["duplex/python:3.11-bookworm"], "duplex")
    form = gpu_request(engine)
    if form is None:
        pytest.skip("the Docker engine cannot hand out GPUs (no NVIDIA runtime, hook or CDI spec)")
    if not engine.images.get("duplex/python:3.11-bookworm"):
        pytest.skip("base image missing: bash scripts/base-image.sh")
    facts = probe_nvml_facts()
    stack = load_stack(ROOT / "stack.toml")
    machine = Machine(gpu_count=len(facts.gpus), nvidia_runtime=True, gpu_request=form, gpus=facts.gpus)
    moshi = plan(stack, machine, services=["moshi"]).services["moshi"]
    placed = next(g for g in facts.gpus if g.device_id == moshi.gpu_devices[0])
    client = docker.from_env()
    out = client.containers.run("duplex/python:3.11-bookworm", ["nvidia-smi", "-L"], remove=True,
                                device_requests=[gpu_device_request(moshi)]).decode()
    assert placed.uuid in out, out
    kind = "MIG " if placed.mig is not None else "GPU "
    assert sum(line.strip().startswith(kind) for line in out.splitlines()) == 1, out  # that one, no other


def test_vram_check_against_real_free_memory():
    from checks import Context, gpu
    from checks.models import ModelFacts
    from duplex.machine import Machine
    from duplex.plan import plan
    from duplex.stack import load_stack
    facts = probe_nvml_facts()
    free = {r[0]: float(r[1]) for r in _smi("uuid", "memory.free")}
    for g in (g for g in facts.gpus if g.mig is None and g.memory_free is not None):
        assert abs(g.memory_free / 2 ** 20 - free[g.uuid]) < 512  # MiB; memory moves while we look
    stack = load_stack(ROOT / "stack.toml")
    the_plan = plan(stack, Machine(gpu_count=len(facts.gpus), nvidia_runtime=True, gpus=facts.gpus), services=["moshi"])
    repo = "kyutai/moshiko-pytorch-bf16"
    result = gpu.check_vram(Context(stack, the_plan, {}), facts, {repo: ModelFacts(repo, True, 0, 15 * 2 ** 30, "cache")})[0]
    device = next(g for g in facts.gpus if g.device_id == the_plan.services["moshi"].gpu_devices[0])
    assert result.status == ("pass" if device.memory_free >= 24 * 10 ** 9 else "warn"), result
