"""moshi's health, one check everywhere (duplex.standalone.wscheck): the handshake decides readiness, any HTTP
answer decides liveness, so a conversation never makes a healthy moshi look unhealthy.

Against a stand-in with moshi's own locking (accept, wait for the one-conversation lock, then the
ready byte), over ws and wss; the real moshi server goes through the same checks in
tests/run/test_moshi_chain.py. Each form the check takes is run: duplex's host-side probe, the
script as the moshi image runs it, and the inlined command Compose and Kubernetes get.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from duplex.plan import Health
from duplex.publish.common import websocket_check
from duplex.run.health import probe_once, websocket_problem
from duplex.standalone import wscheck

SCRIPT = Path(wscheck.__file__)


class MoshiLike:
    """websockets server shaped like moshi.server's handle_chat: upgrade first, then the lock."""

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.tls = tls
        self.port = 0
        self.started = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self):
        from websockets.asyncio.server import serve
        lock = asyncio.Lock()
        self.stop = asyncio.get_running_loop().create_future()

        async def chat(ws):
            async with lock:
                await ws.send(b"\x00")
                async for _ in ws:  # a conversation: until the client leaves
                    pass
        async with serve(chat, "127.0.0.1", 0, ssl=self.tls) as server:
            self.port = server.sockets[0].getsockname()[1]
            self.started.set()
            await self.stop

    def __enter__(self):
        self.thread.start()
        assert self.started.wait(10)
        return self

    def __exit__(self, *exc):
        self.stop.get_loop().call_soon_threadsafe(self.stop.set_result, None)
        self.thread.join(5)

    def url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}/api/chat"


@contextmanager
def conversation(url: str, context=None):
    """A user talking to moshi: holds the session until closed."""
    from websockets.sync.client import connect
    with connect(url, **({"ssl": context} if context else {})) as ws:
        assert ws.recv(timeout=5) == b"\x00"
        yield ws


def image_check(port: int, *extra: str, timeout: float = 1.5) -> int:
    """The moshi image's HEALTHCHECK command, run here (port given: PID 1 is not moshi here)."""
    return subprocess.run([sys.executable, str(SCRIPT), "--port", str(port), "--timeout", str(timeout), *extra],
                          capture_output=True, text=True, timeout=30).returncode


def published_check(port: int, **kw) -> int:
    argv = websocket_check(port, "/api/chat", 1, **kw)
    return subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, timeout=30).returncode


def test_ready_then_busy_plain(tmp_path):
    with MoshiLike() as moshi:
        url = moshi.url()
        assert websocket_problem(url, 2) is None  # ready: the handshake
        assert probe_once(Health("websocket", url, 5), 2)
        with conversation(url):
            problem = websocket_problem(url, 1)
            assert problem and problem.startswith("upgraded, but no ready byte")
            # ...yet alive, in every form the check takes
            assert websocket_problem(url, 2, phase="alive") is None
            assert probe_once(Health("websocket", url, 5), 2, phase="alive")
            assert image_check(moshi.port, "--phase", "alive") == 0
            assert published_check(moshi.port, phase="alive") == 0
            assert image_check(moshi.port, "--phase", "ready") == 1
            assert published_check(moshi.port, phase="ready") == 1
        assert websocket_problem(url, 2) is None  # the session is free again


def test_once_marker_runs_the_handshake_until_it_passed(tmp_path):
    marker = tmp_path / "ready"
    with MoshiLike() as moshi:
        with conversation(moshi.url()):  # busy before the first check passed: not ready yet
            assert image_check(moshi.port, "--once", str(marker)) == 1
            assert not marker.exists()
        assert image_check(moshi.port, "--once", str(marker)) == 0  # the handshake, once
        assert marker.read_text()
        with conversation(moshi.url()):  # from then on a conversation does not matter
            for _ in range(3):
                assert image_check(moshi.port, "--once", str(marker)) == 0
                assert published_check(moshi.port, once=str(marker)) == 0
    # nothing listens any more: not alive, marker or not
    assert image_check(moshi.port, "--once", str(marker)) == 1


def test_tls_both_phases(tmp_path):
    from duplex.certs import make_certs
    certs = make_certs(tmp_path, "wscheck", names=(["localhost"], ["127.0.0.1"]))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(certs.cert, certs.key)
    client = ssl.create_default_context(cafile=str(certs.ca))
    with MoshiLike(server) as moshi:
        url = moshi.url()
        assert websocket_problem(url, 2, client) is None
        assert probe_once(Health("websocket", url, 5, str(certs.ca)), 2)
        assert websocket_problem(url, 2) is not None  # the host side verifies: no CA, no trust
        assert image_check(moshi.port, "--tls") == 0  # inside the container: loopback, unverified
        assert published_check(moshi.port, tls=True) == 0
        assert image_check(moshi.port) == 1  # plain against TLS: not an answer
        with conversation(url, client):
            assert probe_once(Health("websocket", url, 5, str(certs.ca)), 2, phase="alive")
            assert image_check(moshi.port, "--tls", "--phase", "alive") == 0


@pytest.mark.parametrize("argv, tls", [(["python", "-m", "moshi.server", "--ssl", "/certs"], True),
                                       (["python", "-m", "moshi.server"], False)])
def test_image_check_follows_pid1_flags(monkeypatch, argv, tls):
    """The image's check has no flags of its own: port and TLS come from the server's command."""
    seen = {}
    monkeypatch.setattr(wscheck, "_pid1", lambda: ([*argv, "--port", "8123"], "42"))
    monkeypatch.setattr(wscheck, "handshake", lambda url, timeout: seen.setdefault("url", url) and None)
    assert wscheck.main(["--tls-flag", "--ssl"]) == 0
    assert seen["url"] == f"{'wss' if tls else 'ws'}://127.0.0.1:8123/api/chat"
