"""A full or read-only disk during `inv setup` / `inv lock`: a clear error, the old env kept, no traceback.

Real file systems: a small tmpfs mounted over the project's env folder (root only, as here and in CI).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from duplex.envs import env_path, env_status, lock_env, provision_env
from duplex.errors import EnvError
from tests.conftest import run_inv
from tests.support.disk import fill, tmpfs

from .conftest import Spec
from .test_provision import works

STACK = """
[envs.small]
[services.api]
env = "small"
command = ["python", "-c", "pass"]
port = 9199
modes = ["native"]
"""


def setup_cli(project: Path, *args: str):
    (project / "stack.toml").write_text(STACK)
    return run_inv("setup", "--env", "small", *args, env={"DUPLEX_STACK": str(project / "stack.toml")}, timeout=300)


def assert_clean_failure(proc, *fragments: str):
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, f"{fragment!r} not in:\n{proc.stderr}"


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_full_disk_during_setup_names_the_step_and_keeps_the_env(project, installer):
    envs = project / ".duplex/envs"
    with tmpfs(envs, "48m"):
        provision_env(project, "small", Spec(), installer=installer)
        filler = fill(envs)
        with pytest.raises(EnvError) as err:
            provision_env(project, "small", Spec(), installer=installer, force=True)
        text = str(err.value)
        assert "env 'small': creating the venv failed at" in text and "no space left on the device" in text
        assert "the previous env (if any) is untouched" in text and "df -h" in err.value.fix
        assert works(env_path(project, "small")) and env_status(project, "small", Spec()) == "ok"
        proc = setup_cli(project, "--force", "--installer", installer)
        assert_clean_failure(proc, "creating the venv failed", "no space left on the device", "fix: free disk space")
        assert len(list((envs / ".builds").iterdir())) == 1  # the failed builds are gone, the live one stays
        filler.unlink()
        again = provision_env(project, "small", Spec(), installer=installer, force=True)
        assert works(again.path) and len(list((envs / ".builds").iterdir())) == 1


def test_a_read_only_env_folder_is_a_clear_error_and_reuse_still_works(project):
    envs = project / ".duplex/envs"
    with tmpfs(envs, "48m"):
        provision_env(project, "small", Spec())
        subprocess.run(["mount", "-o", "remount,ro", str(envs)], check=True)
        proc = setup_cli(project, "--force")
        assert_clean_failure(proc, "env 'small': preparing the env folder failed at",
                             "the file system is read-only", "previous env (if any) is untouched",
                             "fix: remount that file system read-write")
        assert works(env_path(project, "small"))
        proc = setup_cli(project, "--json")  # nothing to write: an up-to-date env is simply reused
        assert proc.returncode == 0, proc.stderr
        assert '"state": "reused"' in proc.stdout


def test_lock_on_a_read_only_folder_keeps_the_old_lock(project):
    folder = project / "envs/small"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with tmpfs(folder, "4m"):
        for name, data in before.items():
            (folder / name).write_bytes(data)
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        with pytest.raises(EnvError) as err:
            lock_env(project, "small", Spec())
        assert "env 'small': writing the lock failed at" in str(err.value)
        assert "read-only" in str(err.value) and "the previous lock (if any) is untouched" in str(err.value)
        assert "inv lock --env small" in err.value.fix
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_permission_denied_says_whose_folder_to_fix(tmp_path):
    # Root (as here) is never refused a write, so this branch is checked as data.
    import errno

    from duplex.envs.layout import os_problem, tool_os_error
    line = "error: failed to create directory `/srv/app/.duplex/envs/.builds/x`: Permission denied (os error 13)"
    assert tool_os_error("Resolved 2 packages\n" + line) == (errno.EACCES, line)
    err = os_problem(errno.EACCES, "asr", "creating the venv", tmp_path / "gone" / "x", line)
    assert str(err).startswith(f"env 'asr': creating the venv failed at {tmp_path}/gone/x: permission denied")
    assert line in str(err) and f"make {tmp_path} writable by you" in err.fix  # the nearest folder that exists
    assert err.fix.endswith("then rerun `inv setup --env asr`")
