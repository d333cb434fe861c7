"""Debugger: debugpy-wrapped commands, launch.json merging, and a real DAP client hitting a breakpoint."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from duplex.debug import (
    DebugError,
    LaunchJsonError,
    attach_config,
    debug_command,
    debug_service,
    debugpy_dir,
    free_ports,
    write_launch_json,
)
from duplex.plan import Health, ServicePlan
from duplex.run.native import NativeRunner
from tests.daily.dap import DapSession
from tests.support.envs import ensure_env
from tests.support.net import free_port

APP = '''from fastapi import FastAPI
app = FastAPI()

@app.get("/health")
def health():
    return {"status": "ok"}

@app.get("/hello")
def hello():
    greeting = "hello"
    return {"greeting": greeting}
'''
BREAK_LINE = 10  # `greeting = "hello"`


def test_wraps_python_commands_and_keeps_interpreter_options():
    assert debug_command(["python", "-m", "uvicorn", "a:app", "--reload"], 5678) == [
        "python", "-Xfrozen_modules=off", "-m", "debugpy", "--listen", "127.0.0.1:5678",
        "-m", "uvicorn", "a:app", "--reload"]
    assert debug_command(["python", "-u", "-X", "dev", "run.py", "x"], 5679, wait=True) == [
        "python", "-Xfrozen_modules=off", "-u", "-X", "dev", "-m", "debugpy", "--listen", "127.0.0.1:5679",
        "--wait-for-client", "run.py", "x"]
    with pytest.raises(DebugError, match="wraps a Python command"):
        debug_command(["node", "server.js"], 5678)


def _service(command, mode="native") -> ServicePlan:
    return ServicePlan(name="toy", mode=mode, env="frontend", port=1, container_port=1, bind="127.0.0.1",
                       url="http://127.0.0.1:1", command=command, environment={"PYTHONPATH": "/x"},
                       secrets=set(), depends_on={}, health=Health("http", "http://127.0.0.1:1/health", 5))


def test_debug_service_prepends_debugpy_to_pythonpath_and_refuses_containers(tmp_path):
    svc = debug_service(_service(["python", "-m", "uvicorn", "a:app"]), 5678, False, tmp_path)
    assert svc.environment["PYTHONPATH"] == f"{tmp_path}:/x"
    assert "debugpy" in svc.command
    with pytest.raises(DebugError, match="native"):
        debug_service(_service(["python"], mode="container"), 5678, False, tmp_path)


def test_free_ports_skip_busy_ones():
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        taken = busy.getsockname()[1]
        busy.listen()
        assert taken not in free_ports(2, first=taken)


JSONC = """{
  // team launch configs: keep this comment
  "version": "0.2.0",
  "configurations": [
    {"name": "my script", "type": "debugpy", "request": "launch", /* mine */ "program": "x.py",},
    {"name": "duplex: asr", "type": "debugpy", "request": "attach", "connect": {"port": 1}},
  ],
}
"""


def test_launch_json_merge_keeps_user_entries_and_comments(tmp_path):
    path = tmp_path / ".vscode" / "launch.json"
    path.parent.mkdir()
    path.write_text(JSONC)
    write_launch_json(tmp_path, [attach_config("asr", 5678), attach_config("frontend", 5679)])
    text = path.read_text()
    assert "// team launch configs: keep this comment" in text and "/* mine */" in text
    from duplex.launch_json import mask
    configs = json.loads(mask(text))["configurations"]
    assert [c["name"] for c in configs] == ["my script", "duplex: asr", "duplex: frontend"]
    assert configs[0] == {"name": "my script", "type": "debugpy", "request": "launch", "program": "x.py"}
    assert configs[1]["connect"] == {"host": "127.0.0.1", "port": 5678}
    write_launch_json(tmp_path, [attach_config("asr", 5678), attach_config("frontend", 5679)])
    assert path.read_text() == text  # idempotent


def test_launch_json_created_and_broken_file_left_alone(tmp_path):
    path = write_launch_json(tmp_path, [attach_config("asr", 5678)])
    assert json.loads(path.read_text())["configurations"][0]["name"] == "duplex: asr"
    broken = '{"configurations": [ {"name": "x",, } ]'
    path.write_text(broken)
    with pytest.raises(LaunchJsonError, match="not valid JSON"):
        write_launch_json(tmp_path, [attach_config("asr", 5678)])
    assert path.read_text() == broken
    path.write_text('{"configurations": {"oops": 1}}')
    with pytest.raises(LaunchJsonError, match="configurations"):
        write_launch_json(tmp_path, [attach_config("asr", 5678)])


def _attach_children(parent: DapSession, port: int, breakpoints: dict, sessions: list) -> None:
    """What an editor does on debugpy's `debugpyAttach`: one more session per spawned child."""
    while True:
        try:
            event = parent.event("debugpyAttach", timeout=120)
        except Exception:  # noqa: BLE001 - the test is over
            return
        child = DapSession("127.0.0.1", port)
        child.attach(event["body"], breakpoints)
        child.pid = event["body"]["subProcessId"]
        sessions.append(child)


def _worker_attached(log: Path, sessions: list, after: int = 0, timeout: float = 60) -> None:
    """Wait until uvicorn's serving worker (its pid from the log) has a session with breakpoints."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [int(p) for p in re.findall(r"Started server process \[(\d+)\]", log.read_text())]
        if len(pids) > after and any(getattr(s, "pid", None) == pids[-1] for s in sessions):
            return
        time.sleep(0.1)
    raise AssertionError(f"the uvicorn worker was never attached:\n{log.read_text()[-2000:]}")


def _hit(sessions: list, start: int, url: str, timeout: float = 30) -> tuple[dict, dict]:
    """GET url in the background; return the `stopped` event and the response after `continue`."""
    answer: dict = {}
    getter = threading.Thread(target=lambda: answer.update(
        json.loads(urllib.request.urlopen(url, timeout=60).read())))
    getter.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for session in list(sessions[start:]):
            try:
                stopped = session.event("stopped", timeout=0.1)
            except Exception:  # noqa: BLE001 - not this one
                continue
            session.request("continue", {"threadId": stopped["body"]["threadId"]})
            getter.join(30)
            return stopped, answer
    raise AssertionError("no breakpoint was hit")


def _wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_real_debugpy_client_hits_a_breakpoint_in_a_native_service_with_reload(tmp_path):
    root = tmp_path / "stack"
    (root / "svc").mkdir(parents=True)
    (root / ".duplex" / "envs").mkdir(parents=True)
    (root / ".duplex" / "envs" / "frontend").symlink_to(ensure_env("frontend").resolve())
    app = root / "svc" / "app.py"
    app.write_text(APP)
    port, dport = free_port(), free_ports(1, first=free_port())[0]
    runner = NativeRunner(root, detach=True)
    python = root / ".duplex" / "envs" / "frontend" / "bin" / "python"
    tools = debugpy_dir(root, python)  # fetched once per interpreter, then reused
    assert (tools / "debugpy" / "__init__.py").exists() and debugpy_dir(root, python) == tools
    plain = _service(["python", "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port),
                      "--reload", "--reload-dir", "svc", "--app-dir", "svc"])
    svc = debug_service(plain, dport, False, tools)
    handle = runner.start(svc, None)
    sessions: list[DapSession] = []
    try:
        _wait_http(f"http://127.0.0.1:{port}/health")  # serves with no client attached
        parent = DapSession("127.0.0.1", dport)
        breakpoints = {str(app): [BREAK_LINE]}
        threading.Thread(target=_attach_children, args=(parent, dport, breakpoints, sessions),
                         daemon=True).start()
        parent.attach({"justMyCode": False}, breakpoints)
        _worker_attached(handle.log, sessions)
        stopped, answer = _hit(sessions, 0, f"http://127.0.0.1:{port}/hello")
        assert stopped["body"]["reason"] == "breakpoint"
        assert answer == {"greeting": "hello"}
        # Reload still works under the debugger: a save spawns a new worker, attached and stopping too.
        before = len(sessions)
        app.write_text(APP.replace('"hello"}', '"hello"}  # saved'))
        _worker_attached(handle.log, sessions, after=1)
        _wait_http(f"http://127.0.0.1:{port}/health")
        stopped, answer = _hit(sessions, before, f"http://127.0.0.1:{port}/hello")
        assert stopped["body"]["reason"] == "breakpoint" and answer == {"greeting": "hello"}
    finally:
        for session in sessions:
            session.close()
        handle.stop(5)
        assert Path(handle.log).exists()
