"""Replicas through the real `inv run --native --replicas asr=2` of the default stack (pocketsphinx
asr; moshi is GPU-only and left out here): both replicas healthy on their ports, `inv status` a row
each, the frontend given both URLs, `inv logs asr` both streams, `inv stop` ending all of them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import ROOT
from tests.run.conftest import pid_alive, wait_gone
from tests.support.net import free_port
from tests.support.stackcopy import copy_stack


def free_run(count: int) -> int:
    """A port with the `count - 1` after it free too (a service's replicas take port, port + 1, ...)."""
    for _ in range(50):
        base = free_port()
        socks = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise AssertionError(f"no {count} free ports in a row")


def environ_of(pid: int) -> dict[str, str]:
    """A process's environment as it started (what the run gave it)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_two_asr_replicas_natively_healthy_listed_discovered_and_stopped(tmp_path):
    root = copy_stack(tmp_path / "stack", "replicas")
    asr, front = free_run(2), free_port()
    env = {**os.environ, "DUPLEX_STACK": str(root / "stack.toml"), "DUPLEX_PORT_ASR": str(asr),
           "DUPLEX_PORT_FRONTEND": str(front)}
    inv = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]
    pids: list[int] = []

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*inv, *args], cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    try:
        done = run("run", "--native", "--replicas", "asr=2", "--detach", "--no-dashboard", timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        for port in (asr, asr + 1):
            assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
        rows = {r["name"]: r for r in json.loads(run("status", "--json").stdout)}
        assert {n: (r["mode"], r["healthy"]) for n, r in rows.items()} == {
            "asr": ("native", True), "asr_1": ("native", True), "frontend": ("native", True)}
        assert rows["asr_1"]["url"] == f"http://127.0.0.1:{asr + 1}" and rows["asr"]["id"] != rows["asr_1"]["id"]
        state = json.loads((root / ".duplex" / "run" / "state.json").read_text())
        pids = [r["pid"] for r in state["services"].values()]
        smoked = run("smoke", "--services", "asr", "--json")  # each replica transcribes the sample
        assert smoked.returncode == 0, smoked.stdout + smoked.stderr
        assert sorted((r["name"], r["status"], r["check"]) for r in json.loads(smoked.stdout)["results"]) == [
            ("asr", "pass", "transcribe"), ("asr_1", "pass", "transcribe")], smoked.stdout
        restarted = run("restart", "asr")  # a service's restart: each of its replicas, health-gated
        assert restarted.returncode == 0 and "asr_1: healthy at" in restarted.stdout, restarted.stdout + restarted.stderr
        fresh = json.loads((root / ".duplex" / "run" / "state.json").read_text())["services"]
        assert fresh["asr_1"]["pid"] != state["services"]["asr_1"]["pid"] and fresh["asr"]["url"].endswith(str(asr))
        pids += [r["pid"] for r in fresh.values()]
        front_env = environ_of(_server_pid(state["services"]["frontend"]["pid"], front))
        assert front_env["ASR_URL"] == f"http://127.0.0.1:{asr},http://127.0.0.1:{asr + 1}"
        assert front_env["services__asr__http__1"] == f"http://127.0.0.1:{asr + 1}"
        assert front_env["ASR_SESSIONS"] == "8"
        assert (root / ".duplex" / "logs" / "asr_1.log").exists()
        shown = run("logs", "--service", "asr", "--lines", "5")
        logs = shown.stdout.splitlines()  # one stream, each line its replica's
        assert logs, shown.stdout + shown.stderr
        assert {line.split()[0] for line in logs} == {"asr", "asr_1"}, logs
        partial = run("stop", "--services", "asr")  # the service: all its replicas, its dependents kept
        assert partial.returncode == 0 and "stopped: asr_1, asr" in partial.stdout.replace("asr, asr_1", "asr_1, asr"), \
            partial.stdout + partial.stderr
        assert [r["name"] for r in json.loads(run("status", "--json").stdout)] == ["frontend"]
        stopped = run("stop")
        assert stopped.returncode == 0 and "stopped: frontend" in stopped.stdout, stopped.stdout + stopped.stderr
        assert wait_gone(pids) == []
        assert json.loads(run("status", "--json").stdout) == []
    finally:
        subprocess.run([*inv, "stop", "--all"], cwd=root, env=env, capture_output=True, timeout=120)
    assert not any(pid_alive(p) for p in pids)


def _server_pid(recorded: int, port: int) -> int:
    """The frontend's server under the recorded group leader (a detached run records the log pump;
    the server is below it, uvicorn's reloader maybe between): the one whose argv has its port."""
    import psutil
    for proc in [psutil.Process(recorded), *psutil.Process(recorded).children(recursive=True)]:
        argv = proc.cmdline()
        if "--port" in argv and argv[argv.index("--port") + 1] == str(port) and "servers.frontend.app:app" in argv:
            return proc.pid
    raise AssertionError(f"no frontend server on {port} under pid {recorded}")


def test_a_replica_port_in_use_fails_the_run_before_anything_starts(tmp_path):
    root = copy_stack(tmp_path / "stack", "replicas-busy")
    asr, front = free_run(2), free_port()
    env = {**os.environ, "DUPLEX_STACK": str(root / "stack.toml"), "DUPLEX_PORT_ASR": str(asr),
           "DUPLEX_PORT_FRONTEND": str(front)}
    inv = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]
    with socket.socket() as busy:  # replica 1's port, taken
        busy.bind(("127.0.0.1", asr + 1))
        busy.listen()
        for args in (["preflight", "--native", "--replicas", "asr=2", "--json"],
                     ["run", "--native", "--replicas", "asr=2", "--detach", "--no-dashboard"]):
            done = subprocess.run([*inv, *args], cwd=root, env=env, capture_output=True, text=True, timeout=120)
            said = " ".join((done.stdout + done.stderr).split())  # the one line, however it was wrapped
            assert done.returncode != 0 and "asr_1" in said and f"{asr + 1} on 127.0.0.1 is in use" in said, said
            assert "export DUPLEX_PORT_ASR=" in said and "its replicas take the ports after it" in said, said
            assert f"{asr} on 127.0.0.1 is in use" not in said  # replica 0's is free: only replica 1 fails
    assert not (root / ".duplex" / "logs" / "asr.log").exists()  # refused before any start
