"""The frontend as a real process, and WebSocket echo servers standing in for moshi replicas (tests
of the replicas behind the frontend, benchmarks/front_replicas.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.support.net import free_port, free_ports, stop_process, wait_answer

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / ".duplex" / "testdata" / "logs"


@contextmanager
def running(python: Path, args: list[str], env: dict[str, str], name: str, health: str | None):
    """`python args` from the repo root, its output in LOGS/<name>.log; waits for `health` to answer."""
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{name}.log"
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("ASR_", "MOSHI_", "MT_", "services__"))}
    with open(log, "w") as out:
        proc = subprocess.Popen([str(python), *args], cwd=ROOT, env={**clean, **env},
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        if health:
            wait_answer(proc, health, name, time.monotonic() + 60, log.read_text,
                        ready=lambda answer: answer.status_code == 200, timeout=1)
        yield proc
    finally:
        stop_process(proc, 10)


@contextmanager
def frontend(python: Path, name: str, **env: str):
    port = free_port()
    with running(python, ["-m", "uvicorn", "servers.frontend.app:app", "--host", "127.0.0.1", "--port", str(port)],
                 env, name, f"http://127.0.0.1:{port}/health"):
        yield f"http://127.0.0.1:{port}"


ECHO = r'''
import asyncio, sys
from websockets.asyncio.server import serve

async def chat(ws):  # moshi's handshake byte, then who answered, then every frame back
    await ws.send(b"\x00")
    await ws.send(b"\x02" + sys.argv[1].encode())
    async for message in ws:
        await ws.send(message)

async def main():
    async with serve(chat, "127.0.0.1", int(sys.argv[1])):
        await asyncio.Future()

asyncio.run(main())
'''


@contextmanager
def echo_servers(python: Path, count: int):
    """`count` moshi stand-ins; yields their chat URLs."""
    script = LOGS / "echo_moshi.py"
    LOGS.mkdir(parents=True, exist_ok=True)
    script.write_text(ECHO)
    ports = free_ports(count)
    with ExitStack() as stack:
        for port in ports:
            stack.enter_context(running(python, [str(script), str(port)], {}, f"echo-moshi-{port}", None))
        deadline = time.monotonic() + 20
        while not all(_listening(port) for port in ports):
            assert time.monotonic() < deadline, "the echo servers did not listen"
            time.sleep(0.05)
        yield [f"ws://127.0.0.1:{port}/api/chat" for port in ports]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
