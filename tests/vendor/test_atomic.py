"""A kill in the middle of an update: the tree is the old or the new one, never a mix; the next run settles."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from duplex.vendor import TARGET, check, rollback, vendor
from duplex.vendor.record import read

from .conftest import REPO, live_tree, make_sdist

SCRIPT = ("import sys; from pathlib import Path; from duplex.vendor import vendor; "
          "vendor(Path(sys.argv[1]), sys.argv[2], from_path=Path(sys.argv[3]))")


def _spawn(root, tag, archive, **env):
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(root), tag, str(archive)], cwd=REPO,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture
def two_releases(bare_project, tmp_path):
    old = make_sdist(tmp_path / "moshi-0.2.12.tar.gz", "0.2.12")
    new = make_sdist(tmp_path / "moshi-0.2.13.tar.gz", "0.2.13",
                     extra={f"moshi/big{i}.py": "x = 1\n" * 2000 for i in range(40)})
    vendor(bare_project, "v0.2.12", from_path=old)
    old_tree = live_tree(bare_project)
    vendor(bare_project, "v0.2.13", from_path=new)
    new_tree = live_tree(bare_project)
    rollback(bare_project)
    assert live_tree(bare_project) == old_tree
    return bare_project, new, old_tree, new_tree


@pytest.mark.parametrize("point,exchange", [("journal", True), ("exchanged", True), ("journal", False),
                                            ("aside", False)])
def test_killed_at_each_step_then_settled(two_releases, point, exchange):
    root, new, old_tree, new_tree = two_releases
    env = {"DUPLEX_VENDOR_CRASH_AT": point}
    if not exchange:
        env["DUPLEX_VENDOR_NO_EXCHANGE"] = "1"
    proc = _spawn(root, "v0.2.13", new, **env)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    target = root / TARGET
    if target.exists():  # a kill between the two fallback renames is the one moment it is absent
        assert live_tree(root) in (old_tree, new_tree)
    else:
        assert (point, exchange) == ("aside", False)
    report = check(root)  # settles the interrupted swap first: rolled forward
    assert report.ok and live_tree(root) == new_tree
    assert read(target)[0]["version"] == "0.2.13"
    assert rollback(root).version == "0.2.12" and live_tree(root) == old_tree  # the snapshot survived


def test_random_kills_never_leave_a_mix(two_releases):
    root, new, old_tree, new_tree = two_releases
    rng = random.Random(8)
    for _ in range(6):
        proc = _spawn(root, "v0.2.13", new)
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert live_tree(root) in (old_tree, new_tree)
        vendor(root, "v0.2.12", from_path=new.with_name("moshi-0.2.12.tar.gz"))  # settles, then back to old
        assert live_tree(root) == old_tree and check(root).ok
    assert not list((root / ".duplex" / "vendor").glob("staging-*"))
