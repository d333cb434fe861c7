"""State that `inv stop` cannot clear, natively (issue 18, family 2): a killed run's records never
block the next one, and two runs started together never overwrite each other's state."""

from __future__ import annotations

import signal
import time

from tests.run.conftest import group_pids, wait_gone


def test_a_killed_native_run_leaves_records_that_stop_clears_and_run_ignores(toy):
    run = toy.popen("run", "--native", "--services", "api")
    toy.wait_healthy("api", proc=run)
    time.sleep(0.3)
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # PR_SET_PDEATHSIG takes the service down with duplex
        try:
            toy.get("api", "/health")
            time.sleep(0.1)
        except OSError:
            break
    assert "api" in toy.state()["services"]  # the record of a run nobody stopped
    again = toy.inv("run", "--native", "--detach", "--services", "api")
    assert again.returncode == 0, again.stdout + again.stderr
    assert toy.inv("stop").returncode == 0


def test_two_runs_started_together_never_both_start(toy):
    first = toy.popen("run", "--native", "--detach", "--services", "web")
    second = toy.popen("run", "--native", "--detach", "--services", "web")
    outs = [p.communicate(timeout=120)[0] for p in (first, second)]
    codes = sorted(p.returncode for p in (first, second))
    assert codes == [0, 1], outs
    refused = outs[[first.returncode, second.returncode].index(1)]
    assert "another `inv run` of this stack is starting or running" in refused \
        or "a run of this stack is already going" in refused or "already in use" in refused, refused
    pids = [p for r in toy.state()["services"].values() for p in group_pids(r["pid"])]
    assert set(toy.state()["services"]) == {"api", "web"}  # the run that started is the one recorded
    stop = toy.inv("stop")
    assert stop.returncode == 0 and stop.stdout.strip().endswith("stopped: web, api"), stop.stdout
    assert wait_gone(pids, timeout=5) == []
