"""A stand-in for python-build-standalone, the download server behind `uv python install`.

uv reads which interpreters it may install, with each archive's URL and sha256, from a downloads
JSON (its `--python-downloads-json-url`, `UV_PYTHON_DOWNLOADS_JSON_URL`). This serves one over HTTP
on loopback, with one archive in the `install_only` layout (`python/bin/python3`, `python/lib/...`)
packed from a real CPython on this machine (pyenv's). The real uv then downloads it, checks its hash,
unpacks it into its managed-Python folder and runs it, as it would from GitHub.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import platform
import tarfile
import threading
from dataclasses import dataclass
from pathlib import Path

PYENV = Path.home() / ".pyenv" / "versions"
_SKIP = {"test", "site-packages", "__pycache__", "idlelib", "tkinter", "turtledemo", "lib2to3",
         "config-3.11-x86_64-linux-gnu", "pkgconfig", "include", "share"}


def pack(src: Path, archive: Path) -> None:
    """`src` (a CPython prefix) as `python/...` in a .tar.gz, without tests, caches and headers."""
    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return None if _SKIP & set(Path(info.name).parts[1:]) else info
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        tar.add(src, arcname="python", filter=keep)


@dataclass
class Downloads:
    """The JSON's URL (for UV_PYTHON_DOWNLOADS_JSON_URL) and the version it offers."""

    json_url: str
    version: str
    server: http.server.ThreadingHTTPServer

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve(folder: Path, src: Path, version: str) -> Downloads:
    """Serve `src` packed as CPython `version` from `folder`."""
    archive = folder / f"cpython-{version}-install_only.tar.gz"
    if not archive.exists():
        pack(src, archive)
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    major, minor, patch = (int(p) for p in version.split("."))
    key = f"cpython-{version}-linux-{platform.machine()}-gnu"
    (folder / "downloads.json").write_text(json.dumps({key: {
        "name": "cpython", "arch": {"family": platform.machine(), "variant": None}, "os": "linux",
        "libc": "gnu", "major": major, "minor": minor, "patch": patch, "prerelease": "",
        "url": f"{base}/{archive.name}", "sha256": sha, "variant": None}}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return Downloads(f"{base}/downloads.json", version, server)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest's output for the test's own lines
        pass
