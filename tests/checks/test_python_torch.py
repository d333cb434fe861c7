"""python and torch: real interpreters, a real env built then made stale, a real torch import (CPU wheel)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from checks import python, torch
from checks.torch import TorchFacts
from duplex.envs import lock_env, provision_env
from tests.support.tools import tool

from .conftest import NO_GPU, by_name, make, nvml_fixture

SMALL = """
[stack]
name = "pf"

[envs.small]
python = "{python}"
torch = "{torch}"

[services.api]
env = "small"
app = "app:app"
port = 18410
dockerfile = "api.Dockerfile"
gpu = "{gpu}"
"""


def stack_text(python=">=3.10,<3.13", torch="none", gpu="none") -> str:
    return SMALL.format(python=python, torch=torch, gpu=gpu)


def test_real_interpreters_are_found_and_3_13_is_never_taken(tmp_path):
    found = python.probe_interpreters()
    versions = {i.minor for i in found}
    assert {"3.10", "3.11", "3.12"} <= versions  # pyenv's, on this machine and CI
    _, _, ctx = make(tmp_path, native=True, text=stack_text())
    result = python.check_interpreters(ctx, found)[0]
    assert result.status == "pass" and "fits >=3.10,<3.13" in result.detail
    only13 = [i for i in found if i.minor == "3.13"]
    assert only13, "pyenv's 3.13 is part of this machine's test fixtures"
    fetched = python.check_interpreters(ctx, only13)[0]  # uv's downloads on, as by default
    assert fetched.status == "warn" and "3.13" in fetched.detail
    assert "`inv setup` will fetch a managed CPython with `uv python install 3.11`" in fetched.detail
    _, _, ctx = make(tmp_path / "off", native=True, text=stack_text(), environ={"UV_PYTHON_DOWNLOADS": "never"})
    refused = python.check_interpreters(ctx, only13)[0]
    assert refused.status == "fail" and "3.13" in refused.detail and "pyenv install 3.11" in refused.fix
    assert "UV_PYTHON_DOWNLOADS=never" in refused.detail


def test_an_env_range_no_installed_python_meets(tmp_path):
    _, _, ctx = make(tmp_path, native=True, text=stack_text(python="3.12.99"), environ={"UV_PYTHON_DOWNLOADS": "never"})
    result = python.check_interpreters(ctx, python.probe_interpreters())[0]
    assert result.status == "fail" and "3.12.99" in result.detail and "pyenv install 3.12.99" in result.fix


def test_env_built_for_real_then_made_stale(tmp_path):
    root = tmp_path / "proj"
    (root / "envs" / "small").mkdir(parents=True)
    (root / "envs" / "small" / "requirements.in").write_text("six\n")
    stack, _, ctx = make(root, native=True, text=stack_text())
    h100 = nvml_fixture("nvml_h100_driver550")

    def state():
        return python.probe_env(root, "small", stack.envs["small"], h100)
    assert by_name(python.check_envs(ctx, {"small": state()}))["python.small.env"].status == "fail"  # not built
    lock_env(root, "small", stack.envs["small"])
    missing = by_name(python.check_envs(ctx, {"small": state()}))["python.small.env"]
    assert missing.status == "fail" and "not built" in missing.detail and missing.fix == "inv setup --env small"
    provision_env(root, "small", stack.envs["small"])
    assert by_name(python.check_envs(ctx, {"small": state()}))["python.small.env"].status == "pass"
    lock = root / "envs/small/requirements.lock"
    lock.write_text(lock.read_text() + "\n# edited\n")
    stale = by_name(python.check_envs(ctx, {"small": state()}))["python.small.env"]
    assert stale.status == "fail" and "stale" in stale.detail and "requirements.lock changed" in stale.detail
    assert stale.fix == "inv setup --env small"


@pytest.fixture(scope="module")
def torch_python(tmp_path_factory) -> Path:
    """A venv with the local torch 2.13.0 CPU wheel (pip's find-links /opt/wheels)."""
    venv = tmp_path_factory.mktemp("torchenv") / "venv"
    uv = tool("uv")
    subprocess.run([uv, "venv", "-q", "-p", "3.11", str(venv)], check=True)
    subprocess.run([uv, "pip", "install", "-q", "--python", str(venv / "bin/python"), "--find-links", "/opt/wheels",
                    "torch==2.13.0"], check=True)
    return venv / "bin" / "python"


@pytest.mark.slow
def test_torch_imports_for_real_and_the_answer_is_remembered(torch_python, tmp_path):
    memo = tmp_path / "torch.json"
    facts = torch.probe_torch(torch_python, memo=memo)
    assert facts.error is None and facts.version.startswith("2.13.0") and facts.cuda is None
    assert not facts.available
    started = time.perf_counter()
    assert torch.probe_torch(torch_python, memo=memo) == facts
    assert time.perf_counter() - started < 0.2
    _, _, ctx = make(tmp_path, native=True, text=stack_text(torch="cpu", gpu="optional"))
    assert by_name(torch.check(ctx, {"small": facts}, NO_GPU))["python.small.torch"].status == "pass"
    on_gpu = by_name(torch.check(ctx, {"small": facts}, nvml_fixture("nvml_h100_driver550")))["python.small.torch"]
    assert on_gpu.status == "warn" and "CPU build" in on_gpu.detail and 'torch = "auto"' in on_gpu.fix


def test_torch_that_does_not_import_fails(tmp_path):
    facts = torch.probe_torch(Path(sys.executable))  # the host interpreter has no torch
    assert facts.error and "torch" in facts.error
    _, _, ctx = make(tmp_path, native=True, text=stack_text(torch="cpu"))
    result = by_name(torch.check(ctx, {"small": facts}, NO_GPU))["python.small.torch"]
    assert result.status == "fail" and result.fix == "inv setup --env small --force"


CU124 = TorchFacts("2.5.1+cu124", "12.4", ("sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"), True)
CU128 = TorchFacts("2.8.0+cu128", "12.8", ("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"), True)


def test_torch_cuda_build_against_recorded_drivers_and_gpus(tmp_path):
    _, _, ctx = make(tmp_path, native=True, services=["api"], text=stack_text(torch="auto", gpu="required"))
    h100, old = nvml_fixture("nvml_h100_driver550"), nvml_fixture("nvml_t4_driver470")
    ok = by_name(torch.check(ctx, {"small": CU124}, h100))["python.small.torch"]
    assert ok.status == "pass" and "fits driver 550.54.15" in ok.detail
    too_new = by_name(torch.check(ctx, {"small": CU124}, old))["python.small.torch"]
    assert too_new.status == "fail" and "CUDA 12.x driver" in too_new.detail and "11.4" in too_new.detail
    pascal = nvml_fixture("nvml_t4_driver470").__class__(
        driver_version="550.54.15", cuda_driver=12040,
        gpus=(h100.gpus[0].__class__(0, "Tesla P100", (6, 0), 16 * 2**30, 16 * 2**30),))
    no_kernels = by_name(torch.check(ctx, {"small": CU128}, pascal))["python.small.torch"]
    assert no_kernels.status == "fail" and "sm_60" in no_kernels.detail and "no kernels" in no_kernels.detail
    assert torch.kernels_for(("sm_80", "sm_86"), 89)  # sm_86 SASS runs on sm_89
    assert not torch.kernels_for(("sm_80", "sm_86"), 90)
    assert torch.kernels_for(("sm_80", "compute_80"), 90)  # PTX is JIT-compiled for newer GPUs
