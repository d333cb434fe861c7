"""moshi-style health in the standard library only: ready = the WebSocket handshake, alive = HTTP.

moshi serves one conversation at a time: its /api/chat handler accepts the socket, then waits on a
lock before it sends the ready byte 0x00. A handshake is the right test of readiness (weights loaded,
the chat route streaming) but the wrong test afterwards: during a conversation it waits on that lock,
times out, and a check repeated every few seconds flips a busy, healthy server to unhealthy (and
each queued probe would briefly take the session once the user leaves). So:

- ready: a WebSocket handshake whose first frame is the single byte 0x00;
- alive: any HTTP answer on the same path (moshi refuses a GET without the upgrade headers with a
  400 before it reaches the lock), which a conversation never blocks for more than a frame.

One file, used everywhere the check runs: duplex's runner on the host (`duplex.run.health`: handshake
until healthy at start, `alive` for `inv status`), the moshi image's HEALTHCHECK (copied to
/opt/duplex/wscheck.py), Compose (inlined with `python -c`) and Kubernetes (startupProbe `--phase
ready`, readiness and liveness `--phase alive`). It imports nothing from duplex on purpose.

As a script, `--once FILE` gives Docker and Compose (which have one check command) both phases:
the handshake until it succeeds once for this server process (PID 1's start time is written to
FILE), the HTTP answer from then on; a restarted container has a new PID 1 and starts over.
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
import sys
from urllib.parse import urlsplit

READY = b"\x00"


def _open(url: str, timeout: float, context: ssl.SSLContext | None):
    parts = urlsplit(url)
    secure = parts.scheme in ("wss", "https")
    port = parts.port or (443 if secure else 80)
    sock = socket.create_connection((parts.hostname, port), timeout=timeout)
    if secure:
        if context is None:  # a check on loopback inside the container: the name is not the point
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        sock = context.wrap_socket(sock, server_hostname=parts.hostname)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return sock, f"{parts.hostname}:{port}", path


def _read_until(sock, enough) -> bytes:
    data = b""
    while not enough(data):
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} bytes: {data[:60]!r}")
        data += chunk
    return data


def handshake(url: str, timeout: float = 4.0, context: ssl.SSLContext | None = None) -> str | None:
    """None when the server upgrades and sends the ready byte 0x00 first; else why not."""
    try:
        sock, host, path = _open(url, timeout, context)
        with sock:
            key = base64.b64encode(os.urandom(16)).decode()
            sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n").encode())
            head = _read_until(sock, lambda d: b"\r\n\r\n" in d)
            status, _, rest = head.partition(b"\r\n\r\n")
            if status.split(b" ", 2)[1:2] != [b"101"]:
                return f"no upgrade: {status.splitlines()[0][:80].decode(errors='replace')}"
            try:
                frame = rest + _read_until(sock, lambda d: len(rest + d) >= 3) if len(rest) < 3 else rest
            except TimeoutError:
                return "upgraded, but no ready byte yet (loading, or busy with a conversation)"
            if frame[0] & 0x0F == 2 and frame[1] & 0x7F == 1 and frame[2:3] == READY:
                return None
            return f"first frame is not the ready byte 0x00: {frame[:8]!r}"
    except (OSError, ValueError, IndexError) as exc:
        return f"{type(exc).__name__}: {exc}"


def alive(url: str, timeout: float = 4.0, context: ssl.SSLContext | None = None) -> str | None:
    """None when anything answers HTTP at the URL's path (any status: moshi says 400 to a GET
    without the upgrade headers, without waiting for its conversation lock); else why not."""
    try:
        sock, host, path = _open(url, timeout, context)
        with sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            line = _read_until(sock, lambda d: b"\r\n" in d).split(b"\r\n", 1)[0]
            if line.startswith(b"HTTP/1.") and line[9:12].isdigit():
                return None
            return f"not an HTTP answer: {line[:60]!r}"
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"


def _pid1() -> tuple[list[str], str]:
    """PID 1's arguments and start time (in a container: the server)."""
    try:
        with open("/proc/1/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        with open("/proc/1/stat") as f:
            started = f.read().rsplit(")", 1)[1].split()[19]
        return argv, started
    except (OSError, IndexError):
        return [], ""


def main(args: list[str]) -> int:
    """--port N --path P [--tls | --tls-flag FLAG] [--phase ready|alive] [--once FILE] [--timeout S].
    An image's own check leaves the port to PID 1's `--port` and says which of PID 1's flags turns
    TLS on (`--tls-flag` and moshi's flag name), since the same image runs with and without it."""
    opts = {"--path": "/api/chat", "--phase": "ready", "--timeout": "4"}
    flags = set()
    it = iter(args)
    for arg in it:
        if arg in ("--tls", "--no-tls"):
            flags.add(arg)
        else:
            opts[arg] = next(it)
    argv, started = _pid1()
    port = opts.get("--port") or next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--port"), "8998")
    tls = "--tls" in flags or ("--no-tls" not in flags and opts.get("--tls-flag") in argv)
    url = f"{'wss' if tls else 'ws'}://127.0.0.1:{port}{opts['--path']}"
    phase, marker = opts["--phase"], opts.get("--once")
    if marker:
        try:
            with open(marker) as f:
                phase = "alive" if started and f.read() == started else "ready"
        except OSError:
            phase = "ready"
    problem = (handshake if phase == "ready" else alive)(url, float(opts["--timeout"]))
    if problem:
        print(f"{phase}: {url}: {problem}")
        return 1
    if marker and phase == "ready" and started:
        with open(marker, "w") as f:
            f.write(started)
    print(f"{phase}: {url}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
