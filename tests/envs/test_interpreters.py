"""Interpreter discovery against the machine's real pyenv 3.10-3.13: pick in range, refuse 3.13."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from duplex.envs.interpreters import candidates, check_range, discover, probe
from duplex.envs.pythons import parse_range
from duplex.errors import EnvError

PYENV = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"


def pyenv_python(minor: str) -> Path:
    found = sorted(PYENV.glob(f"{minor}.*/bin/python3"))
    assert found, f"this test needs pyenv's Python {minor} (CI installs 3.10-3.13)"
    return found[-1]


def test_finds_the_real_pythons_by_asking_them():
    versions = {i.minor for i in (probe(p, s) for p, s in candidates()) if i}
    assert {"3.10", "3.11", "3.12", "3.13"} <= versions


@pytest.mark.parametrize("spec,minor", [("3.10", "3.10"), ("3.11", "3.11"), ("3.12", "3.12"),
                                        (">=3.10,<3.12", "3.11"), (">=3.10", "3.12")])
def test_picks_the_newest_allowed_and_never_3_13(spec, minor):
    assert discover(spec, "asr").minor == minor


def test_prefers_the_version_the_lock_was_resolved_for():
    assert discover(">=3.10,<3.13", "asr", prefer="3.10").minor == "3.10"


def test_python_flag_by_version_and_by_path():
    assert discover(">=3.10,<3.13", "asr", python="3.10").minor == "3.10"
    got = discover(">=3.10,<3.13", "asr", python=str(pyenv_python("3.12")))
    assert got.minor == "3.12" and got.source == "--python"


def test_python_flag_pointing_at_3_13_is_refused():
    with pytest.raises(EnvError) as err:
        discover(">=3.10,<3.13", "asr", python=str(pyenv_python("3.13")))
    assert "Python 3.13" in str(err.value) and ">=3.10,<3.13" in str(err.value) and "3.10-3.12" in str(err.value)
    assert "pyenv install 3.11" in err.value.fix and "--python" in err.value.fix
    with pytest.raises(EnvError, match="--python 3.13 is outside"):
        discover(">=3.10,<3.13", "asr", python="3.13")


def test_a_range_outside_3_10_to_3_12_is_refused_before_searching():
    for spec in (">=3.13", "3.13", "<3.10"):
        with pytest.raises(EnvError, match="allows no Python that duplex supports"):
            check_range(spec, "moshi")


def test_a_machine_with_only_3_13_gets_a_message_not_3_13(tmp_path):
    only = {"PATH": str(pyenv_python("3.13").parent), "HOME": str(tmp_path), "PYENV_ROOT": str(tmp_path / "none")}
    with pytest.raises(EnvError) as err:
        discover(">=3.10,<3.13", "asr", environ=only)
    assert "no Python in >=3.10,<3.13" in str(err.value) and "found: 3.13" in str(err.value)
    assert "uv python install" in err.value.fix


def test_a_bad_python_value_is_explained():
    with pytest.raises(EnvError, match="neither a version"):
        parse_range("three point eleven")
    with pytest.raises(EnvError, match="not a working Python"):
        discover(">=3.10,<3.13", "asr", python="/nonexistent/python3")


def test_what_uv_is_asked_to_install():
    from duplex.envs.pythons import managed_request
    assert managed_request("3.11.7") == "3.11.7"  # the env names one: that one
    assert managed_request(">=3.10,<3.13", prefer="3.11") == "3.11"  # the lock's series
    assert managed_request(">=3.10,<3.13") == "3.12"  # else the newest duplex supports
    assert managed_request(">=3.10,<3.13", python="3.10") == "3.10"  # --python 3.10
    assert managed_request(">=3.11.4,<3.13", prefer="3.11") == "3.12"  # 3.11.0 is out: not "3.11"
    assert set(managed_request(">=3.11.4,<3.12").split(",")) == {"<3.12", ">=3.10", "<3.13", ">=3.11.4"}
