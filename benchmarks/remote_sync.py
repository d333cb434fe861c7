"""Syncing this repository to a remote folder over SSH (issue 32): the first sync, a sync with
nothing changed, and one after a single file's edit, with rsync and with the tar fallback.

The remote is a real OpenSSH server on a loopback port (tests/support/sshd.py) and a folder of this
machine, so the figures are duplex's own cost (listing, ssh round trips, rsync's or tar's work)
without a network's latency or bandwidth: over a real link add a round trip per step and the bytes
at its speed. The project is a local clone of this checkout's HEAD. The remote user's shell start-up
(its .bashrc) is paid on every remote command and is part of the figures: it is printed.

Usage: python benchmarks/remote_sync.py [-n 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from duplex.remote.ssh import Connection  # noqa: E402 - after the path that finds tests/
from duplex.remote.sync import sync  # noqa: E402
from duplex.remote.target import parse_target  # noqa: E402
from tests.support import sshd as sshd_support  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3, help="rounds of each measurement (medians printed)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="dx-bench-"))
    server = sshd_support.start(base / "sshd")
    os.environ["DUPLEX_SSH_CONFIG"] = str(server.client_config())
    try:
        project = base / "project"
        subprocess.run(["git", "clone", "-q", "--local", str(ROOT), str(project)], check=True)
        edited = project / "duplex" / "layout.py"
        print(f"load average before: {os.getloadavg()[0]:.1f}")
        rows = []
        for method in ("rsync", "tar"):
            first, idle, one, opened, trip = [], [], [], [], []
            for round_ in range(args.n):
                remote = base / f"remote-{method}-{round_}"
                shutil.rmtree(project / ".duplex", ignore_errors=True)  # no record: a first sync
                conn = Connection(parse_target(server.url(remote), "bench"), project)
                with conn:
                    opened.append(conn.opened_seconds)
                    begin = time.monotonic()
                    conn.run(["true"])
                    trip.append(time.monotonic() - begin)
                    result = sync(conn, method=method)
                    first.append(result.seconds)
                    idle.append(sync(conn, method=method).seconds)
                    edited.write_text(edited.read_text() + f"# edit {round_}\n")
                    changed = sync(conn, method=method)
                    assert changed.sent == ("duplex/layout.py",), changed.sent
                    one.append(changed.seconds)
                    files, size = result.files, result.bytes
                shutil.rmtree(remote)
            rows.append((method, files, size, first, idle, one, opened, trip))
        print(f"\nthis repository: {files} files, {size / 1e6:.1f} MB; medians of {args.n}\n")
        print(f"{'method':<7} {'first sync':>11} {'no change':>10} {'one file':>9} {'connect':>8} {'a command':>10}")
        for method, _files, _size, first, idle, one, opened, trip in rows:
            med = statistics.median
            print(f"{method:<7} {med(first):>10.2f}s {med(idle):>9.2f}s {med(one):>8.2f}s "
                  f"{med(opened):>7.2f}s {med(trip):>9.3f}s")
        begin = time.monotonic()
        subprocess.run(["bash", "-c", "source ~/.bashrc 2>/dev/null; true"], timeout=30)
        print(f"\nthe remote user's .bashrc, paid by every remote command: {time.monotonic() - begin:.2f}s")
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    finally:
        sshd_support.stop(server)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
