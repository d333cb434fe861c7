"""Locks made for real with uv: every line hash-pinned, staleness detected, failures explained."""

from __future__ import annotations

import os
import time

import pytest

from duplex.envs import lock_env, lock_path, lock_state
from duplex.envs.lock import locked_python, pins, unhashed
from duplex.errors import EnvError

from .conftest import Spec


def test_lock_pins_every_package_with_hashes(locked_small):
    text = (locked_small / "envs/small/requirements.lock").read_text()
    assert set(pins(text)) == {"six", "idna"}
    assert unhashed(text) == []
    assert locked_python(locked_small / "envs/small/requirements.lock") == "3.11"
    assert "inv lock --env small" in text.splitlines()[0]
    assert lock_state(locked_small, "small", Spec()) == "ok"


def test_editing_requirements_in_makes_the_lock_stale(project):
    req = project / "envs/small/requirements.in"
    req.write_text(req.read_text() + "# a comment changes nothing? it changes the file: re-lock\n")
    assert lock_state(project, "small", Spec()).startswith("stale: envs/small/requirements.in changed")


def test_staleness_of_a_lock_made_by_hand(project):
    lock = project / "envs/small/requirements.lock"
    lock.write_text("".join(l + "\n" for l in lock.read_text().splitlines() if not l.startswith("# duplex")))
    assert lock_state(project, "small", Spec()) == "ok"
    req = project / "envs/small/requirements.in"
    later = time.time() + 60
    os.utime(req, (later, later))
    assert "is newer than" in lock_state(project, "small", Spec())
    req.write_text("six\nidna\nattrs\n")
    assert lock_state(project, "small", Spec()) == "stale: attrs in envs/small/requirements.in but not in envs/small/requirements.lock"


def test_missing_lock_and_variant_locks(project):
    assert lock_state(project, "small", Spec(), "cu128") == "missing"
    assert lock_path(project, "small", Spec(), "cu128").name == "requirements.cu128.lock"
    assert lock_path(project, "small", Spec(requirements="deps/x.in")).as_posix().endswith("deps/x.lock")


def test_unhashed_lines_are_found():
    assert unhashed("six==1.17.0 \\\n    --hash=sha256:abc\nidna==3.10\n") == ["idna==3.10"]


def test_missing_requirements_in_is_explained(tmp_path):
    with pytest.raises(EnvError, match="envs/ghost/requirements.in does not exist") as err:
        lock_env(tmp_path, "ghost", Spec())
    assert "inv lock --env ghost" in err.value.fix


def test_an_unresolvable_requirement_keeps_the_old_lock(project):
    lock = project / "envs/small/requirements.lock"
    before = lock.read_text()
    (project / "envs/small/requirements.in").write_text("six\nduplex-no-such-package-zz9\n")
    with pytest.raises(EnvError) as err:
        lock_env(project, "small", Spec())
    assert "cannot be resolved" in str(err.value) and "duplex-no-such-package-zz9" in str(err.value)
    assert lock.read_text() == before
    assert not list(lock.parent.glob(".*.tmp"))
