"""One service's actions in-process (duplex.run.service: `inv restart NAME`, the dashboard's
stop/start/restart buttons): the real native runner (detached: the log pump and a tiny stdlib HTTP
server per service, from this venv's Python), real health waits and locks, a real plan from a stack
file; only the engine is a fake. No Docker, no `inv`; a few tenths of a second each (two Python
start-ups per service start)."""

from __future__ import annotations

import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from duplex.errors import PlanError, RunError
from duplex.layout import Layout
from duplex.machine import Machine
from duplex.plan import plan
from duplex.run.locks import ActionBusy, action
from duplex.run.service import restart_service, start_service, stop_service
from duplex.run.state import read_state
from duplex.run.stop import stop
from duplex.stack import load_stack
from tests.run.inprocess import (
    WAIT,
    FakeEngine,
    no_real_engine,  # noqa: F401 - an autouse fixture: no real engine here
    running,
    write_run,
)
from tests.support.net import free_ports

APP = """
import http.server, sys
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(sys.argv[2].encode())
    def log_message(self, *_args):
        pass
print("serving", flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""

STACK = """
[stack]
name = "unit"
[envs.e]
[services.api]
env = "e"
command = ["python", "-I", "-S", "app.py", "{{port}}", "api"]
port = {api}
modes = ["native"]
health = "/health"
start_timeout = 10
[services.web]
env = "e"
command = ["python", "-I", "-S", "app.py", "{{port}}", "web"]
port = {web}
modes = ["native"]
health = "/health"
start_timeout = 10
depends_on = ["api"]
[services.crash]
env = "e"
command = ["python", "-I", "-S", "-c", "raise SystemExit(3)"]
port = {crash}
modes = ["native"]
health = "/health"
start_timeout = 10
"""


class Project:
    """A project folder with the stack above, its env this test run's venv, and its plan."""

    def __init__(self, root: Path):
        self.root = root
        self.ports = dict(zip(("api", "web", "crash"), free_ports(3), strict=True))
        (root / "stack.toml").write_text(textwrap.dedent(STACK.format(**self.ports)))
        (root / "app.py").write_text(APP)
        env = Layout(root).env("e")
        env.parent.mkdir(parents=True)
        env.symlink_to(Path(sys.prefix))
        self.plan = plan(load_stack(root / "stack.toml"), Machine(env={}), native=True)
        self.engine = FakeEngine()
        self.lines: list[str] = []
        write_run(root, {}, [["api", "crash"], ["web"]])  # a run whose services were all stopped

    def say(self, line: str) -> None:
        self.lines.append(line)

    def start(self, name: str, **kwargs) -> float:
        return start_service(self.root, name, self.say, self.plan, engine=self.engine, **kwargs)

    def restart(self, name: str, **kwargs) -> float:
        return restart_service(self.root, name, self.say, the_plan=self.plan, engine=self.engine, **kwargs)

    def pid(self, name: str) -> int:
        return read_state(self.root)["services"][name]["pid"]

    def answer(self, name: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[name]}/health", timeout=5) as resp:
            return resp.read().decode()


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    made = Project(root)
    yield made
    try:
        stop(root, grace=1, engine=made.engine)
    except RunError:
        pass


def test_start_waits_until_healthy_and_records_the_service(project):
    took = project.start("api")
    assert took > 0 and project.answer("api") == "api"
    record = read_state(project.root)["services"]["api"]
    assert record["mode"] == "native" and running(record["pid"])
    assert record["health"] == {"kind": "http", "url": f"http://127.0.0.1:{project.ports['api']}/health",
                                "ca": None}
    assert read_state(project.root)["stack"] == "unit"  # the state file came back with the run's own keys
    assert f"api: started (native, pid {record['pid']}); waiting for http health" in project.lines
    assert any(line.startswith(f"api: healthy at http://127.0.0.1:{project.ports['api']} after ")
               for line in project.lines)


def test_a_service_whose_required_dependency_is_not_running_is_refused(project):
    with pytest.raises(RunError, match="web needs api, which is not running") as err:
        project.start("web")
    assert err.value.fix == "start api first (`inv restart api`)"
    assert "web" not in read_state(project.root)["services"]


def test_a_running_service_is_not_started_twice(project):
    project.start("api")
    with pytest.raises(RunError, match="api is already running"):
        project.start("api")


def test_a_service_that_exits_while_starting_is_an_error_that_says_where_to_look(project):
    with pytest.raises(RunError, match="crash exited with code 3 after the restart") as err:
        project.start("crash")
    assert err.value.fix == "`inv logs --service crash` says why"


def test_a_name_the_run_s_plan_does_not_have_is_refused(project):
    with pytest.raises(PlanError, match="'nope' is not a service of the run in progress"):
        project.restart("nope")


def test_restart_puts_a_new_process_in_the_old_one_s_place_and_dependents_keep_running(project):
    project.start("api")
    project.start("web")
    old, web = project.pid("api"), project.pid("web")
    project.restart("api")
    assert project.pid("api") != old and not running(old) and running(project.pid("api"))
    assert project.answer("api") == "api"
    assert project.pid("web") == web and running(web)  # a dependent reconnects; it is not restarted


def test_stop_one_service_ends_it_and_leaves_the_rest(project):
    project.start("api")
    project.start("web")
    web = project.pid("web")
    assert stop_service(project.root, "web", project.say, engine=project.engine) == ["web"]
    assert not running(web) and running(project.pid("api"))
    assert list(read_state(project.root)["services"]) == ["api"]


def test_an_action_in_progress_is_waited_for_or_refused(project):
    project.start("api")
    holding, release = threading.Event(), threading.Event()

    def other_action():
        with action(project.root, "the dashboard's restart of web"):
            holding.set()
            release.wait(5)
    holder = threading.Thread(target=other_action)
    holder.start()
    assert holding.wait(5)
    try:
        old = project.pid("api")
        with pytest.raises(ActionBusy, match=r"the dashboard's restart of web \(pid \d+, for \d+s\) is in progress"):
            project.restart("api", wait=False)
        assert project.pid("api") == old and running(old)  # refused before anything was done
        threading.Timer(0.05, release.set).start()
        project.restart("api")
        assert any(line.startswith("waiting for the dashboard's restart of web") for line in project.lines)
        assert project.pid("api") != old
    finally:
        release.set()
        holder.join()


def test_the_log_of_a_started_service_is_its_own_output(project):
    project.start("api")
    log = Layout(project.root).log("api")
    deadline = time.monotonic() + WAIT
    while not log.read_text() and time.monotonic() < deadline:
        time.sleep(0.005)  # the log pump writes what the service printed before it answered
    assert log.read_text().splitlines() == ["serving"]
