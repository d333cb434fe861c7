"""disk and models: a real cache layout, real statvfs (a small tmpfs when this user may mount one), sizes."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from checks import disk, models
from checks.hub import Answer
from checks.models import GIB, ModelFacts

from .conftest import by_name, make

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fake_cache(hub_dir, repo="org/small", files=None):
    """The huggingface_hub cache layout: blobs, refs/main, snapshots/<commit> with links to blobs."""
    folder = hub_dir / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(COMMIT)
    snap = folder / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    (folder / "blobs").mkdir()
    for i, (name, size) in enumerate((files or {"config.json": 100, "model.safetensors": 4096}).items()):
        blob = folder / "blobs" / f"blob{i}"
        blob.write_bytes(b"x" * size)
        (snap / name).symlink_to(os.path.relpath(blob, snap))
    return snap


def test_cached_model_is_found_with_its_sizes(tmp_path):
    _, _, ctx = make(tmp_path, api_models='["org/small"]', environ={"HF_HUB_OFFLINE": "1"})
    fake_cache(tmp_path / "hf" / "hub")
    facts = models.gather(["org/small"], ctx.environ, {}, tmp_path / "memo.json")
    fact = facts["org/small"]
    assert fact.cached and fact.download_bytes == 4196 and fact.weights_bytes == 4096 and fact.source == "cache"
    assert models.check(ctx, facts)[0].status == "pass"
    assert json.loads((tmp_path / "memo.json").read_text())["org/small"]["weights_bytes"] == 4096


def test_revision_pins_are_honoured(tmp_path):
    hub_dir = tmp_path / "hub"
    fake_cache(hub_dir)
    assert models.snapshot_dir(hub_dir, f"org/small@{COMMIT}") is not None
    assert models.snapshot_dir(hub_dir, "org/small@main") is not None
    assert models.snapshot_dir(hub_dir, "org/small@" + "f" * 40) is None
    assert models.snapshot_dir(hub_dir, "org/other") is None


def test_missing_model_warns_in_preflight_and_fails_before_a_run(tmp_path):
    _, _, ctx = make(tmp_path, api_models='["org/absent"]')
    facts = {"org/absent": ModelFacts("org/absent", False, 3 * GIB, 3 * GIB, "hub")}
    result = models.check(ctx, facts)[0]
    assert result.status == "warn" and "3.0 GiB to download" in result.detail
    assert result.fix == "inv prefetch --repo org/absent"
    _, _, run_ctx = make(tmp_path / "r", api_models='["org/absent"]', for_run=True)
    assert models.check(run_ctx, facts)[0].status == "fail"
    _, _, offline = make(tmp_path / "o", api_models='["org/absent"]', environ={"HF_HUB_OFFLINE": "1"})
    assert models.check(offline, facts)[0].status == "fail"


def test_sizes_from_hub_metadata_and_the_memo(tmp_path):
    info = {"siblings": [{"rfilename": "config.json", "size": 10}, {"rfilename": "model.safetensors", "size": 990},
                         {"rfilename": "pytorch_model.bin", "size": 1000}],
            "safetensors": {"parameters": {"BF16": 7_000_000_000, "F32": 1000}}}
    assert models.hub_sizes(info) == (2000, 14_000_004_000)
    assert models.hub_sizes({"siblings": info["siblings"]}) == (2000, 990)  # safetensors files, not .bin too
    env = {"HF_HOME": str(tmp_path / "hf")}
    memo = tmp_path / "memo.json"
    first = models.gather(["org/m"], env, {"org/m": Answer(200, info)}, memo)["org/m"]
    assert first.source == "hub" and not first.cached
    again = models.gather(["org/m"], env, {"org/m": Answer(None, None, "timed out")}, memo)["org/m"]
    assert again.source == "memo" and again.weights_bytes == first.weights_bytes
    assert models.gather(["org/n"], env, {}, memo)["org/n"].source == "unknown"


def test_disk_on_the_real_filesystem(tmp_path):
    facts = disk.probe_disk(tmp_path / "not" / "made" / "yet")
    assert facts.path == str(tmp_path) and facts.free > 0
    st = os.statvfs(tmp_path)
    assert abs(facts.free - st.f_bavail * st.f_frsize) < 64 * 1024 * 1024
    _, _, ctx = make(tmp_path, api_models='["org/a", "org/b"]')
    fits = disk.check(ctx, facts, {"org/a": ModelFacts("org/a", False, GIB, GIB, "hub"),
                                   "org/b": ModelFacts("org/b", True, 5 * GIB, 5 * GIB, "cache")})
    assert fits.status == "pass" and "1.0 GiB to download" in fits.detail
    huge = disk.check(ctx, facts, {"org/a": ModelFacts("org/a", False, facts.free + GIB, None, "hub")})
    assert huge.status == "fail" and "HF_HOME" in huge.fix
    unknown = disk.check(ctx, facts, {"org/a": ModelFacts("org/a", False)})
    assert unknown.status == "warn" and "org/a" in unknown.detail


@pytest.fixture
def small_fs(tmp_path):
    """A real 64 MiB filesystem (tmpfs); root can mount one here, as CI does."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)], capture_output=True, text=True)
    assert proc.returncode == 0, f"cannot mount a tmpfs (needs root): {proc.stderr}"
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


def test_a_small_filesystem_fails_a_big_download(small_fs, tmp_path):
    _, _, ctx = make(tmp_path / "p", api_models='["org/a"]', environ={"HF_HOME": str(small_fs / "hf")})
    facts = disk.probe_disk(models.hub_cache(ctx.environ))
    assert facts.path == str(small_fs) and 60 * 2**20 < facts.total <= 64 * 2**20
    result = disk.check(ctx, facts, {"org/a": ModelFacts("org/a", False, 100 * 2**20, None, "hub")})
    assert result.status == "fail" and "100 MiB" not in result.detail and str(small_fs) in result.detail
    tight = disk.check(ctx, facts, {"org/a": ModelFacts("org/a", False, 40 * 2**20, None, "hub")})
    assert tight.status == "warn" and "little room" in tight.detail
    assert by_name([result])["disk"].fix.startswith("free space")
