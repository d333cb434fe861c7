"""`inv setup --all` on the shipped stack builds every env, asr-nemo (NeMo + CPU torch) included:
the torch index is unreachable here and not needed, since the locked torch build lies in pip's
find-links; the lhotse fix runs on the real NeMo install and is recorded."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_inv

pytestmark = pytest.mark.slow


def test_setup_all_builds_every_env_of_the_shipped_stack():
    proc = run_inv("setup", "--all", "--json", timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {row["env"]: row for row in json.loads(proc.stdout)}
    assert set(rows) == {"asr", "asr-nemo", "frontend", "moshi"}
    nemo = rows["asr-nemo"]
    assert nemo["torch"] == "cpu" and nemo["python"].startswith("3.11")
    assert any(f.startswith("lhotse: ") for f in nemo["fixes"]), nemo["fixes"]
    again = run_inv("setup", "--all", "--json", timeout=300)  # up to date: nothing rebuilt
    assert again.returncode == 0 and {r["state"] for r in json.loads(again.stdout)} == {"reused"}
