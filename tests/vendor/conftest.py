"""Fixtures for vendoring: throw-away project roots, tiny fixture releases, a real local index server."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import shutil
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from duplex.vendor import TARGET
from duplex.vendor.tree import manifest, tree_hash

REPO = Path(__file__).resolve().parents[2]
# Real releases downloaded once per machine and shared by the tests that talk to the real index
# (content-addressed by sha256, so a shared folder cannot serve a wrong file).
SHARED_CACHE = REPO / ".duplex" / "cache" / "vendor"


def live_tree(root: Path) -> str:
    return tree_hash(manifest(root / TARGET))


@pytest.fixture
def project(tmp_path) -> Path:
    """An empty project root whose download cache is the shared one (real index releases only)."""
    root = tmp_path / "project"
    (root / ".duplex" / "cache").mkdir(parents=True)
    SHARED_CACHE.mkdir(parents=True, exist_ok=True)
    (root / ".duplex" / "cache" / "vendor").symlink_to(SHARED_CACHE, target_is_directory=True)
    return root


@pytest.fixture
def moshi_sdist(project) -> Path:
    """The real moshi 0.2.13 sdist, the one the shipped tree was vendored from: from the shared
    cache, else fetched once from the package index and checked against the hash it publishes."""
    from duplex.vendor.sources import fetch_pypi
    return fetch_pypi(project, "v0.2.13", lambda _line: None).path


@pytest.fixture
def bare_project(tmp_path) -> Path:
    """A project root with its own, empty cache (for fixture releases and fake indexes)."""
    root = tmp_path / "bare"
    root.mkdir()
    return root


def release_files(version: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A tiny moshi release: the package, its licence, and sdist clutter that must not be vendored."""
    files = {
        "LICENSE": "MIT License - fixture\n",
        "README.md": "clutter\n",
        "pyproject.toml": "[project]\nname = 'moshi'\n",
        "tests/test_x.py": "def test(): pass\n",
        "moshi/__init__.py": f'"""fixture moshi"""\n__version__ = "{version}"\n',
        "moshi/server.py": "".join(f"line {i}\n" for i in range(1, 21)),
        "moshi/models/__init__.py": "",
    }
    files.update(extra or {})
    return files


def make_sdist(path: Path, version: str, extra: dict[str, str] | None = None,
               members: list[tarfile.TarInfo] | None = None) -> Path:
    """moshi-<version>.tar.gz with the top folder an sdist has, plus any raw (malicious) members."""
    top = f"moshi-{version}"
    with tarfile.open(path, "w:gz") as tar:
        for rel, text in release_files(version, extra).items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in members or []:
            tar.addfile(info, io.BytesIO(b"evil\n") if info.isfile() else None)
    return path


def make_wheel(path: Path, version: str) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for rel, text in release_files(version).items():
            if rel.startswith("moshi/"):
                zf.writestr(rel, text)
        zf.writestr(f"moshi-{version}.dist-info/licenses/LICENSE", "MIT License - fixture\n")
        zf.writestr(f"moshi-{version}.dist-info/METADATA", f"Name: moshi\nVersion: {version}\n")
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class LocalIndex:
    """A real PEP 503 (HTML) simple index over HTTP on 127.0.0.1, serving files from a folder."""

    def __init__(self, folder: Path):
        self.folder = folder
        (folder / "simple" / "moshi").mkdir(parents=True, exist_ok=True)
        (folder / "files").mkdir(exist_ok=True)
        handler = functools.partial(_Quiet, directory=str(folder))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple"
        self.links: list[str] = []

    def publish(self, archive: Path, *, sha: str | None = "auto") -> None:
        shutil.copy(archive, self.folder / "files" / archive.name)
        digest = sha256(archive) if sha == "auto" else sha
        frag = f"#sha256={digest}" if digest else ""
        self.links.append(f'<a href="../../files/{archive.name}{frag}">{archive.name}</a><br/>')
        (self.folder / "simple" / "moshi" / "index.html").write_text(
            "<!DOCTYPE html><html><body>\n" + "\n".join(self.links) + "\n</body></html>\n")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def local_index(tmp_path):
    index = LocalIndex(tmp_path / "index")
    yield index
    index.close()
