"""The moshi image, built for real from the vendored tree and the CPU lock: what can run without weights.

No GPU and no moshi weights here, so the server cannot load a model. What runs: the vendored package
imports from /opt/moshi as the non-root user, `python -m moshi.server --help`, upstream's own tiny-LM
forward test (tests/test_lm.py + its reference outputs, from the 0.2.13 sdist) on the locked CPU
torch, an Opus round trip through sphn, libopus present, and the server start failing only at the
missing checkpoint.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from duplex.envs.sources import find_links
from duplex.vendor import TARGET, check, vendor
from duplex.vendor.record import read
from tests.support.tools import tool

from .conftest import REPO, SHARED_CACHE

pytestmark = [pytest.mark.docker, pytest.mark.slow]
IMAGE = "duplex/moshi:test"
BASE_IMAGE = os.environ.get("DUPLEX_BASE_IMAGE", "duplex/python:3.11-bookworm")
LOCK = REPO / "envs" / "moshi" / "requirements.cpu.lock"


def wheelhouse(lock: Path, dest: Path) -> list[Path]:
    """Link into ``dest`` the wheels from pip's find-links whose sha256 the lock pins (the CPU torch
    here: the PyTorch CPU index is unreachable, the wheel lies on disk)."""
    pinned = set(re.findall(r"--hash=sha256:([0-9a-f]{64})", lock.read_text()))
    dest.mkdir(parents=True, exist_ok=True)
    got = []
    for link in find_links():
        folder = Path(link.removeprefix("file://"))
        for wheel in sorted(folder.glob("*.whl")) if folder.is_dir() else []:
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            if digest in pinned:
                try:
                    os.link(wheel, dest / wheel.name)
                except OSError:
                    shutil.copy2(wheel, dest / wheel.name)
                got.append(wheel)
    return got


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> str:
    assert check(REPO).ok, "third_party/moshi differs from MOSHI_VERSION; run `inv vendor-moshi --check`"
    ctx = tmp_path_factory.mktemp("moshi-context")
    for rel in ("dockerfiles/moshi.Dockerfile", "envs/moshi", "third_party/moshi", "duplex/standalone/wscheck.py",
                "duplex/standalone/moshi_smoke.py", "servers/__init__.py", "servers/envvars.py", "servers/origins.py"):
        src = REPO / rel
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, ctx / rel)
    build = ctx / ".duplex" / "build"
    build.mkdir(parents=True)
    ca = os.environ.get("SSL_CERT_FILE", "")
    (build / "ca.pem").write_bytes(Path(ca).read_bytes() if ca and Path(ca).is_file() else b"")
    wheelhouse(LOCK, build / "wheels")
    (ctx / ".dockerignore").write_text(".duplex\n!.duplex/build/ca.pem\n!.duplex/build/wheels\n")
    started = time.monotonic()
    proc = subprocess.run([tool("docker"), "build", "-q", "-f", "dockerfiles/moshi.Dockerfile",
                           "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "--build-arg", "TORCH_INDEX=",
                           "-t", IMAGE, "."], cwd=ctx, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"moshi image built in {time.monotonic() - started:.0f}s")
    return IMAGE


def _run(image, *args, env=(), volumes=(), timeout=300):
    cmd = [tool("docker"), "run", "--rm", "--network", "none"]
    for item in env:
        cmd += ["-e", item]
    for item in volumes:
        cmd += ["-v", item]
    return subprocess.run([*cmd, image, *args], capture_output=True, text=True, timeout=timeout)


def test_vendored_moshi_imports_as_non_root(image):
    version = read(REPO / TARGET)[0]["version"]
    out = _run(image, "python", "-c", "import os, moshi, torch; print(os.getuid(), moshi.__version__, "
                                      "moshi.__file__, torch.__version__)")
    assert out.returncode == 0, out.stderr
    uid, got, where, torch_version = out.stdout.split()
    assert (uid, got, where) == ("1000", version, "/opt/moshi/moshi/__init__.py")
    assert torch_version.endswith("+cpu")
    libs = _run(image, "sh", "-c", "ls /usr/lib/*/libopus.so.0")
    assert libs.returncode == 0, "libopus missing from the image"


def test_server_cli_and_missing_weights(image):
    helped = _run(image, "python", "-m", "moshi.server", "--help")
    assert helped.returncode == 0 and "--hf-repo" in helped.stdout and "--ssl" in helped.stdout
    # Offline with an empty cache: it gets as far as fetching the checkpoint, and says so.
    started = _run(image, "python", "-m", "moshi.server", "--device", "cpu", env=["HF_HUB_OFFLINE=1"], timeout=120)
    assert started.returncode != 0 and "LocalEntryNotFoundError" in started.stderr


def test_upstream_lm_test_and_opus_round_trip_on_cpu(image, project, tmp_path):
    # upstream's tests ship in the sdist only: fetch (cached) the vendored release's sdist for them
    report = vendor(project, "v" + read(REPO / TARGET)[0]["version"], dry_run=True)
    archive = next(SHARED_CACHE.glob(f"{report.archive_sha256}/*.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "sdist", filter="data")
    tests = next((tmp_path / "sdist").glob("moshi-*/tests"))
    script = ("import sys; sys.path.insert(0, '/tests'); import test_lm as t; t.test_init(); t.test_forward()\n"
              "import numpy as np, sphn\n"
              "pcm = np.sin(np.arange(24000) / 24000 * 2 * np.pi * 440).astype(np.float32)\n"
              "w, r = sphn.OpusStreamWriter(24000), sphn.OpusStreamReader(24000)\n"
              "data = b''.join(w.append_pcm(pcm[i:i + 1920]) for i in range(0, 24000 - 1920, 1920))\n"
              "out = r.append_bytes(data)\n"
              "print('ok', len(data), len(out))")
    # moshi compiles some kernels with torch.compile, which needs a C++ compiler; the image has none.
    out = _run(image, "python", "-c", script, env=["NO_TORCH_COMPILE=1"], volumes=[f"{tests}:/tests:ro"])
    assert out.returncode == 0, out.stderr[-3000:]
    ok, sent, decoded = out.stdout.split()[-3:]
    assert ok == "ok" and int(sent) > 0 and int(decoded) > 0
