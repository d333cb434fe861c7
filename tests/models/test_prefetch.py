"""Pinning, updates, errors and the hub going away, against olah (and a fake hub for auth)."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from duplex.models import (
    DiskFullError,
    GatedModelError,
    HubUnreachableError,
    ModelNotFoundError,
    NullProgress,
    PinGoneError,
    TokenRejectedError,
    missing,
    pinned_revision,
    prefetch,
)
from duplex.models.cache import repo_folder, snapshot_dir
from duplex.models.lock import FileEntry, Lock, LockedModel, read_lock, write_lock
from tests.models.conftest import TINY, fill
from tests.support.hub import GATED, GOOD_TOKEN, FakeHub, Mirror

ROOT = Path(__file__).resolve().parents[2]


def _run(root, repos, hf_home, endpoint, **kw):
    return prefetch(root, repos, hf_home=hf_home, token_present=bool(os.environ.get("HF_TOKEN")),
                    endpoint=endpoint, **kw)


def test_lock_pins_until_update(hub, project, tmp_path, dead_endpoint):
    repo = hub.mirror.repo("acme/moving")
    first = repo.commit({"config.json": b'{"v": 1}\n'})
    home = tmp_path / "hf"
    assert _run(project, ["acme/moving"], home, hub.endpoint).models[0].commit == first
    second = repo.commit({"config.json": b'{"v": 2}\n', "extra.txt": b"new\n"})
    again = _run(project, ["acme/moving"], home, dead_endpoint)  # pinned: the hub is not asked
    assert (again.models[0].commit, again.network) == (first, False)
    moved = _run(project, ["acme/moving"], home, hub.endpoint, update=True)
    assert (moved.models[0].commit, moved.models[0].status) == (second, "downloaded")
    assert [f.path for f in moved.models[0].fetch] == ["config.json", "extra.txt"]
    assert pinned_revision(project, "acme/moving") == second
    text = (project / "models.lock").read_text()
    assert second in text and first not in text and 'path = "extra.txt"' in text


def test_unknown_repo_and_revision(hub, project, tmp_path):
    with pytest.raises(ModelNotFoundError, match="acme/nope: no such model") as err:
        _run(project, ["acme/nope"], tmp_path / "hf", hub.endpoint)
    assert "check the name" in err.value.fix
    with pytest.raises(ModelNotFoundError, match="has no revision 'v9'"):
        _run(project, [f"{TINY}@v9"], tmp_path / "hf", hub.endpoint)
    assert not (project / "models.lock").exists()


def test_disk_full_is_refused_before_downloading(hub, project, tmp_path):
    home = tmp_path / "hf"
    with pytest.raises(DiskFullError) as err:
        _run(project, [TINY], home, hub.endpoint, disk_free=lambda path: 1_000_000)
    assert "2.1 MB to download, 1.0 MB free" in str(err.value)
    assert "HF_HOME" in err.value.fix
    assert not list((home / "hub").glob("*/blobs/*")) and not (project / "models.lock").exists()


def test_disk_filling_up_during_the_download(hub, project, small_disk):
    """A real 80 MB filesystem: the up-front check passes (60 MB to fetch), then a second writer
    takes the space while big.bin downloads. The kernel's ENOSPC must end as DiskFullError, with
    no half file in the cache and models.lock as it was."""
    disk = small_disk("80m")
    home = disk / "hf"
    _run(project, [TINY], home, hub.endpoint)  # 2 MB: fits, and pins something to keep
    lock_before = (project / "models.lock").read_text()

    class SecondWriter(NullProgress):
        filler = None

        def advance(self, repo, entry, n):
            if entry.path == "big.bin" and self.filler is None:
                self.filler = fill(disk, leave=1 << 20)  # 1 MB left, 59 MB of big.bin to go

    writer = SecondWriter()
    with pytest.raises(DiskFullError) as err:
        _run(project, ["acme/chunky"], home, hub.endpoint, progress=writer)
    assert writer.filler is not None  # the download really was under way
    text = err.value.render()
    assert "filled up while downloading acme/chunky/big.bin (62.9 MB)" in text
    assert "partial file was removed" in text and "free at least 62.9 MB" in err.value.fix
    assert "HF_HOME" in err.value.fix and "Traceback" not in text
    assert not list(home.rglob("*.incomplete"))  # no half file, under any name
    blobs = repo_folder(home / "hub", "acme/chunky") / "blobs"
    assert all(b.stat().st_size < 1 << 20 for b in blobs.iterdir())
    assert not (snapshot_dir(home / "hub", "acme/chunky", hub.chunky) / "big.bin").exists()
    assert (project / "models.lock").read_text() == lock_before
    assert missing(project, ["acme/chunky", TINY], home) == ["acme/chunky"]

    writer.filler.unlink()  # space freed: the re-run completes from a consistent cache
    again = _run(project, ["acme/chunky"], home, hub.endpoint)
    assert "big.bin" in [f.path for f in again.models[0].fetch]
    assert missing(project, ["acme/chunky", TINY], home) == []


def test_verify_finds_damage_that_sizes_miss(hub, project, tmp_path):
    home = tmp_path / "hf"
    _run(project, [TINY], home, hub.endpoint)
    blob = (snapshot_dir(home / "hub", TINY, hub.tiny) / "weights.bin").resolve()
    data = bytearray(blob.read_bytes())
    data[1000] ^= 0xFF  # same size, one byte flipped
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    assert _run(project, [TINY], home, hub.endpoint).models[0].status == "cached"  # sizes only
    checked = _run(project, [TINY], home, hub.endpoint, verify=True)
    assert checked.models[0].damaged == ["weights.bin"] and checked.models[0].status == "repaired"
    assert _run(project, [TINY], home, hub.endpoint, verify=True).models[0].status == "cached"


def test_stopped_hub(tmp_path, project):
    """olah really stopped: pinned models still 'prefetch' (nothing to do); the rest is a clear error."""
    mirror = Mirror(tmp_path / "mirror")
    mirror.repo("acme/small").commit({"config.json": b"{}\n"})
    home = tmp_path / "hf"
    with mirror:
        endpoint = mirror.endpoint
        _run(project, ["acme/small"], home, endpoint)
    assert _run(project, ["acme/small"], home, endpoint).models[0].status == "cached"
    with pytest.raises(HubUnreachableError, match="did not answer") as err:
        _run(project, ["acme/small"], home, endpoint, update=True)
    assert "cached at its pinned commit" in err.value.fix and "can still start offline" in err.value.fix
    with pytest.raises(HubUnreachableError) as err:
        _run(project, ["acme/other"], home, endpoint)
    assert "offline" not in err.value.fix
    assert missing(project, ["acme/small", "acme/other"], home) == ["acme/other"]


def test_hub_offline_variable_is_named(hub, project, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnreachableError, match="HF_HUB_OFFLINE=1 is set"):
        _run(project, [TINY], tmp_path / "hf", hub.endpoint)


def test_interrupted_prefetch_fetches_only_what_is_missing(hub, project, tmp_path):
    """SIGKILL in the middle of the 60 MB file; the re-run fetches that file and nothing else."""
    home = tmp_path / "hf"
    child = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from duplex.models import prefetch, NullProgress
        class Tell(NullProgress):
            seen = 0
            def advance(self, repo, entry, n):
                self.seen += n
                if entry.path == "big.bin" and self.seen > 5_000_000:
                    print("midway", flush=True)
                    import time; time.sleep(30)
        prefetch({str(project)!r}, ["acme/chunky"], hf_home={str(home)!r}, token_present=False,
                 endpoint={hub.endpoint!r}, progress=Tell(), max_workers=2)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "midway"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    snap = snapshot_dir(home / "hub", "acme/chunky", hub.chunky)
    assert (snap / "config.json").is_file() and not (snap / "big.bin").exists()  # no half file
    assert missing(project, ["acme/chunky"], home) == ["acme/chunky"]  # and no lock was written
    report = _run(project, ["acme/chunky"], home, hub.endpoint)
    assert [f.path for f in report.models[0].fetch] == ["big.bin"]
    assert report.downloaded_bytes == 60 << 20
    assert missing(project, ["acme/chunky"], home) == []


# --- what olah cannot serve: gated repos and rejected tokens (a fake hub with the hub's answers) ---

def test_gated_without_token(project, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with FakeHub() as fake, pytest.raises(GatedModelError) as err:
        _run(project, [GATED], tmp_path / "hf", fake.endpoint)
    assert "no token is set: no HF_TOKEN, no .env token, no `hf auth login`" in str(err.value)
    assert f"{fake.endpoint}/{GATED}" in err.value.fix and "accept the licence" in err.value.fix
    assert f"{fake.endpoint}/settings/tokens" in err.value.fix and "inv setup --hf-token" in err.value.fix


def test_gated_with_a_token_that_lacks_the_licence(project, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", GOOD_TOKEN)
    with FakeHub() as fake, pytest.raises(GatedModelError) as err:
        _run(project, [GATED], tmp_path / "hf", fake.endpoint)
    assert "not been granted access" in str(err.value) and "accept the licence" in err.value.fix
    assert "(token from HF_TOKEN)" in str(err.value)  # set in the environment, not saved in .env
    assert GOOD_TOKEN not in err.value.render()


def test_rejected_token_is_not_replaced_by_the_cache(project, tmp_path, monkeypatch):
    home = tmp_path / "hf"
    entry = FileEntry("config.json", 2, git_blob="a" * 40)
    write_lock(project, Lock({GATED: LockedModel(GATED, "main", "0" * 40, (entry,))}))
    snap = snapshot_dir(home / "hub", GATED, "0" * 40)
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    monkeypatch.setenv("HF_TOKEN", "hf_revoked_token_123")
    with FakeHub() as fake:
        # Pinned and cached: nothing asks the hub, so there is no token to reject.
        assert _run(project, [GATED], home, fake.endpoint).models[0].status == "cached"
        with pytest.raises(TokenRejectedError) as err:
            _run(project, [GATED], home, fake.endpoint, update=True)
    assert "rejected the token" in str(err.value) and "settings/tokens" in err.value.fix
    assert "hf_revoked_token_123" not in err.value.render()
    assert read_lock(project).get(GATED).commit == "0" * 40


def test_missing_repo_on_the_real_hub_shape(project, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with FakeHub() as fake, pytest.raises(ModelNotFoundError, match="no such model"):
        _run(project, ["acme/absent"], tmp_path / "hf", fake.endpoint)


def test_pinned_commit_the_hub_lost_is_named_in_seconds(hub, project, tmp_path):
    """A force-pushed repo: models.lock pins a commit the hub no longer has. One API call says so,
    instead of the download client's retries ending in "cannot find ... in the local cache"."""
    repo = hub.mirror.repo("acme/forced")
    repo.commit({"config.json": b'{"v": 1}\n'})
    _run(project, ["acme/forced"], tmp_path / "hf", hub.endpoint)
    lock = read_lock(project)
    gone = "0123456789abcdef0123456789abcdef01234567"
    lock.models["acme/forced"] = dataclasses.replace(lock.models["acme/forced"], commit=gone)
    write_lock(project, lock)
    before = (project / "models.lock").read_text()
    started = time.monotonic()
    with pytest.raises(PinGoneError) as err:
        _run(project, ["acme/forced"], tmp_path / "fresh", hub.endpoint)  # a new machine: nothing cached
    assert time.monotonic() - started < 5
    assert str(err.value).startswith("models.lock pins acme/forced at 0123456789ab, a commit")
    assert "no longer has" in str(err.value)
    assert "`inv prefetch --repo acme/forced --update`" in err.value.fix
    assert (project / "models.lock").read_text() == before
    assert not list((tmp_path / "fresh").glob("hub/*/blobs/*"))
    # the fix it names works: the pin moves to what the hub has now
    moved = _run(project, ["acme/forced"], tmp_path / "fresh", hub.endpoint, update=True)
    assert moved.models[0].commit == repo.commits[-1]
