"""A full disk during a run (issue 18, family 1): services keep being served whatever happens to
their logs, the run state is written atomically or not at all, and a full disk is one clear line.

Real full disks: a small tmpfs mounted over the toy project's `.duplex/logs` or `.duplex/run`
(root only, as here and in CI), filled to the last block."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.run.conftest import ctrl_c, group_pids, lines_of, wait_for, wait_gone
from tests.support.disk import fill, tmpfs

MARK = "x" * 400  # every request logs an access line of ~500 bytes: 64 KiB of pipe in ~130 requests


def serve_many(toy, name: str, count: int, timeout: float = 5) -> int:
    """Requests that each make the service log a long line; how many were answered."""
    answered = 0
    with httpx.Client(timeout=timeout) as client:
        for n in range(count):
            if client.get(toy.url(name, f"/version?n={n}&m={MARK}")).status_code == 200:
                answered += 1
    return answered


def no_temp_files(folder) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] if folder.exists() else []


def test_a_log_folder_that_fills_during_an_attached_run_never_blocks_the_service(toy):
    logs = toy.root / ".duplex" / "logs"
    with tmpfs(logs, "1m"):
        run = toy.popen("run", "--native", "--services", "api")
        out, seen = lines_of(run), []
        toy.wait_healthy("api", proc=run)
        wait_for(out, "press Ctrl-C", seen)
        fill(logs)
        began = time.monotonic()
        assert serve_many(toy, "api", 600) == 600  # ~300 KB of log lines: 4x what a pipe holds
        took = time.monotonic() - began
        time.sleep(0.5)
        ctrl_c(run, out, seen)
    text = "\n".join(seen)
    assert "Traceback" not in text and "Errno 28" not in text, text[-3000:]
    said = [line for line in seen if "cannot be written (the disk is full)" in line]
    assert len(said) == 1 and said[0].startswith("duplex | api: its log"), said  # once, by name
    assert "the service keeps running" in said[0]
    assert sum(f"n=599&m={MARK}" in line for line in seen) == 1  # the lines still reach the terminal
    assert took < 60
    assert toy.state()["services"] == {}


def test_an_already_full_state_disk_is_one_clear_line_and_starts_nothing(toy):
    run_dir = toy.root / ".duplex" / "run"
    with tmpfs(run_dir, "64k"):
        fill(run_dir)
        proc = toy.inv("run", "--native", "--detach", "--services", "api")
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert lines[0].startswith("duplex: cannot write ") and "state.json: the disk is full" in lines[0]
        assert "the previous file (if any) is intact" in lines[0]
        assert lines[1].strip().startswith("fix: free space on the disk that holds")
        assert no_temp_files(run_dir) == []
    assert "started" not in proc.stdout  # nothing began
    try:
        httpx.get(toy.url("api", "/health"), timeout=1)
        raise AssertionError("api answers: something was started")
    except httpx.HTTPError:
        pass


def test_a_state_disk_that_fills_during_the_run_is_said_once_and_stop_still_works(toy):
    run_dir = toy.root / ".duplex" / "run"
    with tmpfs(run_dir, "64k"):
        run = toy.popen("run", "--native", "--services", "web")
        out, seen = lines_of(run), []
        toy.wait_healthy("api", "web", proc=run)
        wait_for(out, "press Ctrl-C", seen)
        pids = [p for r in toy.state()["services"].values() for p in group_pids(r["pid"])]
        filler = fill(run_dir)
        text = ctrl_c(run, out, seen)
        assert "Traceback" not in text, text[-3000:]
        warned = [line for line in seen if "warning: cannot write" in line and "the disk is full" in line]
        assert len(warned) == 1, text[-3000:]
        assert wait_gone(pids, timeout=5) == []
        assert no_temp_files(run_dir) == []
        assert toy.state()["services"] == {}  # everything stopped: removing the file needs no space
        filler.unlink()
        again = toy.inv("run", "--native", "--detach", "--services", "web")
        assert again.returncode == 0, again.stdout + again.stderr
        stop = toy.inv("stop")
        assert stop.returncode == 0 and stop.stdout.strip().endswith("stopped: web, api"), stop.stdout


def test_a_detached_run_on_a_full_log_disk_still_serves_and_stops(toy):
    logs = toy.root / ".duplex" / "logs"
    with tmpfs(logs, "64k"):
        filler = fill(logs)
        proc = toy.inv("run", "--native", "--detach", "--services", "api")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr
        assert "warning: cannot write" in proc.stdout and "run.json: the disk is full" in proc.stdout
        assert serve_many(toy, "api", 300) == 300  # its log pump reads on and drops what it cannot write
        filler.unlink()
        deadline = time.monotonic() + 15
        log = logs / "api.log"
        while time.monotonic() < deadline and "lines of this log were not saved" not in _text(log):
            serve_many(toy, "api", 5)
            time.sleep(0.5)
        assert "lines of this log were not saved" in _text(log)  # writing resumed, and the gap is said
        assert f"m={MARK}" in _text(log)
        stop = toy.inv("stop")
        assert stop.returncode == 0 and "stopped: api" in stop.stdout, stop.stdout + stop.stderr


def _text(path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def test_publish_on_a_full_disk_is_one_line_and_leaves_nothing(toy, tmp_path):
    out = tmp_path / "out"
    with tmpfs(out, "64k"):
        fill(out)
        proc = toy.inv("publish", "--compose", "--services", "web", "--out", str(out / "deploy"), timeout=300)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr
        assert f"duplex: cannot write {out}/deploy/compose.yaml: the disk is full" in proc.stderr
        assert "fix: free space on the disk that holds" in proc.stderr
        assert sorted(p.name for p in out.iterdir()) == ["filler"]  # no half-written file, no folder


@pytest.mark.docker
def test_a_container_run_whose_build_folder_is_full_starts_nothing(toy):
    import docker
    build = toy.root / ".duplex" / "build"
    with tmpfs(build, "64k"):
        fill(build)
        proc = toy.inv("run", "--detach", "--services", "api", timeout=600)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr and "the disk is full" in proc.stderr, proc.stderr
        assert "ca.pem" in proc.stderr
    client = docker.from_env()
    assert client.containers.list(all=True, filters={"label": f"dev.duplex.root={toy.root}"}) == []
    assert toy.state()["services"] == {}
