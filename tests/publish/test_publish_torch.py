"""GPU images are published with a CUDA torch: the user's variant (--torch, [stack] publish_torch),
else the build that runs on the widest range of current datacenter GPUs and drivers; never CPU torch
for a gpu = "required" service (the published moshi once got `TORCH: cpu` beside a GPU reservation)."""

from __future__ import annotations

import pytest

from duplex.publish import PublishError, target_plan
from duplex.stack import load_stack
from tests.conftest import ROOT, run_inv
from tests.support.stacks import write_stack


def test_the_default_is_the_widest_build_that_has_a_lock(tmp_path):
    """The repo locks moshi for cpu and cu130 only: the default build is cu130 (cu126 would run on
    more drivers, but its image cannot be built: the Dockerfile COPYs requirements.cu126.lock)."""
    stack = load_stack(ROOT / "stack.toml")
    moshi = target_plan(stack, environ={}).services["moshi"]
    assert moshi.gpu and moshi.build_args["TORCH"] == "cu130"
    assert "locked build" in moshi.torch_note and "inv lock --env moshi --torch cu126" in moshi.torch_note
    assert not any("does not exist" in w for w in target_plan(stack, environ={}).warnings)
    chosen = target_plan(stack, environ={}, torch="cu126")
    assert chosen.services["moshi"].build_args["TORCH"] == "cu126"  # the user's word, with the warning
    assert any("requirements.cu126.lock does not exist yet" in w and "inv lock --env moshi --torch cu126" in w
               for w in chosen.warnings)
    out = tmp_path / "out"
    proc = run_inv("publish", "--compose", "--out", str(out))  # the real default publish
    assert proc.returncode == 0, proc.stderr
    text = (out / "compose.yaml").read_text()
    assert "TORCH: cu130" in text and "cu126" not in text
    for variant in ("cu130", "cpu"):  # every TORCH the file builds with has its lock
        assert (ROOT / "envs" / "moshi" / f"requirements.{variant}.lock").is_file()


def _stack_without_cuda_locks(tmp_path):
    """The default stack with moshi's CUDA lock not made yet: only requirements.in and the cpu lock."""
    path = write_stack(tmp_path, (ROOT / "stack.toml").read_text())
    for sub in ("third_party", "dockerfiles", "servers", "duplex"):
        (tmp_path / sub).symlink_to(ROOT / sub)
    for env in (ROOT / "envs").iterdir():
        (tmp_path / "envs" / env.name).mkdir(parents=True)
        for f in env.iterdir():
            if not f.name.startswith("requirements.cu"):
                (tmp_path / "envs" / env.name / f.name).symlink_to(f)
    return path


def test_push_refuses_before_building_when_the_builds_lock_is_missing(tmp_path):
    from tests.support.net import free_port
    path = _stack_without_cuda_locks(tmp_path / "proj")
    registry = f"127.0.0.1:{free_port()}/team"  # nothing answers there: the lock is checked first
    for extra in ((), ("--torch", "cu126")):
        proc = run_inv("publish", "--compose", "--registry", registry, "--push", *extra,
                       "--out", str(tmp_path / "out"), env={"DUPLEX_STACK": str(path)})
        assert proc.returncode == 1, proc.stdout + proc.stderr
        err = proc.stderr
        assert "moshi needs envs/moshi/requirements.cu126.lock" in err and "nothing was built" in err, err
        assert "`inv lock --env moshi --torch cu126`" in err and "Traceback" not in err
        assert "no image registry answers" not in err and "building" not in proc.stdout
    assert not (tmp_path / "out").exists()
    plain = run_inv("publish", "--compose", "--out", str(tmp_path / "out"), env={"DUPLEX_STACK": str(path)})
    assert plain.returncode == 0, plain.stderr  # the files alone: written, with the warning
    assert "requirements.cu126.lock does not exist yet" in plain.stdout + plain.stderr


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
