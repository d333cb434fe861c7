"""`inv vendor-moshi` through the real CLI: the shipped tree verifies; a local edit is named."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import ROOT, run_inv

from .conftest import live_tree, make_sdist


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


def _repo_copy(tmp_path):
    shutil.copy(ROOT / "stack.toml", tmp_path / "stack.toml")
    shutil.copytree(ROOT / "third_party", tmp_path / "third_party")
    return {"DUPLEX_STACK": str(tmp_path / "stack.toml")}


def _inv_json(*args, env):
    proc = run_inv("vendor-moshi", *args, "--json", env=env, timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_from_sdist_check_dry_run_and_rollback_through_the_cli(tmp_path, moshi_sdist):
    """On a copy of the repo: the real 0.2.13 sdist from --from rebuilds the shipped tree exactly;
    a dry run of another release touches nothing; the update it shows is undone by --rollback."""
    repo = tmp_path / "repo"
    repo.mkdir()
    env = _repo_copy(repo)
    shipped = (repo / "third_party" / "moshi" / "MOSHI_VERSION").read_text()
    shipped_tree = live_tree(repo)

    local = _inv_json("--tag", "v0.2.13", "--from", str(moshi_sdist), env=env)
    assert (local["action"], local["source"], local["version"]) == ("vendored", "local", "0.2.13")
    assert f'archive_sha256 = "{local["archive_sha256"]}"' in shipped  # the very release shipped
    assert local["tree"] == shipped_tree and not (local["added"] or local["removed"] or local["modified"])
    meta = (repo / "third_party" / "moshi" / "MOSHI_VERSION").read_text()
    assert 'source = "local"' in meta and moshi_sdist.resolve().as_uri() in meta

    check = _inv_json("--check", env=env)
    assert check["ok"] and check["exit_code"] == 0 and check["actual_tree"] == shipped_tree

    other = make_sdist(tmp_path / "moshi-0.2.14.tar.gz", "0.2.14")  # a tiny fixture release
    before = (repo / "third_party" / "moshi" / "MOSHI_VERSION").read_bytes()
    # The shipped patch queue was made for 0.2.13's server.py: on the fixture release it no longer
    # applies, and the update stops there, naming the patch, with nothing changed.
    stuck = run_inv("vendor-moshi", "--tag", "v0.2.14", "--from", str(other), "--dry-run", env=env)
    assert stuck.returncode == 1 and "0001-warmup-on-cpu.patch no longer applies" in stuck.stderr
    assert "Traceback" not in stuck.stderr and live_tree(repo) == shipped_tree
    patches, aside = repo / "third_party" / "patches", tmp_path / "patches-aside"
    shutil.move(patches, aside)  # what docs/vendoring.md says to do when a release no longer needs a patch
    dry = _inv_json("--tag", "v0.2.14", "--from", str(other), "--dry-run", env=env)
    assert dry["action"] == "dry-run" and "moshi/models/lm.py" in dry["removed"]
    assert "moshi/__init__.py" in dry["modified"] and dry["tree"] != shipped_tree
    assert live_tree(repo) == shipped_tree
    assert (repo / "third_party" / "moshi" / "MOSHI_VERSION").read_bytes() == before
    text = run_inv("vendor-moshi", "--tag", "v0.2.14", "--from", str(other), "--dry-run", env=env).stdout
    assert "dry run: vendoring moshi 0.2.14" in text and "- moshi/models/lm.py" in text

    new = _inv_json("--tag", "v0.2.14", "--from", str(other), env=env)
    assert new["action"] == "vendored" and new["tree"] == dry["tree"] == live_tree(repo)
    assert new["previous"]["version"] == "0.2.13"

    shutil.move(aside, patches)
    back = _inv_json("--rollback", env=env)
    assert (back["action"], back["version"], back["tree"]) == ("rolled-back", "0.2.13", shipped_tree)
    assert back["previous"]["version"] == "0.2.14" and live_tree(repo) == shipped_tree
    assert "rolled_back_from" in (repo / "third_party" / "moshi" / "MOSHI_VERSION").read_text()
    proc = run_inv("vendor-moshi", "--check", env=env)
    assert proc.returncode == 0 and "moshi 0.2.13 (v0.2.13) matches MOSHI_VERSION" in proc.stdout


def test_a_bad_from_path_is_a_clear_error(tmp_path):
    env = _repo_copy(tmp_path)
    before = live_tree(tmp_path)
    proc = run_inv("vendor-moshi", "--tag", "v0.2.13", "--from", str(tmp_path / "nope.tar.gz"), env=env)
    assert proc.returncode == 1 and "no such file or folder" in proc.stderr and "fix:" in proc.stderr
    assert "Traceback" not in proc.stderr and live_tree(tmp_path) == before
