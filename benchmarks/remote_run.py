"""`inv run --on ssh://…` (issue 32): how long the first remote run takes to come up (sync,
duplex bootstrapped there, `inv setup`, the stack healthy), a second one, each one's sync (the first
sends everything, the second only what changed), and save → served: an
edit to the ASR server saved in the laptop's copy until its /health answers with the change through
the tunnel, against the same edit made to a local `inv run --native` (the baseline, same machine,
same run).

The remote is a real OpenSSH server on a loopback port (tests/support/sshd.py) and a folder of this
machine: no network latency, so over a real link add about two round trips per edit (the sync's) and
the edited file's bytes. The project is a copy of what git would add of this checkout.

Usage: python benchmarks/remote_run.py [-n 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import sshd as sshd_support  # noqa: E402 - after the path that finds tests/
from tests.support.stackcopy import checkout_copy  # noqa: E402

OFFSET = 100
APP = Path("servers/asr/app.py")
MARK = '"status": self.status, "ready"'


def inv(project: Path, *args: str, env: dict, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args], cwd=project,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def until(proc: subprocess.Popen, text: str, lines: list[str]) -> float:
    """Seconds until `text` appears in the output (collected into `lines` as it comes)."""
    start = time.monotonic()
    done = threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if text in line:
                done.set()
        done.set()
    threading.Thread(target=read, daemon=True).start()
    done.wait(600)
    if not any(text in line for line in lines):
        raise SystemExit(f"never saw {text!r}:\n{''.join(lines[-40:])}")
    return time.monotonic() - start


def save_to_served(project: Path, port: int, rounds: int) -> list[float]:
    """Edit the health answer, saved as an editor saves; seconds until /health returns it."""
    app = project / APP
    source = app.read_text()
    took = []
    try:
        for i in range(1, rounds + 1):
            time.sleep(1.0)  # the previous reload settled
            app.write_text(source.replace(MARK, f'"status": self.status, "edited": {i}, "ready"'))
            start = time.monotonic()
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                        if json.load(answer).get("edited") == i:
                            break
                except OSError:
                    pass
                time.sleep(0.01)
            took.append(time.monotonic() - start)
    finally:
        app.write_text(source)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5, help="edits timed on each side (medians printed)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="dx-remote-run-"))
    server = sshd_support.start(base / "sshd")
    try:
        project = checkout_copy(base / "laptop")
        url = server.url(base / "gpu-box")
        (project / "duplex.local.toml").write_text(f'[remote]\non = "{url}"\nport_offset = {OFFSET}\n')
        ports = sshd_support.port_pair(OFFSET)
        env = {**os.environ, "DUPLEX_SSH_CONFIG": str(server.client_config()),
               "DUPLEX_PORT_ASR": str(ports[0]), "DUPLEX_PORT_FRONTEND": str(ports[1])}
        env.pop("DUPLEX_STACK", None)
        print(f"load average before: {os.getloadavg()[0]:.1f}")

        # the baseline: the same copy run here
        subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), "setup"], cwd=project, env=env,
                       check=True, capture_output=True)
        local = inv(project, "run", "--native", "--no-dashboard", env=env)
        until(local, "press Ctrl-C to stop everything", [])
        here = save_to_served(project, ports[0], args.n)
        local.send_signal(signal.SIGINT)
        local.wait(60)

        starts, there, stops, syncs = [], [], [], []
        note = project / "docs" / "remote.md"
        for round_ in range(2):  # the first bootstraps duplex there; the second finds it, one file changed
            if round_ == 1:
                note.write_text(note.read_text() + "\n<!-- edited between the runs -->\n")
            run = inv(project, "run", "--native", "--on", env=env)
            lines: list[str] = []
            starts.append(until(run, "Ctrl-C stops both sides", lines))
            syncs.append(next(line.split("sync: ", 1)[1].strip() for line in lines if "sync: sent" in line))
            if round_ == 1:
                there = save_to_served(project, ports[0], args.n)
            begin = time.monotonic()
            run.send_signal(signal.SIGINT)
            run.wait(120)
            stops.append(time.monotonic() - begin)
        med = statistics.median
        print(f"\n`inv run --native --on`, up and forwarded: first {starts[0]:.1f} s (sync, bootstrap, setup), "
              f"again {starts[1]:.1f} s; Ctrl-C to both sides stopped: {med(stops):.2f} s")
        print(f"its sync: first {syncs[0]}; again {syncs[1]}")
        print(f"save -> served (medians of {args.n}): here {med(here):.3f} s, through the tunnel {med(there):.3f} s, "
              f"difference {med(there) - med(here):+.3f} s (goal: under +1 s)")
        print(f"  each: here {', '.join(f'{t:.3f}' for t in here)}; tunnel {', '.join(f'{t:.3f}' for t in there)}")
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    finally:
        sshd_support.stop(server)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
