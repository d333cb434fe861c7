"""A machine without a Python the env admits: `inv setup` fetches one with the real uv, from a
stand-in of python-build-standalone's download server (tests/support/pythons.py), or says exactly
why it cannot. The machine is narrowed to "only Debian's 3.11.2" by HOME, PYENV_ROOT and PATH."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request

import pytest

from duplex.envs import provision_env
from duplex.envs.interpreters import NoInterpreterError
from duplex.errors import EnvError
from duplex.layout import python_in
from tests.conftest import run_inv
from tests.support import pythons
from tests.support.envs import Spec
from tests.support.net import free_port
from tests.support.stacks import write_stack

VERSION = "3.11.7"  # pyenv's, packed as the download; Debian's own 3.11.2 does not fit "3.11.7"


@pytest.fixture(scope="module")
def downloads(tmp_path_factory):
    served = pythons.serve(tmp_path_factory.mktemp("pbs"), pythons.PYENV / VERSION, VERSION)
    yield served
    served.stop()


@pytest.fixture
def bare_machine(tmp_path, monkeypatch):
    """Nothing but the system's own interpreters; uv installs into a folder of this test."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    monkeypatch.setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path / "uv-python"))
    monkeypatch.setenv("UV_PYTHON_BIN_DIR", str(tmp_path / "uv-bin"))
    monkeypatch.delenv("UV_PYTHON_DOWNLOADS", raising=False)
    return tmp_path / "uv-python"


def test_setup_fetches_a_managed_python_when_none_fits(project, bare_machine, downloads, monkeypatch):
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS_JSON_URL", downloads.json_url)
    lines: list[str] = []
    result = provision_env(project, "small", Spec(python=VERSION), progress=lines.append)
    assert result.python_version == VERSION
    text = "\n".join(lines)
    assert "small: no Python in range on this machine: fetching a managed CPython (uv python install" in text
    assert f"Installed Python {VERSION}" in text
    assert f"Python {VERSION} ({bare_machine}" in text and "from uv)" in text
    out = python_in(result.path)
    run = subprocess.run([str(out), "-c", "import six, sys; print(sys.version.split()[0])"],
                         capture_output=True, text=True, check=True)
    assert run.stdout.strip() == VERSION
    # the next setup finds it on the machine: nothing is fetched again
    again: list[str] = []
    assert provision_env(project, "small", Spec(python=VERSION), force=True, progress=again.append)
    assert not any("fetching" in line for line in again)


def test_downloads_turned_off_say_how_to_get_one(project, bare_machine, monkeypatch):
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS", "never")
    with pytest.raises(NoInterpreterError) as err:
        provision_env(project, "small", Spec(python=VERSION))
    assert f"no Python in {VERSION}" in str(err.value) and "found: 3.11.2" in str(err.value)
    assert f"uv python install {VERSION}" in err.value.fix
    assert "unset UV_PYTHON_DOWNLOADS (now 'never')" in err.value.fix
    assert not bare_machine.exists() and not (project / ".duplex" / "envs" / "small").exists()


def test_offline_is_one_line_in_seconds(project, bare_machine, downloads, monkeypatch, tmp_path):
    listing = json.loads(urllib.request.urlopen(downloads.json_url).read())
    for entry in listing.values():  # the listing is there, the archive's host does not answer
        entry["url"] = f"http://127.0.0.1:{free_port()}/{entry['url'].rsplit('/', 1)[1]}"
    (tmp_path / "offline.json").write_text(json.dumps(listing))
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS_JSON_URL", str(tmp_path / "offline.json"))
    started = time.monotonic()
    with pytest.raises(EnvError) as err:
        provision_env(project, "small", Spec(python=VERSION))
    assert time.monotonic() - started < 30
    assert "could not reach its download server (offline?)" in str(err.value)
    assert "\n" not in str(err.value) and "UV_PYTHON_INSTALL_MIRROR" in err.value.fix
    assert not (project / ".duplex" / "envs" / "small").exists()


def test_through_the_cli_offline_no_traceback(project, bare_machine):
    """`inv setup` on a machine with no fitting Python and no network: exit 1, one line, a fix."""
    stack = write_stack(project)
    stack.write_text(stack.read_text().replace('python = ">=3.10,<3.13"', f'python = "{VERSION}"'))
    proc = run_inv("setup", cwd=project, env={
        "DUPLEX_STACK": str(stack), "UV_PYTHON_DOWNLOADS_JSON_URL": f"http://127.0.0.1:{free_port()}/x.json"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("duplex:")]
    assert len(errors) == 1 and "uv python install" in errors[0], proc.stderr
