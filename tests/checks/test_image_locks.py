"""An image built with a torch variant needs that variant's lock: preflight says so before a build."""

from __future__ import annotations

from checks import Context
from checks.docker import check_image_locks
from duplex.machine import Machine
from duplex.plan import plan
from duplex.stack import load_stack
from tests.conftest import ROOT


def _results(torch: str):
    stack = load_stack(ROOT / "stack.toml")
    the_plan = plan(stack, Machine(gpu_count=1, nvidia_runtime=True, torch=torch))
    return {r.name: r for r in check_image_locks(Context(stack, the_plan, {}))}


def test_the_shipped_cpu_lock_passes_and_a_missing_cuda_lock_fails_with_the_lock_command():
    assert _results("cpu")["docker.lock.moshi"].status == "pass"
    missing = [p for p in ("cu118", "cu126", "cu128", "cu130")
               if not (ROOT / "envs" / "moshi" / f"requirements.{p}.lock").exists()]
    assert missing, "every CUDA lock exists: pick a variant that does not"
    result = _results(missing[0])["docker.lock.moshi"]
    assert result.status == "fail" and f"torch {missing[0]}" in result.detail
    assert "requirements.cpu.lock" in result.detail  # what there is
    assert f"inv lock --env moshi --torch {missing[0]}" in result.fix
    assert set(_results("cpu")) == {"docker.lock.moshi"}  # asr and frontend build without torch
