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
from tests.support.tools import find_tool

MARK = "session.pid"


def mark(basetemp: Path) -> None:
    """This session is alive: its containers are not leftovers."""
    (basetemp / MARK).write_text(str(os.getpid()))


def _alive(session: Path) -> bool:
    try:
        os.kill(int((session / MARK).read_text()), 0)
    except (OSError, ValueError):  # no mark, an old session without one, or its process is gone
        return False
    return True


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
