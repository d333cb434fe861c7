"""One olah mirror for the session, holding the real Whisper base model and a few small repos."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from duplex.models import prefetch
from tests.support.hub import Mirror
from tests.support.net import free_port
from tests.support.whisper_model import whisper_base_dir

WHISPER = "Systran/faster-whisper-base"
TINY = "acme/tiny"
README = b"---\nlicense: mit\nlibrary_name: ctranslate2\n---\n# Whisper base (CTranslate2)\n"


@dataclass
class Hub:
    mirror: Mirror
    whisper_old: str  # README + config.json only
    whisper: str  # the whole model: main
    tiny: str
    chunky: str

    @property
    def endpoint(self) -> str:
        return self.mirror.endpoint


@pytest.fixture(scope="session")
def hub(tmp_path_factory) -> Hub:
    base = tmp_path_factory.mktemp("hub")
    mirror = Mirror(base)
    model = whisper_base_dir()
    repo = mirror.repo(WHISPER)
    old = repo.commit({"README.md": README, "config.json": (model / "config.json").read_bytes()},
                      "config first")
    new = repo.commit({name: model / name for name in ("config.json", "model.bin", "tokenizer.json",
                                                       "vocabulary.txt")}, "CTranslate2 weights")
    data = base / "data"
    data.mkdir()
    (data / "weights.bin").write_bytes(os.urandom(2 << 20))
    tiny = mirror.repo(TINY).commit({"config.json": b'{"dim": 8}\n', "weights.bin": data / "weights.bin"})
    (data / "big.bin").write_bytes(os.urandom(60 << 20))
    chunky = mirror.repo("acme/chunky").commit({"config.json": b"{}\n", "big.bin": data / "big.bin"})
    with mirror:
        yield Hub(mirror, old, new, tiny, chunky)


@pytest.fixture(scope="session")
def whisper_cache(hub, tmp_path_factory):
    """The Whisper repo prefetched once, cold, through the mirror: (project root, HF_HOME, report)."""
    base = tmp_path_factory.mktemp("whisper")
    root, hf_home = base / "project", base / "hf"
    root.mkdir()
    report = prefetch(root, [WHISPER], hf_home=hf_home, token_present=False, endpoint=hub.endpoint)
    return root, hf_home, report


@pytest.fixture
def whisper_copy(whisper_cache, tmp_path):
    """A private copy of the prefetched project and cache, for tests that damage it."""
    root, hf_home, _ = whisper_cache
    shutil.copytree(root, tmp_path / "project")
    shutil.copytree(hf_home, tmp_path / "hf", symlinks=True)
    return tmp_path / "project", tmp_path / "hf"


@pytest.fixture
def dead_endpoint() -> str:
    """A loopback address where nothing listens: the hub is down."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    return root


@pytest.fixture
def small_disk(tmp_path):
    """A real small filesystem (tmpfs, `small_disk("64k")`): writes past its size fail with ENOSPC.
    Needs root (mount); unmounted at teardown."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        where = tmp_path / f"disk{len(mounted)}"
        where.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
                       check=True, capture_output=True)
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)


def fill(disk: Path, leave: int) -> Path:
    """A second writer: take all but `leave` bytes of the disk's free space."""
    filler = disk / "filler.bin"
    with open(filler, "ab") as out:
        os.posix_fallocate(out.fileno(), 0, max(0, shutil.disk_usage(disk).free - leave))
    return filler
