"""Containers an earlier test session left behind (a run killed mid-test, a teardown that timed out).

The suite's stacks are copied under pytest's temp folder with fixed test names (`translatechain`),
so a container left by an earlier session holds the name and duplex rightly refuses to take over
another checkout's container. Each session marks its temp folder with its pid; a container whose
checkout lies in another session's folder, and that session is gone, is removed before any test
runs. A user's own runs (checkouts outside pytest's temp folders) and a session running beside
this one are never touched.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from duplex.plan import LABEL
from duplex.run.processes import start_time
from tests.support.tools import find_tool

MARK = "session.pid"


def mark(basetemp: Path, pid: int | None = None) -> None:
    """This session (or `pid`'s) is alive: its containers are not leftovers. With the pid's start
    time, so a pid the kernel recycled (after a reboot, say) is never taken for the session's."""
    pid = pid or os.getpid()
    (basetemp / MARK).write_text(f"{pid} {start_time(pid) or '-'}")


def _alive(session: Path) -> bool:
    try:
        pid, started = (session / MARK).read_text().split()
        if started == "-":  # no /proc where it ran (macOS): the pid alone
            os.kill(int(pid), 0)
            return True
        return start_time(int(pid)) == started
    except (OSError, ValueError):  # no mark, an old session's in another form, or its process is gone
        return False


def stale(owners: dict[str, str], basetemp: Path) -> list[str]:
    """The container ids (of {id: checkout}) whose checkout is in an ended session's temp folder."""
    sessions = basetemp.parent  # /tmp/pytest-of-<user>
    found = []
    for cid, root in owners.items():
        path = Path(root)
        if not path.is_relative_to(sessions) or path.is_relative_to(basetemp):
            continue
        if not _alive(sessions / path.relative_to(sessions).parts[0]):
            found.append(cid)
    return found


def remove_stale(basetemp: Path) -> list[str]:
    """Remove the ended sessions' containers; their names, for the report. Without a reachable
    engine there is nothing to clear (the tests that need one say so themselves)."""
    docker = find_tool("docker")
    if docker is None:
        return []
    listed = subprocess.run([docker, "ps", "-a", "--filter", f"label={LABEL}.root", "--format",
                             f'{{{{.ID}}}}\t{{{{.Names}}}}\t{{{{.Label "{LABEL}.root"}}}}'],
                            capture_output=True, text=True, timeout=60)
    if listed.returncode != 0:
        return []
    rows = [line.split("\t") for line in listed.stdout.splitlines() if line.count("\t") == 2]
    names = {cid: name for cid, name, _ in rows}
    ids = stale({cid: root for cid, _, root in rows}, basetemp)
    if ids:
        subprocess.run([docker, "rm", "-f", *ids], capture_output=True, timeout=120)
    return [names[cid] for cid in ids]
