"""The real Whisper base model through a real HF-compatible mirror (olah), into a temp HF_HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from duplex.models import missing, pinned_revision, prefetch
from duplex.models.cache import file_sha256, git_blob_id, snapshot_dir
from duplex.models.lock import read_lock
from tests.models.conftest import WHISPER
from tests.support.whisper_model import whisper_base_dir

pytestmark = pytest.mark.slow


def test_cold_prefetch_pins_commit_sizes_and_hashes(hub, whisper_cache):
    root, hf_home, report = whisper_cache
    model = report.models[0]
    assert (model.status, model.commit, model.source) == ("downloaded", hub.whisper, "hub")
    assert report.downloaded_bytes == model.size > 145_000_000
    locked = read_lock(root).get(WHISPER)
    assert locked.commit == hub.whisper and locked.revision == "main"
    files = {f.path: f for f in locked.files}
    assert set(files) == {"README.md", "config.json", "model.bin", "tokenizer.json", "vocabulary.txt"}
    source = whisper_base_dir()
    for name in ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt"):
        assert files[name].size == (source / name).stat().st_size
    # Large files carry the hub's LFS sha256; small ones the git blob id. Both match the content.
    assert files["model.bin"].sha256 == file_sha256(source / "model.bin")
    assert files["vocabulary.txt"].git_blob == git_blob_id(source / "vocabulary.txt")
    snap = snapshot_dir(hf_home / "hub", WHISPER, hub.whisper)
    assert (snap / "model.bin").stat().st_size == files["model.bin"].size
    assert (hf_home / "hub" / f"models--{WHISPER.replace('/', '--')}" / "refs" / "main").read_text() == hub.whisper
    json.dumps(report.to_json())  # --json output is serialisable


def test_rerun_is_a_fast_no_op_without_network(hub, whisper_cache, dead_endpoint):
    root, hf_home, _ = whisper_cache
    before = (root / "models.lock").stat().st_mtime_ns
    started = time.perf_counter()
    # Pointed at a port where nothing listens: a cached, pinned model must not need the hub at all.
    report = prefetch(root, [WHISPER], hf_home=hf_home, token_present=False, endpoint=dead_endpoint)
    elapsed = time.perf_counter() - started
    print(f"\nwarm prefetch of {WHISPER}: {elapsed * 1000:.1f} ms")
    assert report.models[0].status == "cached" and report.network is False
    assert report.downloaded_bytes == 0
    assert elapsed < 1.0
    assert (root / "models.lock").stat().st_mtime_ns == before  # an unchanged lock is not rewritten


def test_pinned_revision_and_missing(hub, whisper_cache, tmp_path):
    root, hf_home, _ = whisper_cache
    assert pinned_revision(root, WHISPER) == hub.whisper
    assert pinned_revision(root, "acme/unknown") is None
    assert pinned_revision(root, f"{WHISPER}@v2") is None  # the lock pins main, not v2
    assert missing(root, [WHISPER], hf_home) == []
    assert missing(root, [WHISPER, "acme/unknown"], hf_home) == ["acme/unknown"]
    assert missing(root, [WHISPER], tmp_path / "empty-home") == [WHISPER]


def _offline_load(hf_home, repo: str, revision: str) -> dict:
    """What the ASR server does: HF_HUB_OFFLINE=1 and local_files_only at the pinned revision."""
    code = ("import json, os, sys; from huggingface_hub import snapshot_download; "
            "p = snapshot_download(sys.argv[1], revision=sys.argv[2], local_files_only=True); "
            "print(json.dumps({'path': p, 'files': sorted(os.listdir(p))}))")
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1",
           "HF_ENDPOINT": "http://127.0.0.1:9"}
    env.pop("HF_HUB_CACHE", None)
    out = subprocess.run([sys.executable, "-c", code, repo, revision], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_servers_find_the_pinned_snapshot_offline(hub, whisper_cache):
    root, hf_home, _ = whisper_cache
    found = _offline_load(hf_home, WHISPER, pinned_revision(root, WHISPER))
    assert found["files"] == ["README.md", "config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]
    assert found["path"].endswith(hub.whisper)


def test_pin_an_older_commit(hub, whisper_copy):
    root, hf_home = whisper_copy
    report = prefetch(root, [f"{WHISPER}@{hub.whisper_old}"], hf_home=hf_home, token_present=False,
                      endpoint=hub.endpoint)
    model = report.models[0]
    assert (model.commit, model.files) == (hub.whisper_old, 2)
    # Both files of the old commit have the same content as at main: their blobs are linked, not
    # downloaded again (huggingface_hub's blob sharing, planned ahead so the byte count is true).
    assert model.fetch == [] and [f.path for f in model.link] == ["README.md", "config.json"]
    assert (model.status, report.downloaded_bytes) == ("linked", 0)
    assert pinned_revision(root, f"{WHISPER}@{hub.whisper_old}") == hub.whisper_old
    assert read_lock(root).get(WHISPER).revision == hub.whisper_old
    assert _offline_load(hf_home, WHISPER, hub.whisper_old)["files"] == ["README.md", "config.json"]


def test_partial_snapshot_is_detected_and_repaired(hub, whisper_copy):
    root, hf_home = whisper_copy
    snap = snapshot_dir(hf_home / "hub", WHISPER, hub.whisper)
    (snap / "vocabulary.txt").resolve().unlink()  # the blob goes; the snapshot link dangles
    assert missing(root, [WHISPER], hf_home) == [WHISPER]
    dry = prefetch(root, [WHISPER], hf_home=hf_home, token_present=False, endpoint=hub.endpoint,
                   dry_run=True)
    assert [f.path for f in dry.models[0].fetch] == ["vocabulary.txt"] and dry.models[0].status == "planned"
    report = prefetch(root, [WHISPER], hf_home=hf_home, token_present=False, endpoint=hub.endpoint)
    assert report.models[0].status == "repaired"
    assert report.downloaded_bytes == (whisper_base_dir() / "vocabulary.txt").stat().st_size
    assert missing(root, [WHISPER], hf_home) == []
    assert git_blob_id(snap / "vocabulary.txt") == git_blob_id(whisper_base_dir() / "vocabulary.txt")
