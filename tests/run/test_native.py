"""Native runs with real processes: health waits, discovery, logs, crash reports, no orphans."""

from __future__ import annotations

import json
import os
import signal
import socket
import time

from tests.run.conftest import free_port, group_pids, wait_gone


def native_pgids(toy) -> list[int]:
    return [r["pid"] for r in toy.state()["services"].values() if r["mode"] == "native"]


def all_pids(pgids) -> list[int]:
    return [pid for g in pgids for pid in group_pids(g)]


def test_detach_discovery_status_logs_and_stop(toy):
    proc = toy.inv("run", "--native", "--detach", "--services", "web")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all 2 services healthy" in proc.stdout
    env = toy.get("web", "/env")
    assert env["PEER_URL"] == toy.url("api")
    assert env["services__api__http__0"] == toy.url("api")
    assert env["VIRTUAL_ENV"].endswith(".duplex/envs/web")
    assert toy.get("api", "/env")["TOY_NAME"] == "api"

    rows = json.loads(toy.inv("status", "--json").stdout)
    assert [(r["name"], r["mode"], r["state"], r["healthy"], r["url"]) for r in rows] == [
        ("api", "native", "running", True, toy.url("api")),
        ("web", "native", "running", True, toy.url("web"))]
    assert "Application startup complete" in toy.inv("logs", "--service", "api").stdout

    pids = all_pids(native_pgids(toy))
    assert len(pids) >= 4  # a reloader and a server process each
    assert toy.inv("run", "--native", "--services", "web").returncode != 0  # already running
    stop = toy.inv("stop")
    assert stop.returncode == 0 and "api" in stop.stdout and "web" in stop.stdout
    assert stop.stdout.index("web: stopping") < stop.stdout.index("api: stopping")  # dependents first
    assert stop.stdout.strip().endswith("stopped: web, api")
    assert wait_gone(pids, timeout=5) == []
    assert json.loads(toy.inv("status", "--json").stdout) == []


def test_sigterm_stops_everything_in_reverse_order(toy):
    run = toy.popen("run", "--native", "--services", "web")
    toy.wait_healthy("api", "web", proc=run)
    time.sleep(0.5)  # let the state file settle
    pids = all_pids(native_pgids(toy))
    run.send_signal(signal.SIGTERM)
    out, _ = run.communicate(timeout=60)
    assert run.returncode == 143, out
    assert out.index("web: stopping") < out.index("api: stopping")
    assert wait_gone(pids, timeout=5) == []
    assert toy.state()["services"] == {}


def test_duplex_killed_leaves_no_orphans_and_stop_cleans_up(toy):
    run = toy.popen("run", "--native", "--services", "web")
    toy.wait_healthy("api", "web", proc=run)
    time.sleep(0.5)
    pids = all_pids(native_pgids(toy))
    run.kill()  # SIGKILL: duplex cannot clean up itself
    run.wait(timeout=10)
    assert wait_gone(pids, timeout=15) == [], "children outlived a SIGKILLed duplex"
    assert toy.inv("stop").returncode == 0
    assert toy.state()["services"] == {}


def test_crash_before_healthy_reports_exit_code_and_last_lines(toy):
    proc = toy.inv("run", "--native", "--services", "crash")
    assert proc.returncode == 1
    assert "crash exited with code 3 before it became healthy" in proc.stderr
    assert "toy crash: something went wrong" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert toy.state()["services"] == {}


def test_crash_while_running_is_reported_at_once_and_others_keep_running(toy):
    run = toy.popen("run", "--native", "--services", "api,crash", extra={"TOY_CRASH_AFTER": "4"})
    toy.wait_healthy("api", "crash", proc=run)
    deadline = time.monotonic() + 30
    lines = []
    for line in run.stdout:
        lines.append(line)
        if "crash crashed: exited with code 3" in line or time.monotonic() > deadline:
            break
    text = "".join(lines)
    assert "crash crashed: exited with code 3" in text
    time.sleep(1)
    assert toy.get("api", "/health") == {"status": "ok"}  # on_crash = "keep" (the default)
    assert run.poll() is None
    run.send_signal(signal.SIGINT)
    out, _ = run.communicate(timeout=60)
    assert "toy crash: something went wrong" in text + out
    assert run.returncode == 130


def test_missing_env_points_to_setup(toy):
    (toy.root / ".duplex" / "envs" / "web").unlink()
    proc = toy.inv("run", "--native", "--services", "api")
    assert proc.returncode == 1
    assert "python.web.env: .duplex/envs/web is not built" in proc.stderr
    assert "fix: inv setup --env web" in proc.stderr


def test_port_taken_is_refused_before_anything_starts(toy):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", toy.ports["api"]))
        sock.listen()
        proc = toy.inv("run", "--native", "--services", "web")
    assert proc.returncode == 1
    assert f"ports.api: {toy.ports['api']} on 127.0.0.1 is in use" in proc.stderr
    assert "DUPLEX_PORT_API" in proc.stderr
    assert toy.state()["services"] == {}


def test_stale_env_points_to_setup(toy):
    lock = toy.root / "envs" / "web" / "requirements.lock"
    lock.write_text(lock.read_text() + "\n# edited\n")
    proc = toy.inv("run", "--native", "--services", "api")
    assert proc.returncode == 1
    assert "web is stale: envs/web/requirements.lock changed" in proc.stderr
    assert "fix: inv setup --env web" in proc.stderr
    assert toy.state()["services"] == {}


def test_duplex_killed_while_a_reloaded_service_drains_slowly_leaves_nothing_after_the_grace(toy):
    """PDEATHSIG gives uvicorn's reloader one SIGTERM; it then waits (join, no timeout) for its
    worker, whose drain takes 60 s here, and the resource tracker waits for both: three processes.
    Nothing ever escalated to SIGKILL the way `inv stop` does after the grace period (10 s)."""
    run = toy.popen("run", "--native", "--services", "api", extra={"TOY_STOP_DELAY": "60"})
    toy.wait_healthy("api", proc=run)
    time.sleep(0.5)
    pids = all_pids(native_pgids(toy))
    assert len(pids) == 4  # the guard, uvicorn's reloader, its resource tracker, its worker
    run.kill()
    run.wait(timeout=10)
    assert wait_gone(pids, timeout=15) == [], "a slow drain outlived a SIGKILLed duplex past the grace period"


def test_duplex_killed_leaves_no_grandchild_whose_parent_died_of_the_sigterm(toy):
    """PDEATHSIG reaches only the process duplex started: here a shell that dies of the SIGTERM and
    leaves its server child (which never got any signal) serving."""
    toy.edit('[services.crash]', '[services.shell]\nenv = "web"\ncommand = ["sh", "-c", '
             '"python crash.py {port} & wait"]\nport = 18504\nmodes = ["native"]\nhealth = "/health"\n'
             'start_timeout = 20\n\n[services.crash]')
    extra = {"TOY_CRASH_AFTER": "600", "DUPLEX_PORT_SHELL": str(free_port())}
    run = toy.popen("run", "--native", "--services", "shell", extra=extra)
    deadline = time.monotonic() + 60
    while "shell" not in toy.state()["services"] or not toy.state()["services"]["shell"].get("pid"):
        assert time.monotonic() < deadline and run.poll() is None
        time.sleep(0.2)
    pgid = toy.state()["services"]["shell"]["pid"]
    while len(group_pids(pgid)) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    pids = group_pids(pgid)
    run.kill()
    run.wait(timeout=10)
    assert wait_gone(pids, timeout=15) == [], "the shell's child outlived a SIGKILLed duplex"


def test_stop_ends_what_a_dead_group_leader_left_behind(toy):
    """The process duplex recorded (here a detached service's log pump, SIGKILLed) is gone but the
    service it started still serves in its group: `inv stop` stops it (before: it cleared the record
    as "no longer running" and left the service holding its port)."""
    assert toy.inv("run", "--native", "--detach", "--services", "api").returncode == 0
    leader = toy.state()["services"]["api"]["pid"]
    left = [p for p in group_pids(leader) if p != leader]
    os.kill(leader, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while os.path.exists(f"/proc/{leader}"):  # reaped, not only a zombie whose start time still reads
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert toy.get("api", "/health") == {"status": "ok"}
    stop = toy.inv("stop")
    assert stop.returncode == 0 and "api: stopping pid" in stop.stdout, stop.stdout + stop.stderr
    assert wait_gone(left, timeout=5) == []
