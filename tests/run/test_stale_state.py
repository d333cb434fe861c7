"""State that `inv stop` cannot clear (issue 18, family 2), against the real Docker engine: what
duplex records is checked against what is really there, a stale record never blocks, a failed
start leaves nothing, and a run never touches another checkout's containers."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess

import pytest

from tests.run.conftest import Toy, labelled
from tests.support.browser import wait_for

pytestmark = pytest.mark.docker


def test_a_container_removed_behind_duplex_s_back_never_blocks_the_next_run(engine, toy):
    first = toy.inv("run", "--detach", "--services", "api", timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    (container,) = labelled(engine, toy)
    container.remove(force=True)  # `docker rm -f`, a prune, an engine restart
    assert json.loads(toy.inv("status", "--json").stdout) == []
    again = toy.inv("run", "--detach", "--services", "api", timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr  # was: "a run of this stack is already going"
    assert "cleared the records of api" in again.stdout
    assert toy.get("api", "/health")["status"] == "ok"
    labelled(engine, toy)[0].remove(force=True)
    stop = toy.inv("stop")
    assert stop.returncode == 0, stop.stderr
    assert "api: cleared its record (its container is gone" in stop.stdout
    assert stop.stdout.strip().endswith("nothing was running")
    assert toy.state()["services"] == {}


def test_a_container_start_the_engine_refuses_leaves_no_container(engine, toy):
    with socket.socket() as busy:  # the port is taken after preflight would have looked
        busy.bind(("127.0.0.1", toy.ports["api"]))
        busy.listen()
        proc = toy.inv("run", "--detach", "--skip-preflight", "--services", "api", timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "the engine refused to start the container" in proc.stderr and "Traceback" not in proc.stderr
    assert "DUPLEX_PORT_API" in proc.stderr  # the fix names the variable that moves it
    assert labelled(engine, toy) == []  # was: a created container left behind
    assert toy.state()["services"] == {}


def test_another_checkout_with_the_same_stack_name_is_never_touched(engine, toy, tmp_path, toy_env):
    first = toy.inv("run", "--detach", "--services", "api", timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    (theirs,) = labelled(engine, toy)
    other_root = tmp_path / "worktree-b"
    shutil.copytree(toy.root, other_root, symlinks=True, ignore=shutil.ignore_patterns("run", "logs"))
    other = Toy(other_root)  # same [stack] name "toy", other ports, another checkout
    try:
        proc = other.inv("run", "--detach", "--services", "api", timeout=600)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert f"the container duplex-toy-api belongs to the checkout at {toy.root}" in proc.stderr
        assert f"cd {toy.root} && inv stop --all" in proc.stderr and "[stack] name" in proc.stderr
        theirs.reload()
        assert theirs.status == "running" and [c.id for c in labelled(engine, toy)] == [theirs.id]
        stop = other.inv("stop", "--all")
        assert stop.returncode == 0 and "nothing was running" in stop.stdout
        theirs.reload()
        assert theirs.status == "running"  # the other checkout's `inv stop --all` left it alone
    finally:
        other.inv("stop", "--all")


def test_a_container_whose_checkout_was_deleted_is_named_so(engine, toy, tmp_path, toy_env):
    """A killed run in a folder deleted since (a CI checkout, a removed worktree): `cd there && inv
    stop` cannot work, so the fix is the one that does."""
    other_root = tmp_path / "worktree-c"
    shutil.copytree(toy.root, other_root, symlinks=True, ignore=shutil.ignore_patterns("run", "logs"))
    first = Toy(other_root).inv("run", "--detach", "--services", "api", timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    (orphan,) = labelled(engine, Toy(other_root))
    try:
        assert _dashboards_of(other_root)  # a detached run keeps its dashboard
        shutil.rmtree(other_root)
        # its detached run's dashboard, which no `inv stop` can reach now, ends itself
        wait_for(lambda: not _dashboards_of(other_root), 15, "the deleted checkout's dashboard gone")
        proc = toy.inv("run", "--detach", "--services", "api", timeout=600)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
        assert f"belongs to a checkout that no longer exists ({other_root})" in proc.stderr
        assert "cd " not in proc.stderr and f"docker rm -f {orphan.name}" in proc.stderr
    finally:
        orphan.remove(force=True)
    again = toy.inv("run", "--detach", "--services", "api", timeout=600)  # the fix given, then the run goes
    assert again.returncode == 0, again.stdout + again.stderr


def test_a_persistent_container_that_never_became_healthy_is_not_kept(engine, toy):
    toy.edit('start_timeout = 20\ndockerfile = "toy.Dockerfile"\n[services.api.environment]\nTOY_NAME = "api"',
             'start_timeout = 3\npersistent = true\ndockerfile = "toy.Dockerfile"\n[services.api.environment]\n'
             'TOY_NAME = "api"\nTOY_BOOT_DELAY = "600"')
    proc = toy.inv("run", "--detach", "--services", "api", timeout=600)
    assert proc.returncode == 1 and "did not become healthy within 3s" in proc.stderr, proc.stdout + proc.stderr
    assert labelled(engine, toy) == []  # was: kept "warm" although it never served


def _dashboards_of(root) -> list[str]:
    out = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "duplex.dashboard" in line and line.endswith(str(root))]
