"""GPU images are published with a CUDA torch: the user's variant (--torch, [stack] publish_torch),
else the build that runs on the widest range of current datacenter GPUs and drivers; never CPU torch
for a gpu = "required" service (the published moshi once got `TORCH: cpu` beside a GPU reservation)."""

from __future__ import annotations

import pytest

from duplex.publish import PublishError, target_plan
from duplex.stack import load_stack
from tests.conftest import ROOT, run_inv
from tests.support.stacks import write_stack


def test_the_default_is_the_widest_cuda_build_not_cpu(tmp_path):
    stack = load_stack(ROOT / "stack.toml")
    moshi = target_plan(stack, environ={}).services["moshi"]
    assert moshi.gpu and moshi.build_args["TORCH"] == "cu126"  # torch 2.13: cu126 runs on drivers >= 525
    assert "widest range" in moshi.torch_note and "not on sm_100" in moshi.torch_note
    plan = target_plan(stack, environ={})
    assert any("requirements.cu126.lock does not exist yet" in w and "inv lock --env moshi --torch cu126" in w
               for w in plan.warnings)
    chosen = target_plan(stack, environ={}, torch="cu130").services["moshi"]
    assert chosen.build_args["TORCH"] == "cu130"
    assert any(w.startswith("moshi: image built with torch cu130") and "does not exist" not in w
               for w in target_plan(stack, environ={}, torch="cu130").warnings)  # the committed PyPI lock


def test_cpu_is_refused_for_a_gpu_required_service(tmp_path):
    stack = load_stack(ROOT / "stack.toml")
    with pytest.raises(PublishError) as err:
        target_plan(stack, environ={}, torch="cpu")
    assert "moshi (gpu = \"required\")" in str(err.value) and "--torch cu126" in err.value.fix
    assert target_plan(stack, services=["frontend"], environ={}).services.keys() == {"asr", "frontend"}


def test_the_stack_setting_and_the_flag(tmp_path):
    text = (ROOT / "stack.toml").read_text().replace('on_crash = "keep"', 'on_crash = "keep"\npublish_torch = "cu130"')
    path = write_stack(tmp_path, text)
    for sub in ("envs", "third_party", "dockerfiles"):
        (tmp_path / sub).symlink_to(ROOT / sub)
    stack = load_stack(path)
    assert target_plan(stack, environ={}).services["moshi"].build_args["TORCH"] == "cu130"
    assert target_plan(stack, environ={}, torch="cu126").services["moshi"].build_args["TORCH"] == "cu126"
    proc = run_inv("publish", "--compose", "--torch", "cpu", "--out", str(tmp_path / "out"),
                   env={"DUPLEX_STACK": str(path)})
    assert proc.returncode == 1 and "torch cpu for env 'moshi'" in proc.stderr
    proc = run_inv("publish", "--compose", "--out", str(tmp_path / "out"), env={"DUPLEX_STACK": str(path)})
    assert proc.returncode == 0, proc.stderr
    assert "TORCH: cu130" in (tmp_path / "out" / "compose.yaml").read_text()
