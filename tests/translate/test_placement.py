"""asr and mt of the translation stack on a one-GPU host (an H200 served by the NVML stand-in): the
placement puts both on the one GPU and sums their needs, natively and in containers."""

from __future__ import annotations

import json
import os
import stat

import pytest

from tests.conftest import run_inv
from tests.support import fakenvml
from tests.support.stackcopy import copy_translate

GB = 1000 ** 3
WEIGHTS = {"Systran/faster-whisper-medium": ("model.bin", 3 * GB // 2), "Qwen/Qwen3-4B": ("model.safetensors", 8 * GB)}


@pytest.mark.parametrize("flags", [[], ["--native"]])
def test_asr_and_mt_share_the_one_gpu_their_needs_summed(fake_nvml, tmp_path, flags):
    stack = copy_translate(tmp_path / "repo", WEIGHTS)
    hook = tmp_path / "hook" / "nvidia-container-runtime-hook"  # beside the engine: `--gpus` works
    hook.parent.mkdir()
    hook.write_text("#!/bin/sh\nexit 0\n")
    hook.chmod(hook.stat().st_mode | stat.S_IEXEC)
    env = {"DUPLEX_STACK": str(stack), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "PATH": f"{hook.parent}:{os.environ['PATH']}",
           **fakenvml.host_env(fake_nvml, "h200_driver570", tmp_path)}
    config = run_inv("config", "--json", *flags, env=env, cwd=stack.parent)
    assert config.returncode == 0, config.stderr
    services = {s["name"]: s for s in json.loads(config.stdout)["services"]}
    asr, mt = services["asr"]["gpu_placement"], services["mt"]["gpu_placement"]
    assert asr.startswith("GPU 0 (NVIDIA H200") and mt.startswith("GPU 0 (NVIDIA H200")
    assert "needs ~1.7 GiB" in asr and "needs ~8.9 GiB" in mt  # weights x 1.2
    assert asr.endswith("shared with mt: ~10.6 GiB together") and mt.endswith("shared with asr: ~10.6 GiB together")
    assert services["frontend"]["gpu_placement"] is None
