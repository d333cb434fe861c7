"""Real moshi releases from the package index: 0.2.11 -> 0.2.12 (wheel-only) -> 0.2.13 -> rollback."""

from __future__ import annotations

import json
import shutil

import pytest

from duplex.vendor import TARGET, UnknownReleaseError, check, rollback, vendor
from duplex.vendor.record import read
from duplex.vendor.tree import manifest, tree_hash

from .conftest import live_tree

pytestmark = pytest.mark.slow


def test_update_chain_check_dry_run_and_exact_rollback(project):
    first = vendor(project, "v0.2.11")
    assert (first.action, first.version, first.sha256_verified) == ("vendored", "0.2.11", "index")
    tree_11 = live_tree(project)

    wheel = vendor(project, "v0.2.12")
    assert wheel.url.endswith("moshi-0.2.12-py3-none-any.whl")  # 0.2.12 has no sdist on the index
    assert any("no sdist" in n for n in wheel.notes)
    assert wheel.licences == ["LICENSE", "LICENSE.audiocraft"]  # from the wheel's dist-info/licenses
    assert wheel.previous["version"] == "0.2.11" and wheel.previous["tree"] == tree_11
    tree_12 = live_tree(project)

    dry = vendor(project, "v0.2.13", dry_run=True)
    assert dry.action == "dry-run" and dry.modified and "moshi/__init__.py" in dry.modified
    assert live_tree(project) == tree_12  # dry run touched nothing

    new = vendor(project, "v0.2.13")
    assert (new.action, new.modified) == ("vendored", dry.modified)
    assert new.tree == dry.tree == live_tree(project)
    tree_13 = live_tree(project)
    meta, files = read(project / TARGET)
    assert meta["tag"] == "v0.2.13" and meta["version"] == "0.2.13" and meta["source"] == "pypi"
    assert meta["url"].endswith("moshi-0.2.13.tar.gz") and meta["sha256_verified"] == "index"
    assert len(meta["archive_sha256"]) == 64 and meta["tree"] == tree_13 and meta["date"]
    assert meta["patches"] == [] and meta["previous"]["version"] == "0.2.12"
    # only the package and its licences: none of the sdist's clutter
    assert sorted(p.name for p in (project / TARGET).iterdir()) == ["LICENSE", "LICENSE.audiocraft",
                                                                   "MOSHI_VERSION", "moshi"]
    assert all(rel.startswith("moshi/") or rel.startswith("LICENSE") for rel in files)
    assert check(project).ok

    again = vendor(project, "v0.2.13")
    assert again.action == "unchanged"

    back = rollback(project)
    assert back.action == "rolled-back" and back.version == "0.2.12"
    assert live_tree(project) == tree_12 == back.tree  # exact restore, by tree hash
    meta, _ = read(project / TARGET)
    assert meta["rolled_back_from"]["version"] == "0.2.13" and meta["rolled_back_at"]
    assert check(project).ok
    # the tree rolled away from is the new snapshot: rolling back again is a redo
    assert rollback(project).version == "0.2.13" and live_tree(project) == tree_13
    assert json.loads(back.to_json())["action"] == "rolled-back"


def test_check_names_local_edits_missing_and_added_files(project):
    vendor(project, "v0.2.13")
    tree = project / TARGET
    (tree / "moshi" / "server.py").write_text("# edited by hand\n", encoding="utf-8")
    (tree / "moshi" / "client.py").unlink()
    (tree / "moshi" / "extra.py").write_text("x = 1\n")
    (tree / "moshi" / "__pycache__").mkdir(exist_ok=True)
    (tree / "moshi" / "__pycache__" / "server.cpython-311.pyc").write_bytes(b"ignored")
    report = check(project)
    assert not report.ok and report.exit_code == 1
    assert (report.modified, report.missing, report.added) == (["moshi/server.py"], ["moshi/client.py"],
                                                               ["moshi/extra.py"])
    assert "moshi/server.py" in report.summary() and json.loads(report.to_json())["exit_code"] == 1
    # re-vendoring replaces the edits, and says the snapshot keeps them
    redo = vendor(project, "v0.2.13")
    assert redo.action == "vendored" and any("local edits" in n for n in redo.notes)
    assert check(project).ok
    rollback(project)
    assert (tree / "moshi" / "server.py").read_text() == "# edited by hand\n"  # exactly what was there


def test_check_without_a_tree_or_record(project):
    assert not check(project).ok and "vendor-moshi" in check(project).problem
    vendor(project, "v0.2.13")
    (project / TARGET / "MOSHI_VERSION").unlink()
    assert "MOSHI_VERSION is missing" in check(project).problem


def test_unknown_tag_is_refused_and_tree_untouched(project):
    vendor(project, "v0.2.13")
    before = live_tree(project)
    with pytest.raises(UnknownReleaseError, match="9.9.9") as err:
        vendor(project, "v9.9.9")
    assert "0.2.13" in err.value.fix
    with pytest.raises(UnknownReleaseError, match="not a moshi release tag"):
        vendor(project, "latest")
    assert live_tree(project) == before


def test_network_path_downloads_and_verifies(bare_project):
    """No cache: the sdist comes over the network and is checked against the index's sha256."""
    report = vendor(bare_project, "v0.2.13")
    cached = list((bare_project / ".duplex" / "cache" / "vendor").glob("*/moshi-0.2.13.tar.gz"))
    assert len(cached) == 1 and cached[0].parent.name == report.archive_sha256
    assert report.sha256_verified == "index"
    assert (bare_project / ".duplex" / "cache" / "CACHEDIR.TAG").is_file()


def test_index_unreachable_falls_back_to_the_cache_and_says_so(project):
    vendor(project, "v0.2.13")  # makes sure the release is cached
    shutil.rmtree(project / TARGET)
    report = vendor(project, "v0.2.13", index_url="http://127.0.0.1:9/simple")
    assert report.sha256_verified == "cache" and any("unreachable" in n for n in report.notes)
    assert check(project).ok


def test_vendored_tree_in_the_repo_is_intact(root):
    """third_party/moshi in this repo matches its MOSHI_VERSION (what CI runs as `--check`)."""
    report = check(root)
    assert report.ok, report.summary()
    assert report.version == "0.2.13"
    assert tree_hash(manifest(root / TARGET)) == report.recorded_tree


def test_index_unreachable_and_nothing_cached_falls_back_to_pip(bare_project):
    report = vendor(bare_project, "v0.2.13", index_url="http://127.0.0.1:9/simple")
    assert report.sha256_verified == "pip" and report.version == "0.2.13"
    assert report.archive_sha256 == "f0c83aea037b1e2e3aefe5f9c2e77a0d6b5ec9b7d4e986e259990f6636706eac"
    assert check(bare_project).ok
