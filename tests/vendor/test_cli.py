"""`inv vendor-moshi` through the real CLI: the shipped tree verifies; a local edit is named."""

from __future__ import annotations

import shutil

from tests.conftest import ROOT, run_inv


def test_check_passes_on_the_shipped_tree():
    proc = run_inv("vendor-moshi", "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "moshi 0.2.13" in proc.stdout and "matches MOSHI_VERSION" in proc.stdout


def test_check_names_a_local_edit_and_exits_non_zero(tmp_path):
    shutil.copy(ROOT / "stack.toml", tmp_path / "stack.toml")
    shutil.copytree(ROOT / "third_party", tmp_path / "third_party")
    server = tmp_path / "third_party" / "moshi" / "moshi" / "server.py"
    server.write_text(server.read_text() + "\n# a local edit outside the patch queue\n")
    proc = run_inv("vendor-moshi", "--check", env={"DUPLEX_STACK": str(tmp_path / "stack.toml")})
    assert proc.returncode == 1
    assert "moshi/server.py" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_flags_must_name_one_action():
    proc = run_inv("vendor-moshi")
    assert proc.returncode == 2 and "exactly one of --tag" in proc.stderr
