"""Local servers for tests and benchmarks: a free port, an HTTP answer or none, and a server
process waited for until it answers and stopped afterwards."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from typing import Callable

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: each socket stays bound until all are chosen (separate
    `free_port()` calls may hand out the same port twice)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def http_answer(url: str, timeout: float = 5) -> tuple[int, str] | None:
    """GET `url`: its status and body (a JSON string's quotes stripped), or None while nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode().strip('"')
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return None


def wait_answer(proc: subprocess.Popen, url: str, name: str, deadline: float, output: Callable[[], str],
                ready: Callable[[httpx.Response], bool] = lambda answer: True, poll: float = 0.1,
                timeout: float = 5) -> httpx.Response:
    """GET `url` until the server `proc` answers (any status, or one `ready` accepts); fail with its
    `output()` when it exits first or `deadline` (a `time.monotonic()` time) passes."""
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.returncode}:\n{output()}")
        try:
            answer = httpx.get(url, timeout=timeout)
            if ready(answer):
                return answer
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} did not answer at {url} in time:\n{output()}")
        time.sleep(poll)


def stop_process(proc: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM `proc`; SIGKILL it if it is still there after `grace` seconds; reap it."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
