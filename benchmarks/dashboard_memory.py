"""The dashboard's memory under long log lines (issue 28): the real dashboard process follows one
service's log file while it receives N lines of M MiB each, then one line of L MiB without a
newline; printed: the process's RSS before, after the long lines and after the line without end,
and the size of one `GET /api/logs?limit=100000` answer.

Usage: python benchmarks/dashboard_memory.py [--lines 150] [--mib 1] [--endless 100]
       [--source DIR]  (DIR: another checkout's root, to measure its duplex package: before/after)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MiB = 1 << 20


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def get(port: int, token: str, path: str) -> bytes:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"x-duplex-token": token})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return resp.read()


def wait_for_last(port: int, token: str, text: str, timeout: float = 300) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            body = get(port, token, "/api/logs?limit=100000")
        except OSError:  # not listening yet
            time.sleep(0.2)
            continue
        lines = json.loads(body)["lines"]
        if lines and lines[-1]["text"] == text:
            return body
        time.sleep(0.5)
    raise SystemExit(f"the line {text!r} never arrived")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=150)
    ap.add_argument("--mib", type=float, default=1.0)
    ap.add_argument("--endless", type=float, default=100.0, help="MiB of one line without a newline")
    ap.add_argument("--source", type=Path, default=ROOT)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="duplex-dash-mem-"))
    (root / ".duplex" / "run").mkdir(parents=True)
    (root / ".duplex" / "logs").mkdir(parents=True)
    log = root / ".duplex" / "logs" / "asr.log"
    log.write_text("INFO started\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = os.urandom(16).hex()
    planned = {"stack": "mem", "native": True, "order": ["asr"], "left_out": {}, "secrets": [],
               "services": {"asr": {"mode": "native", "url": None, "urls": [], "depends_on": {}, "gpu": None,
                                    "health": {"kind": "none", "url": None, "ca": None}, "warm": False}}}
    (root / ".duplex" / "run" / "dashboard.json").write_text(json.dumps(
        {"port": port, "token": token, "planned": planned, "pid": None, "start_time": None, "otlp_port": None,
         "started": True}))
    env = {**os.environ, "PYTHONPATH": str(args.source.resolve())}
    proc = subprocess.Popen([sys.executable, "-m", "duplex.dashboard", str(root)], cwd=root, env=env,
                            start_new_session=True)
    try:
        wait_for_last(port, token, "INFO started", 30)
        time.sleep(1)
        began = rss(proc.pid)
        line = b"x" * int(args.mib * MiB)
        with open(log, "ab") as fh:
            for n in range(args.lines):
                fh.write(b"INFO %d " % n + line + b"\n")
            fh.write(b"INFO after the long lines\n")
        body = wait_for_last(port, token, "INFO after the long lines")
        after_long, answer = rss(proc.pid), len(body)
        with open(log, "ab") as fh:
            chunk = b"y" * MiB
            for _ in range(int(args.endless)):
                fh.write(chunk)
            fh.write(b"\nINFO after the endless line\n")
        body = wait_for_last(port, token, "INFO after the endless line")
        after_endless = rss(proc.pid)
        print(f"source: {args.source}")
        print(f"dashboard RSS: {began / MiB:.0f} MiB at start, {after_long / MiB:.0f} MiB after "
              f"{args.lines} lines of {args.mib:g} MiB, {after_endless / MiB:.0f} MiB after one "
              f"{args.endless:g} MiB line without a newline")
        print(f"one /api/logs answer: {answer / MiB:.2f} MiB after the long lines, "
              f"{len(body) / MiB:.2f} MiB at the end")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
