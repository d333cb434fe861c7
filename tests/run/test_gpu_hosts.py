"""The GPU half end to end on simulated hosts: the real `inv config`, `inv preflight`, `inv setup` and
`inv publish` processes, NVML served by the stand-in libnvidia-ml.so.1 through nvidia-ml-py
(tests/support/fakenvml.py), the Docker engine the real one with NVIDIA's runtime hook stand-in beside
it (the way the toolkit installs it). Only the silicon is missing.

Each row: the host, the torch build moshi's image gets (and the release), where moshi is placed, and
the preflight verdicts that must hold."""

from __future__ import annotations

import json
import os
import stat

import pytest

from tests.conftest import ROOT, run_inv
from tests.support import fakenvml

pytestmark = pytest.mark.docker

HOSTS = {
    # host: (moshi's torch build, release, moshi's device, {check: status})
    "h100_driver550": ("cu126", "2.13", "0", {"gpu.driver": "pass", "gpu.vram.moshi": "pass", "docker.lock.moshi": "fail"}),
    "h200_driver570": ("cu126", "2.13", "0", {"gpu.driver": "pass", "gpu.vram.moshi": "pass", "docker.lock.moshi": "fail"}),
    "rtx5090_driver575": ("cu128", "2.11", "0", {"gpu.driver": "pass", "gpu.vram.moshi": "pass", "docker.lock.moshi": "fail"}),
    "t4_driver470": ("cu118", "2.7", "0", {"gpu.driver": "warn", "gpu.vram.moshi": "warn", "docker.lock.moshi": "fail"}),
    "a100_mig": ("cu126", "2.13", "0:0", {"gpu.driver": "pass", "gpu.vram.moshi": "pass"}),
    "two_l40s_one_busy": ("cu126", "2.13", "1", {"gpu.driver": "pass", "gpu.vram.moshi": "pass"}),
}


@pytest.fixture(scope="module")
def hook_dir(tmp_path_factory):
    """nvidia-container-runtime-hook beside the local engine: what duplex reads as `--gpus` working."""
    folder = tmp_path_factory.mktemp("hook")
    hook = folder / "nvidia-container-runtime-hook"
    hook.write_text("#!/bin/sh\nexit 0\n")
    hook.chmod(hook.stat().st_mode | stat.S_IEXEC)
    return folder


def env_for(host, fake_nvml, hook_dir, tmp_path, **more):
    return {"PATH": f"{hook_dir}:{os.environ['PATH']}", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
            **fakenvml.host_env(fake_nvml, host, tmp_path), **more}


@pytest.mark.parametrize("host", list(HOSTS))
def test_config_preflight_and_setup_on_a_gpu_host(host, fake_nvml, hook_dir, tmp_path):
    torch, release, device, verdicts = HOSTS[host]
    env = env_for(host, fake_nvml, hook_dir, tmp_path)
    config = run_inv("config", "--json", env=env)
    assert config.returncode == 0, config.stderr
    moshi = {s["name"]: s for s in json.loads(config.stdout)["services"]}["moshi"]
    assert moshi["torch"] == torch and f"torch {release} {torch}" in moshi["torch_reason"], moshi["torch_reason"]
    assert moshi["gpu"] and moshi["gpu_request"] == "nvidia" and moshi["gpu_devices"] == [device]
    assert "needs ~22.4 GiB" in moshi["gpu_placement"]  # Kyutai's 24 GB, not weights x 1.2
    people = run_inv("config", env=env)
    assert f"moshi GPU: GPU {device.split(':')[0]}" in people.stdout and f"moshi torch {torch}" in people.stdout

    pre = run_inv("preflight", "--json", "--services", "moshi", env=env)
    results = {r["name"]: r for r in json.loads(pre.stdout)}
    for name, status in verdicts.items():
        assert results[name]["status"] == status, (name, results[name])
    assert results["docker.gpu.moshi"]["status"] == "pass" and f"({device})" in results["docker.gpu.moshi"]["detail"]
    assert "docker.torch.moshi" not in results  # a CUDA build was found
    if "docker.lock.moshi" in verdicts:
        assert f"inv lock --env moshi --torch {torch}" in results["docker.lock.moshi"]["fix"]

    setup = run_inv("setup", "--env", "moshi", env=env)
    if torch == "cu130":
        return
    assert setup.returncode == 1  # the CUDA 12 / 11 locks need the PyTorch index: named, not guessed
    assert f"requirements.{torch}.lock for torch {torch} (torch {release} {torch}" in setup.stderr
    assert f"inv lock --env moshi --torch {torch}" in setup.stderr


def test_t4_on_470_with_a_range_no_build_fits_fails_preflight_naming_what_would_work(fake_nvml, hook_dir, tmp_path):
    """The same T4 when the torch range starts at 2.8: every build needs a newer driver, so the image
    would be CPU torch; preflight fails it with the driver (or older torch) that would work."""
    project = tmp_path / "p"
    (project / "envs" / "moshi").mkdir(parents=True)
    for sub in ("dockerfiles", "third_party"):
        (project / sub).symlink_to(ROOT / sub)
    (project / "stack.toml").write_text((ROOT / "stack.toml").read_text())
    (project / "envs/moshi/requirements.in").write_text("torch>=2.8,<2.14\n")
    env = env_for("t4_driver470", fake_nvml, hook_dir, tmp_path, DUPLEX_STACK=str(project / "stack.toml"))
    pre = run_inv("preflight", "--json", "--services", "moshi", env=env, cwd=project)
    result = {r["name"]: r for r in json.loads(pre.stdout)}["docker.torch.moshi"]
    assert pre.returncode == 1 and result["status"] == "fail"
    assert "would install CPU torch" in result["detail"] and "470.82.01" in result["detail"]
    assert "driver to >= 525.60.13" in result["fix"] and "allow torch 2.7 (cu118" in result["fix"]


def test_a_host_whose_driver_is_not_loaded(fake_nvml, hook_dir, tmp_path):
    env = env_for("driver_not_loaded", fake_nvml, hook_dir, tmp_path)
    config = json.loads(run_inv("config", "--json", env=env).stdout)
    assert "moshi" in config["left_out"] and not any(s["gpu"] for s in config["services"])
    pre = run_inv("preflight", "--json", "--services", "moshi", env=env)
    results = {r["name"]: r for r in json.loads(pre.stdout)}
    assert pre.returncode == 1 and results["gpu.driver"]["status"] == "fail"
    assert "modprobe nvidia" in results["gpu.driver"]["fix"]
    assert results["docker.torch.moshi"]["status"] == "fail"  # it would be built with CPU torch


def test_setup_on_a_host_whose_driver_is_not_loaded_builds_cpu_and_says_why(fake_nvml, hook_dir, tmp_path):
    """A tiny env with torch = "auto" (its cpu lock pins six only: the choice, not torch, is tested)."""
    project = tmp_path / "p"
    (project / "envs" / "tiny").mkdir(parents=True)
    (project / "envs/tiny/requirements.in").write_text("six\n")
    (project / "stack.toml").write_text('[envs.tiny]\ntorch = "auto"\n[services.api]\nenv = "tiny"\n'
                                        'command = ["python", "-c", "pass"]\nport = 9198\nmodes = ["native"]\n')
    env = env_for("driver_not_loaded", fake_nvml, hook_dir, tmp_path, DUPLEX_STACK=str(project / "stack.toml"),
                  DUPLEX_TORCH_INDEX="none")  # no torch in this env: nothing to take from the PyTorch index
    lock = run_inv("lock", "--env", "tiny", env=env, cwd=project)
    assert lock.returncode == 0, lock.stderr
    setup = run_inv("setup", "--env", "tiny", "--json", env=env, cwd=project, timeout=300)
    assert setup.returncode == 0, setup.stderr
    row = json.loads(setup.stdout)[0]
    assert row["torch"] == "cpu" and "no NVIDIA driver or GPU" in row["torch_reason"]
    assert any("Driver Not Loaded" in w and "picks a CUDA build" in w for w in row["warnings"])


def test_publish_gives_moshi_a_cuda_build_whatever_this_host_has(fake_nvml, hook_dir, tmp_path):
    for host in ("t4_driver470", "driver_not_loaded"):
        env = env_for(host, fake_nvml, hook_dir, tmp_path)
        out = tmp_path / host
        proc = run_inv("publish", "--compose", "--out", str(out), "--json", env=env)
        assert proc.returncode == 0, proc.stderr
        assert "TORCH: cu130" in (out / "compose.yaml").read_text()  # the widest build moshi has a lock for
