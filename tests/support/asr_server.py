"""Run the ASR server as a real uvicorn process on a free port (tests and benchmarks)."""

from __future__ import annotations

import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx

from tests.support.net import free_port, stop_process, wait_answer

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / ".duplex" / "testdata" / "logs"


class AsrServer:
    def __init__(self, proc: subprocess.Popen, url: str, log: Path):
        self.proc, self.url, self.log = proc, url, log
        self.first_health: httpx.Response | None = None  # /health's very first answer

    def health(self) -> httpx.Response:
        return httpx.get(f"{self.url}/health", timeout=5)

    def transcribe(self, path: Path, timeout: float = 120) -> httpx.Response:
        with open(path, "rb") as f:
            return httpx.post(f"{self.url}/transcribe", files={"file": (path.name, f)}, timeout=timeout)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self._health_code() != 200:
            if not self.alive() or time.monotonic() > deadline:
                raise AssertionError(f"ASR server not ready: {self.health().text}\n{self.output()}")
            time.sleep(0.1)

    def _health_code(self) -> int | None:
        """/health's status, None when it was slow to answer (a model loading on a busy machine
        can hold the interpreter for seconds): the caller polls again until its deadline."""
        try:
            return self.health().status_code
        except httpx.TimeoutException:
            return None

    def workers(self) -> list[int]:
        """Pids of the server's child processes (pocketsphinx workers, multiprocessing's tracker)."""
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            for task in Path(f"/proc/{pid}/task").glob("*"):
                try:
                    kids = [int(k) for k in (task / "children").read_text().split()]
                except OSError:
                    continue
                found += kids
                todo += kids
        return found

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def asr_server(python: Path, env: dict[str, str], name: str = "asr", ready: bool = True,
               timeout: float = 120) -> Iterator[AsrServer]:
    """Start `python -m uvicorn servers.asr.app:app`; wait until /health answers 200 (ready=True)
    or answers at all (ready=False, for servers expected to report an error); stop it afterwards."""
    port = free_port()
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{name}.log"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ASR_")}
    with open(log, "w") as out:
        proc = subprocess.Popen([str(python), "-m", "uvicorn", "servers.asr.app:app", "--host", "127.0.0.1",
                                 "--port", str(port)], cwd=ROOT, env={**clean, **env},
                                stdout=out, stderr=subprocess.STDOUT)
    server = AsrServer(proc, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + timeout
        server.first_health = wait_answer(proc, f"{server.url}/health", name, deadline, server.output, poll=0.05)
        if ready:
            server.wait_ready(max(1.0, deadline - time.monotonic()))
        yield server
    finally:
        stop_process(proc, 15)
