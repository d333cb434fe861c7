"""The real thing, slow: torch 2.13 CPU from the local wheel via the pip path, and the lhotse fix.

lhotse 1.32.1 with torch >= 2.10 dies building a SimpleCutSampler with
`TypeError: object.__init__() takes exactly one argument`; 1.33.0 imports urllib3 without declaring it.
"""

from __future__ import annotations

import subprocess

import pytest

from duplex.envs import lock_env, provision_env
from duplex.envs.fixes import VERIFY, lhotse
from duplex.envs.imports import check_imports
from duplex.errors import EnvError

from .conftest import Spec, make_project

pytestmark = pytest.mark.slow
SPEC = Spec(python="3.11", torch="cpu", fixes=["lhotse"])


@pytest.fixture(scope="module")
def nemo_env(tmp_path_factory):
    """A 3.11 env with the local torch 2.13.0 CPU wheel and lhotse 1.32.1, built by provision_env (pip)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DUPLEX_TORCH_INDEX", "none")  # torch from the local wheelhouse (pip's find-links)
    root = make_project(tmp_path_factory.mktemp("nemo"), "nemo", "torch==2.13.0\nlhotse==1.32.1\n")
    lines: list[str] = []
    lock_env(root, "nemo", SPEC, progress=lines.append)
    result = provision_env(root, "nemo", SPEC, installer="pip", progress=lines.append)
    yield root, result, lines
    mp.undo()


def run(python, code):
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True)


def test_torch_cpu_wheel_installed_through_the_pip_path(nemo_env):
    root, result, _ = nemo_env
    assert (root / "envs/nemo/requirements.cpu.lock").is_file()
    assert result.installer == "pip" and result.torch_variant == "cpu" and result.python_version.startswith("3.11")
    out = run(result.path / "bin/python", "import torch; print(torch.__version__, torch.ones(2).sum().item())")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2.13.0+cpu", "2.0"]


def test_setup_patched_lhotse_and_recorded_it(nemo_env):
    _, result, lines = nemo_env
    assert any("patched super().__init__(data_source=None) in lhotse 1.32.1" in f for f in result.fixes)
    assert any("verifying with a SimpleCutSampler" in line for line in lines)
    assert run(result.path / "bin/python", VERIFY).returncode == 0


def test_the_bug_is_real_and_the_fix_is_idempotent(nemo_env):
    _, result, _ = nemo_env
    py = result.path / "bin/python"
    reinstall = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall",
                                "lhotse==1.32.1"], capture_output=True, text=True)
    assert reinstall.returncode == 0, reinstall.stderr
    broken = run(py, VERIFY)
    assert "TypeError: object.__init__() takes exactly one argument" in broken.stderr
    first = lhotse(py, lambda _: None)
    assert first.changed and "dataset/sampling/base.py" in first.message
    assert run(py, VERIFY).returncode == 0
    second = lhotse(py, lambda _: None)
    assert not second.changed and "already fixed" in second.message


def test_lhotse_1_33_missing_urllib3_is_named(nemo_env):
    root, result, _ = nemo_env
    py = result.path / "bin/python"
    got = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "lhotse==1.33.0"],
                         capture_output=True, text=True)
    assert got.returncode == 0, got.stderr
    assert run(py, "import urllib3").returncode != 0  # nothing else pulled it in
    with pytest.raises(EnvError) as err:
        check_imports(py, ["lhotse"], "nemo", "envs/nemo/requirements.in", lambda _: None)
    assert "No module named 'urllib3'" in str(err.value) and "lhotse needs urllib3 but does not declare it" in str(err.value)
    assert "add urllib3 to envs/nemo/requirements.in" in err.value.fix
