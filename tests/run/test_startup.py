"""Start-up cut short or failing: Ctrl-C / SIGTERM during a health wait or a build, a service that never
gets healthy, on_crash = "stop". Each ends with a message, a non-zero exit and nothing left running."""

from __future__ import annotations

import signal
import socket
import time

import pytest

from tests.run.conftest import group_pids, wait_gone


def started(toy, name: str, run, timeout: float = 120) -> dict:
    """The state record of `name` once the run has started it (it is then waiting for its health)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = toy.state()["services"].get(name)
        if record:
            return record
        assert run.poll() is None, run.stdout.read()
        time.sleep(0.1)
    raise AssertionError(f"{name} never started")


def answers(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("sig, code, how, detach", [
    (signal.SIGTERM, 143, "SIGTERM", True),  # detached children have no PDEATHSIG: only duplex can stop them
    (signal.SIGINT, 130, "Ctrl-C", False),
])
def test_signal_during_the_health_wait_stops_what_had_started(toy, sig, code, how, detach):
    run = toy.popen("run", "--native", "--services", "web", *(["--detach"] if detach else []),
                    extra={"TOY_BOOT_DELAY": "60"})  # api answers 503 for a minute
    record = started(toy, "api", run)
    time.sleep(0.5)  # well inside the wait
    pids = group_pids(record["pid"])
    assert pids
    run.send_signal(sig)
    out, _ = run.communicate(timeout=60)
    assert run.returncode == code, out
    assert f"{how} during start-up: stopped what had started (api)" in out
    assert "Traceback" not in out and "web: started" not in out
    assert wait_gone(pids, timeout=5) == []
    assert toy.state()["services"] == {}
    assert not answers(toy.ports["api"])


def test_service_that_never_gets_healthy_is_named_with_its_timeout_and_last_lines(toy):
    toy.edit("start_timeout = 20", "start_timeout = 3")  # the first one: api's
    proc = toy.inv("run", "--native", "--services", "api", extra={"TOY_BOOT_DELAY": "60"})
    assert proc.returncode == 1
    assert f"api did not become healthy within 3s ({toy.url('api', '/health')})" in proc.stderr
    tail = proc.stderr.split("log lines:\n", 1)[1].split("\n  fix:")[0].splitlines()
    assert tail and all(line.startswith("    INFO:") for line in tail)  # uvicorn's own lines, indented
    assert "fix: read the log above; `inv logs --service api` keeps it" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert toy.state()["services"] == {}
    assert not answers(toy.ports["api"])


def test_on_crash_stop_stops_the_others_and_exits_non_zero(toy):
    toy.edit('name = "toy"', 'name = "toy"\non_crash = "stop"')
    run = toy.popen("run", "--native", "--services", "api,crash", extra={"TOY_CRASH_AFTER": "3"})
    api = started(toy, "api", run)
    toy.wait_healthy("api", proc=run)
    pids = group_pids(api["pid"])
    out, _ = run.communicate(timeout=60)
    assert run.returncode == 1, out
    assert "crash crashed: exited with code 3" in out and "toy crash: something went wrong" in out
    assert "on_crash = 'stop': stopping the others" in out
    assert out.index("stopping the others") < out.index("api: stopping")
    assert wait_gone(pids, timeout=5) == []
    assert toy.state()["services"] == {}
