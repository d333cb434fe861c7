"""An ended test session's containers are cleared before a session's tests (tests/support/leftovers.py):
what made CI red on a machine whose engine kept a killed run's `duplex-translatechain-asr`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from duplex.plan import LABEL
from tests.support import leftovers
from tests.support.tools import tool

pytestmark = pytest.mark.docker


def _session(sessions: Path, n: int, pid: int | None) -> Path:
    folder = sessions / f"pytest-{n}"
    folder.mkdir(parents=True)
    if pid is not None:
        leftovers.mark(folder, pid)
    return folder


def _recycled(sessions: Path, n: int) -> Path:
    """A session whose pid the kernel gave to a live process since (after a reboot): its start time differs."""
    folder = _session(sessions, n, None)
    (folder / leftovers.MARK).write_text(f"{os.getpid()} 1")
    return folder


def test_only_ended_sessions_containers_are_stale(tmp_path):
    sessions = tmp_path / "pytest-of-ana"
    ours = _session(sessions, 9, os.getpid())
    beside = subprocess.Popen(["sleep", "60"])  # a session running beside this one
    ended = subprocess.Popen(["true"])
    ended.wait()
    try:
        owners = {
            "unmarked": str(_session(sessions, 1, None) / "chain0" / "stack"),   # an old session, or pytest's own cleanup
            "dead": str(_session(sessions, 2, ended.pid) / "chain0" / "stack"),
            "beside": str(_session(sessions, 3, beside.pid) / "chain0" / "stack"),
            "gone": str(sessions / "pytest-4" / "chain0" / "stack"),           # folder already rotated away
            "recycled": str(_recycled(sessions, 5) / "chain0" / "stack"),     # its pid now another process's
            "ours": str(ours / "chain0" / "stack"),
            "user": "/home/ana/duplex",                                          # a user's own checkout
        }
        assert sorted(leftovers.stale(owners, ours)) == ["dead", "gone", "recycled", "unmarked"]
    finally:
        beside.kill()
        beside.wait()


def test_an_ended_sessions_container_is_removed_and_others_kept(tmp_path):
    docker = tool("docker")
    image = os.environ.get("DUPLEX_BASE_IMAGE", "python:3.11-slim-bookworm")
    sessions = tmp_path / "pytest-of-ana"
    ours = _session(sessions, 2, os.getpid())
    old = _session(sessions, 1, None)
    names = {f"duplex-leftover-{os.getpid()}-old": old / "stack", f"duplex-leftover-{os.getpid()}-ours": ours / "stack"}
    for name, root in names.items():
        made = subprocess.run([docker, "create", "--name", name, "--label", f"{LABEL}.root={root}", image, "true"],
                              capture_output=True, text=True, timeout=300)
        assert made.returncode == 0, made.stderr
    try:
        removed = leftovers.remove_stale(ours)
        left = subprocess.run([docker, "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True,
                              check=True).stdout.split()
        old_name, ours_name = names
        assert removed == [old_name] and old_name not in left and ours_name in left
    finally:
        subprocess.run([docker, "rm", "-f", *names], capture_output=True)
