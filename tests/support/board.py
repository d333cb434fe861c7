"""The real dashboard process (`python -m duplex.dashboard ROOT`) on a checkout made for a test: its
file (.duplex/run/dashboard.json, as `inv run` writes it), optionally a run state naming a live
process, and the process itself, waited for until it answers and stopped afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import ROOT
from tests.support.net import free_port


class Board:
    def __init__(self, root: Path, port: int, token: str, proc: subprocess.Popen):
        self.root, self.port, self.token, self.proc = root, port, token, proc
        self.base = f"http://127.0.0.1:{port}"
        self.link = f"{self.base}/?t={token}"

    def get(self, path: str, **kw) -> httpx.Response:
        return httpx.get(self.base + path, headers={"x-duplex-token": self.token, **kw.pop("headers", {})},
                         timeout=kw.pop("timeout", 10), **kw)

    def log(self) -> str:
        path = self.root / ".duplex" / "logs" / "dashboard.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def rss(self) -> int:
        """The process's resident memory in bytes (/proc: no psutil needed in a test)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")


def planned(services: dict, stack: str = "demo", secrets: tuple[str, ...] = ()) -> dict:
    """The plan's view the dashboard reads (duplex.dashboard.rows.planned_view's shape)."""
    full = {name: {"mode": "native", "url": None, "urls": [], "depends_on": {}, "gpu": None,
                   "health": {"kind": "none", "url": None, "ca": None}, "warm": False, **s}
            for name, s in services.items()}
    return {"stack": stack, "native": True, "order": list(services), "services": full, "left_out": {},
            "secrets": list(secrets)}


@contextmanager
def board(root: Path, planned_view: dict, env: dict | None = None, state: dict | None = None):
    """Start the dashboard of `root` as `inv run` does (its file first, then the process)."""
    port, token = free_port(), f"tok-{os.urandom(12).hex()}"
    run = root / ".duplex" / "run"
    run.mkdir(parents=True, exist_ok=True)
    (root / ".duplex" / "logs").mkdir(parents=True, exist_ok=True)
    if state is not None:
        (run / "state.json").write_text(json.dumps(state))
    info = {"port": port, "token": token, "planned": planned_view, "pid": None, "start_time": None,
            "otlp_port": None, "started": True}
    fd = os.open(run / "dashboard.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(info, fh)
    with open(root / ".duplex" / "logs" / "dashboard.log", "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "duplex.dashboard", str(root)], cwd=ROOT,
                                env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    found = Board(root, port, token, proc)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if found.get("/api/services", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, f"the dashboard exited:\n{found.log()}"
            assert time.monotonic() < deadline, f"the dashboard never answered:\n{found.log()}"
            time.sleep(0.1)
        yield found
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
