"""A real Hugging Face-compatible hub on loopback: olah in offline mirror mode over local git repos.

olah serves `DIR/models/ORG/NAME` (a git repo, branch `main`) with the hub's API: repo info, tree
listings with sizes and LFS sha256, `resolve/` downloads with the hub's headers. Large files are
stored the way git-lfs stores them (a pointer in the tree, the object under `.git/lfs/objects`),
which is what olah reads; no git-lfs binary is needed to build them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.net import free_port, stop_process, wait_answer
from tests.support.tools import tool

LFS_THRESHOLD = 1 << 20  # files from this size on are stored as LFS objects, as the hub does
GIT_ENV = {"GIT_AUTHOR_NAME": "duplex tests", "GIT_AUTHOR_EMAIL": "tests@duplex.invalid",
           "GIT_COMMITTER_NAME": "duplex tests", "GIT_COMMITTER_EMAIL": "tests@duplex.invalid"}


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    out = subprocess.run([tool("git"), "-C", str(repo), *args], env=env, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def _lfs_store(repo: Path, data_path: Path) -> bytes:
    """Put a file into the repo's LFS object store; return the pointer text git tracks."""
    digest = hashlib.sha256()
    with open(data_path, "rb") as src:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            digest.update(chunk)
    oid = digest.hexdigest()
    obj = repo / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
    obj.parent.mkdir(parents=True, exist_ok=True)
    if not obj.exists():
        try:
            os.link(data_path, obj)  # same filesystem: no copy of a large model
        except OSError:
            shutil.copyfile(data_path, obj)
    size = data_path.stat().st_size
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


@dataclass
class MirrorRepo:
    """One model repo in the mirror; `commit()` adds a commit on `main` and returns its hash."""

    path: Path
    name: str
    commits: list[str] = field(default_factory=list)

    def commit(self, files: dict[str, bytes | Path], message: str = "update",
               remove: tuple[str, ...] = ()) -> str:
        """Write `files` (bytes, or a Path to a large file kept as LFS) and commit them."""
        for rel, content in files.items():
            target = self.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path) and content.stat().st_size >= LFS_THRESHOLD:
                target.write_bytes(_lfs_store(self.path, content))
            elif isinstance(content, Path):
                target.write_bytes(content.read_bytes())
            else:
                target.write_bytes(content)
        for rel in remove:
            (self.path / rel).unlink()
        _git(self.path, "add", "-A")
        _git(self.path, "commit", "-q", "-m", message)
        sha = _git(self.path, "rev-parse", "HEAD")
        self.commits.append(sha)
        return sha


class Mirror:
    """A folder of git model repos, served by olah once `start()` is called."""

    def __init__(self, base: Path):
        self.base = Path(base)
        self.models = self.base / "mirror" / "models"
        self.models.mkdir(parents=True, exist_ok=True)
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.repos: dict[str, MirrorRepo] = {}

    @property
    def endpoint(self) -> str:
        assert self.port, "the mirror is not started"
        return f"http://127.0.0.1:{self.port}"

    def repo(self, name: str) -> MirrorRepo:
        """The repo `ORG/NAME`, created empty (branch main) the first time it is asked for."""
        if name not in self.repos:
            path = self.models / name
            path.mkdir(parents=True, exist_ok=True)
            _git(path, "init", "-q", "-b", "main")
            self.repos[name] = MirrorRepo(path, name)
        return self.repos[name]

    def start(self, timeout: float = 30.0) -> "Mirror":
        olah = tool("olah-cli")
        self.port = self.port or free_port()
        config = self.base / "olah.toml"
        config.write_text(
            "[basic]\n"
            f'host = "127.0.0.1"\nport = {self.port}\n'
            f'repos-path = "{self.base / "olah-cache"}"\n'
            f'mirrors-path = ["{self.base / "mirror"}"]\n'
            f'hf-scheme = "http"\nhf-netloc = "127.0.0.1:9"\nhf-lfs-netloc = "127.0.0.1:9"\n'
            f'mirror-scheme = "http"\nmirror-netloc = "127.0.0.1:{self.port}"\n'
            f'mirror-lfs-netloc = "127.0.0.1:{self.port}"\n'
            "\n[accessibility]\noffline = true\n")
        log = open(self.base / "olah.log", "ab")
        self.proc = subprocess.Popen([olah, "-c", str(config)], cwd=self.base, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        try:  # an HTTP answer, any status: it is serving
            wait_answer(self.proc, self.endpoint + "/api/whoami-v2", "olah", time.monotonic() + timeout,
                        self.log_tail, poll=0.2, timeout=1)
        except AssertionError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc, 10)
        self.proc = None

    def log_tail(self, lines: int = 30) -> str:
        path = self.base / "olah.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def __enter__(self) -> "Mirror":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------
# What olah cannot serve offline: gated repos and rejected tokens. A tiny HTTP server that answers
# the way huggingface.co does (status + X-Error-Code / X-Error-Message, which is all that
# huggingface_hub's hf_raise_for_status reads to choose GatedRepoError, RepositoryNotFoundError or
# the 401 "Invalid credentials" HfHubHTTPError).

GATED = "acme/gated-model"
GOOD_TOKEN = "hf_goodtoken_without_licence_000000"
GATED_SHA = "0123456789abcdef0123456789abcdef01234567"


def _answer(handler, status: int, body: object, headers: dict[str, str] | None = None) -> None:
    import json
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(data)


def _fake_hub_handler(endpoint_holder: list[str]):
    from http.server import BaseHTTPRequestHandler

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def do_GET(self):  # noqa: N802 - http.server's naming
            auth = self.headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ").strip() if auth else ""
            path = self.path.split("?", 1)[0]
            if token and token != GOOD_TOKEN:
                msg = "Invalid credentials in Authorization header"
                return _answer(self, 401, {"error": msg}, {"X-Error-Message": msg})
            prefix = f"/api/models/{GATED}"
            if path.startswith(prefix + "/revision/"):
                return _answer(self, 200, {"id": GATED, "sha": GATED_SHA, "gated": "manual",
                                           "private": False, "siblings": [{"rfilename": "config.json"}]})
            if path.startswith(prefix + "/tree/"):
                return _answer(self, 200, [{"type": "file", "oid": "a" * 40, "size": 2,
                                            "path": "config.json"}])
            if path == prefix + "/auth-check":
                url = f"{endpoint_holder[0]}/{GATED}"
                if token:
                    msg = (f"Access to model {GATED} is restricted and you are not in the authorized "
                           f"list. Visit {url} to ask for access.")
                    return _answer(self, 403, {"error": msg}, {"X-Error-Code": "GatedRepo", "X-Error-Message": msg})
                msg = (f"Access to model {GATED} is restricted. You must have access to it and be "
                       "authenticated to access it. Please log in.")
                return _answer(self, 401, {"error": msg}, {"X-Error-Code": "GatedRepo", "X-Error-Message": msg})
            msg = "Repository not found"
            return _answer(self, 401 if path.startswith("/api/") else 404, {"error": msg},
                           {"X-Error-Code": "RepoNotFound", "X-Error-Message": msg})

        do_HEAD = do_GET

    return Handler


class FakeHub:
    """Answers like huggingface.co for one gated repo and for bad tokens (context manager)."""

    def __enter__(self) -> "FakeHub":
        import threading
        from http.server import ThreadingHTTPServer
        holder: list[str] = [""]
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _fake_hub_handler(holder))
        self.endpoint = holder[0] = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
