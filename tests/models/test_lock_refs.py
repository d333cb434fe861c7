"""The lock file format and repo references: pure data, no hub."""

from __future__ import annotations

import pytest

from duplex.models import LockError, ModelRefError
from duplex.models.cache import check_snapshot, git_blob_id, snapshot_dir
from duplex.models.lock import FileEntry, Lock, LockedModel, read_lock, render_lock, write_lock
from duplex.models.refs import parse_ref, parse_refs
from tests.support.tools import tool

SHA = "c" * 40


def _model(repo="acme/m", files=None):
    files = files or (FileEntry("config.json", 2, git_blob="b" * 40), FileEntry("model.bin", 10, sha256="f" * 64))
    return LockedModel(repo, "main", SHA, tuple(files))


def test_lock_round_trip_is_sorted_one_line_per_file(tmp_path):
    lock = Lock({"zeta/z": _model("zeta/z"), "acme/m": _model()})
    write_lock(tmp_path, lock)
    text = (tmp_path / "models.lock").read_text()
    assert text.index('[models."acme/m"]') < text.index('[models."zeta/z"]')
    assert '  { path = "config.json", size = 2, git_blob = "' + "b" * 40 + '" },' in text
    again = read_lock(tmp_path)
    assert again.models == lock.models and render_lock(again) == text


def test_lock_missing_is_empty_and_broken_is_explained(tmp_path):
    assert read_lock(tmp_path).models == {}
    (tmp_path / "models.lock").write_text("[models\n")
    with pytest.raises(LockError) as err:
        read_lock(tmp_path)
    assert "git checkout -- models.lock" in err.value.fix


def test_refs():
    assert parse_ref("Systran/faster-whisper-base").revision == "main"
    ref = parse_ref(f"acme/m@{SHA}")
    assert ref.is_commit and str(ref) == f"acme/m@{SHA}"
    assert parse_ref("acme/m@v1", revision="v2").revision == "v2"
    with pytest.raises(ModelRefError):
        parse_ref("not a repo")
    with pytest.raises(ModelRefError, match="two revisions"):
        parse_refs(["acme/m@v1", "acme/m@v2"])
    assert len(parse_refs(["acme/m", "acme/m"])) == 1


def test_snapshot_check_sees_missing_dangling_and_wrong_size(tmp_path):
    cache = tmp_path / "hub"
    model = _model(files=(FileEntry("a.txt", 3), FileEntry("b.txt", 3), FileEntry("c.txt", 3),
                          FileEntry("d.txt", 3)))
    snap = snapshot_dir(cache, "acme/m", SHA)
    snap.mkdir(parents=True)
    (snap / "a.txt").write_text("abc")
    (snap / "b.txt").symlink_to("../../blobs/gone")  # the blob was deleted
    (snap / "c.txt").write_text("abcdef")  # damaged: wrong size
    state = check_snapshot(cache, model)
    assert [f.path for f in state.present] == ["a.txt"]
    assert [f.path for f in state.missing] == ["b.txt", "d.txt"]
    assert [f.path for f in state.corrupt] == ["c.txt"] and not state.complete


def test_git_blob_id_matches_git(tmp_path):
    import subprocess
    path = tmp_path / "f"
    path.write_bytes(b"hello\n")
    out = subprocess.run([tool("git"), "hash-object", str(path)], capture_output=True, text=True, check=True)
    assert git_blob_id(path) == out.stdout.strip()
