"""The dashboard page's event stream (`GET /api/events`), held open as a browser tab on `inv run`'s
link holds it: the stop tests and benchmarks/stop_speed.py check a stop does not wait for it."""

from __future__ import annotations

import http.client
import threading
import time


def open_event_stream(info: dict, timeout: float = 30) -> tuple[http.client.HTTPResponse, list[bytes]]:
    """`info`: the dashboard's file (.duplex/run/dashboard.json). Returns the response and the list its
    reader thread fills: the chunks, then b"<end>" when the server ended the stream, or
    b"<broken: ...>" when it was cut."""
    deadline = time.monotonic() + timeout
    while True:  # the dashboard loads its web stack once the services are healthy
        conn = http.client.HTTPConnection("127.0.0.1", info["port"], timeout=60)
        try:
            conn.request("GET", "/api/events", headers={"x-duplex-token": info["token"]})
            resp = conn.getresponse()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    if resp.status != 200:
        raise RuntimeError(f"the dashboard's event stream answered {resp.status}: {resp.read()[:200]!r}")
    got: list[bytes] = []

    def read() -> None:
        try:
            while chunk := resp.read1(4096):
                got.append(chunk)
            got.append(b"<end>")  # the server ended the stream: the chunked body's last chunk came
        except (OSError, http.client.HTTPException) as exc:
            got.append(f"<broken: {type(exc).__name__}>".encode())
    threading.Thread(target=read, daemon=True).start()
    return resp, got
