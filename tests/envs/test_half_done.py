"""Half-done work (issue 18, family 6): a killed `inv setup` leaves a partial build that the next
no-op setup removes (as the docs say), and what setup is asked is checked even when the env is up
to date (it was silently ignored without --force)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from duplex.envs import env_path, provision_env
from duplex.envs.stamp import read
from duplex.errors import EnvError
from tests.conftest import run_inv

from .conftest import Spec
from .test_provision import ROOT, works

STACK = '[envs.small]\n[services.api]\nenv = "small"\ncommand = ["python", "-c", "pass"]\nport = 9199\nmodes = ["native"]\n'


def setup_cli(project, *args):
    (project / "stack.toml").write_text(STACK)
    env = () if "--env" in args else ("--env", "small")
    return run_inv("setup", *env, *args, env={"DUPLEX_STACK": str(project / "stack.toml")}, timeout=300)


def builds(project) -> list[str]:
    return sorted(p.name for p in (project / ".duplex/envs/.builds").iterdir())


def test_a_killed_setup_s_partial_build_is_removed_by_the_next_no_op_setup(project):
    provision_env(project, "small", Spec())
    live = builds(project)
    code = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1])\n"
            "from tests.envs.conftest import Spec; from duplex.envs import provision_env\n"
            "provision_env(Path(sys.argv[2]), 'small', Spec(), installer='pip', force=True,"
            " progress=lambda m: print(m, flush=True))\n")
    child = subprocess.Popen([sys.executable, "-c", code, str(ROOT), str(project)],
                             stdout=subprocess.PIPE, text=True, start_new_session=True)
    for line in child.stdout:
        if "installing" in line:
            break
    time.sleep(0.5)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    assert len(builds(project)) == 2  # the live env and the killed one's partial build
    proc = setup_cli(project, "--json")  # nothing to build: the env is up to date
    assert proc.returncode == 0, proc.stderr
    assert '"state": "reused"' in proc.stdout
    assert builds(project) == live and works(env_path(project, "small"))


def test_a_no_op_setup_leaves_a_build_another_setup_is_making(project):
    from duplex.envs import layout
    provision_env(project, "small", Spec())
    busy = project / ".duplex/envs/.builds/small-20990101-000000-1-abcdef"
    busy.mkdir()
    with layout.locked(project, "small"):  # another setup of this env is running
        assert provision_env(project, "small", Spec()).reused
        assert busy.exists()
    assert provision_env(project, "small", Spec()).reused and not busy.exists()


@pytest.mark.parametrize(("args", "words"), [
    (("--python", "garbage"), "--python 'garbage' is neither a version like 3.11 nor an interpreter"),
    (("--installer", "conda"), "--installer 'conda': expected one of uv, pip"),
    (("--torch", "cuda"), "--torch 'cuda': expected one of auto, cpu, none or cuXXX"),
    (("--hf-token", "hf_abc\nEVIL=1"), "--hf-token: it holds a control character"),
    (("--env", "../small"), "--env '../small': env names are lower-case"),
])
def test_a_bad_option_is_refused_even_when_the_env_is_up_to_date(project, args, words):
    provision_env(project, "small", Spec())
    proc = setup_cli(project, *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert words in proc.stderr and "Traceback" not in proc.stderr
    assert not (project / ".env").exists()


def test_the_library_refuses_them_too_and_honours_a_path_to_another_python(project):
    provision_env(project, "small", Spec())
    with pytest.raises(EnvError, match="unknown installer 'conda'"):
        provision_env(project, "small", Spec(), installer="conda")
    with pytest.raises(EnvError, match="--python /no/such/python: not a working Python interpreter"):
        provision_env(project, "small", Spec(), python="/no/such/python")
    other = next((str(p) for p in sorted((ROOT.home() / ".pyenv/versions").glob("3.1[02].*/bin/python3"))
                  if read(env_path(project, "small")).python_version[:4] not in str(p)), None)
    if other is None:
        pytest.skip("needs a second Python in 3.10-3.12 (pyenv)")
    rebuilt = provision_env(project, "small", Spec(), python=other)  # was: reused, the path ignored
    assert not rebuilt.reused and works(rebuilt.path)
    assert provision_env(project, "small", Spec(), python=other).reused
    asked_pip = provision_env(project, "small", Spec(), installer="pip")  # another installer: rebuilt
    assert not asked_pip.reused and asked_pip.installer == "pip"
    shutil.rmtree(project / ".duplex", ignore_errors=True)
