"""inv setup for real: uv and virtualenv+pip build working venvs from one hash-pinned lock; reuse, rebuild, atomicity."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from duplex.envfile import write_secret
from duplex.envs import env_path, env_status, provision_env
from duplex.envs.stamp import read
from duplex.errors import EnvError

from .conftest import Spec

ROOT = Path(__file__).resolve().parents[2]


def works(venv: Path) -> str:
    out = subprocess.run([str(venv / "bin/python"), "-c", "import six, idna, sys; print(sys.prefix)"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_both_installers_build_a_working_venv_from_the_lock(project, installer):
    lines: list[str] = []
    result = provision_env(project, "small", Spec(), installer=installer, progress=lines.append)
    assert result.installer == installer and not result.reused and result.torch_variant == "none"
    assert result.path == env_path(project, "small") == project / ".duplex/envs/small"
    assert works(result.path)
    assert any("installing 2 pinned packages" in line for line in lines)
    assert env_status(project, "small", Spec()) == "ok"
    stamp = read(result.path)
    assert stamp.installer == installer and stamp.lock == "envs/small/requirements.lock"
    assert (project / ".duplex/envs/CACHEDIR.TAG").exists() and (project / ".duplex/envs/.gitignore").exists()


def test_second_run_reuses_and_a_changed_lock_rebuilds(project):
    first = provision_env(project, "small", Spec())
    again = provision_env(project, "small", Spec())
    assert again.reused and again.seconds < 0.5, again.seconds
    lock = project / "envs/small/requirements.lock"
    lock.write_text(lock.read_text().replace("# via", "#  via"))  # same pins, different bytes: a new lock
    assert env_status(project, "small", Spec()).startswith("stale: envs/small/requirements.lock changed")
    rebuilt = provision_env(project, "small", Spec())
    assert not rebuilt.reused and works(rebuilt.path)
    assert len(list((project / ".duplex/envs/.builds").iterdir())) == 1  # the old build is gone
    assert first.path == rebuilt.path


def test_asking_for_another_python_rebuilds_only_then(project):
    provision_env(project, "small", Spec())
    other = provision_env(project, "small", Spec(), python="3.10")
    assert other.python_version.startswith("3.10") and not other.reused
    assert provision_env(project, "small", Spec(), python="3.10").reused
    assert provision_env(project, "small", Spec()).reused  # 3.10 is still in range


def test_a_stale_or_missing_lock_is_refused_and_the_env_kept(project):
    provision_env(project, "small", Spec())
    (project / "envs/small/requirements.in").write_text("six\nidna\nattrs\n")
    with pytest.raises(EnvError) as err:
        provision_env(project, "small", Spec())
    assert "stale" in str(err.value) and err.value.fix.startswith("run `inv lock --env small`")
    assert works(env_path(project, "small"))
    with pytest.raises(EnvError, match="no lock envs/other/requirements.lock"):
        provision_env(project, "other", Spec())


def test_a_failed_install_leaves_the_previous_env(project):
    provision_env(project, "small", Spec())
    lock = project / "envs/small/requirements.lock"
    lock.write_text(lock.read_text().replace("--hash=sha256:4721", "--hash=sha256:0000"))  # corrupt six's hashes
    text = lock.read_text().replace("--hash=sha256:ff70", "--hash=sha256:0001")
    lock.write_text(text)
    with pytest.raises(EnvError) as err:
        provision_env(project, "small", Spec(), installer="pip")
    assert "does not match the hash" in str(err.value) and "inv lock --env small" in err.value.fix
    assert works(env_path(project, "small")) and env_status(project, "small", Spec()).startswith("stale")
    assert len(list((project / ".duplex/envs/.builds").iterdir())) == 1


def test_killing_setup_mid_install_leaves_no_half_env_and_the_rerun_succeeds(project):
    code = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2])\n"
            "from tests.envs.conftest import Spec; from duplex.envs import provision_env\n"
            "provision_env(Path(sys.argv[3]), 'small', Spec(), installer='pip', force=True,"
            " progress=lambda m: print(m, flush=True))\n")
    for before in (False, True):  # killed with no env yet, then killed while replacing a working env
        if before:
            provision_env(project, "small", Spec())
        child = subprocess.Popen([sys.executable, "-c", code, str(ROOT), str(ROOT), str(project)],
                                 stdout=subprocess.PIPE, text=True, start_new_session=True)
        for line in child.stdout:
            if "installing" in line:
                break
        time.sleep(0.5)
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        venv = env_path(project, "small")
        if before:
            assert works(venv) and env_status(project, "small", Spec()) == "ok"
        else:
            assert not venv.exists() and env_status(project, "small", Spec()) == "missing"
        assert len(list((project / ".duplex/envs/.builds").iterdir())) == 1 + before  # the killed build
        result = provision_env(project, "small", Spec(), force=True)
        assert works(result.path)
        assert len(list((project / ".duplex/envs/.builds").iterdir())) == 1  # leftovers cleaned


def test_bad_options_are_refused_before_any_work(project):
    with pytest.raises(EnvError, match="unknown installer 'conda'"):
        provision_env(project, "small", Spec(), installer="conda")
    with pytest.raises(EnvError, match="unknown fix 'nemo'; known fixes: lhotse"):
        provision_env(project, "small", Spec(fixes=["nemo"]))
    with pytest.raises(EnvError, match="allows no Python"):
        provision_env(project, "small", Spec(python=">=3.13"))
    with pytest.raises(EnvError, match=r"--python .*3\.13.*outside"):
        provision_env(project, "small", Spec(), python="3.13")
    assert not env_path(project, "small").exists()


def test_torch_auto_on_this_gpu_less_machine_wants_the_cpu_lock(project):
    with pytest.raises(EnvError) as err:
        provision_env(project, "small", Spec(torch="auto"))
    assert "requirements.cpu.lock" in str(err.value) and "no NVIDIA driver" in str(err.value)
    assert err.value.fix == "run `inv lock --env small --torch cpu`"


def test_hf_token_goes_to_a_private_env_file(tmp_path):
    (tmp_path / ".env").write_text("OTHER=1\nHF_TOKEN=old\n")
    path = write_secret(tmp_path, "HF_TOKEN", "hf_secretvalue123")
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text() == "OTHER=1\nHF_TOKEN=hf_secretvalue123\n"


def test_the_torch_choice_and_its_reason_are_recorded_in_the_stamp_and_shown_on_reuse(project, monkeypatch):
    from duplex.envs import lock_env
    from duplex.machine import GpuInfo, NvmlFacts
    monkeypatch.setenv("DUPLEX_TORCH_INDEX", "none")  # the env has no torch; the variant still names the lock
    blackwell = NvmlFacts(cuda_driver=12080, driver_version="570.86.10", gpus=(GpuInfo(0, "RTX 5090", (12, 0)),))
    spec = Spec(torch="auto")
    lock_env(project, "small", spec, probe=blackwell)
    built = provision_env(project, "small", spec, probe=blackwell)
    stamp = read(built.path)
    assert stamp.torch == built.torch_variant == "cu128"
    assert "RTX 5090 (sm_120)" in stamp.torch_reason and "CUDA 12.8" in stamp.torch_reason
    assert built.as_dict()["torch_reason"] == stamp.torch_reason
    # Reuse reports the reason recorded at build time, not one recomputed now.
    path = built.path / ".duplex-stamp.json"
    path.write_text(path.read_text().replace(stamp.torch_reason, "recorded at build time"))
    lines: list[str] = []
    again = provision_env(project, "small", spec, probe=blackwell, progress=lines.append)
    assert again.reused and again.as_dict()["torch_reason"] == "recorded at build time"
    assert lines == ["small: up to date (Python %s, torch cu128: recorded at build time), nothing to do"
                     % again.python_version]


def test_setup_json_rows_carry_the_torch_reason(project):
    import json

    from tests.conftest import run_inv
    (project / "stack.toml").write_text('[envs.small]\n[services.api]\nenv = "small"\n'
                                        'command = ["python", "-c", "pass"]\nport = 9199\nmodes = ["native"]\n')
    stack = {"DUPLEX_STACK": str(project / "stack.toml")}
    for state in ("built", "reused"):
        proc = run_inv("setup", "--env", "small", "--json", env=stack, timeout=300)
        assert proc.returncode == 0, proc.stderr
        [row] = json.loads(proc.stdout)
        assert row["state"] == state and row["torch"] == "none" and row["torch_reason"] == "no torch in this env"
