"""Actions on a run in progress, at the same time, through the real `inv` and real native services:
restarts of two services together (one slow to drain on SIGTERM), a restart racing `inv stop`, two
restarts of one service, a restart from a shell without the run's DUPLEX_PORT_*, a code reload
after the warm server process died, and the dashboard's buttons while a restart runs. Whatever
the order, the run state names the processes that serve, and `inv stop` leaves nothing running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.run.conftest import pid_alive, wait_gone
from tests.support.net import free_port

# A service that drains for SLOW_DRAIN seconds on SIGTERM (still serving meanwhile), as a server
# finishing its requests does. SO_REUSEPORT: a second copy started by a racing restart serves too
# (as a leaked process would), instead of failing on the port and hiding the leak.
SLOW = '''
import http.server, os, signal, socket, sys, threading, time
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"pid": %d}' % os.getpid()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()
server = Server(("127.0.0.1", int(sys.argv[1])), Health)
def drain(*_):
    print("slow: draining", flush=True)
    threading.Thread(target=lambda: (time.sleep(float(os.environ.get("SLOW_DRAIN", "4"))), os._exit(0))).start()
signal.signal(signal.SIGTERM, drain)
print("slow: serving", os.getpid(), flush=True)
server.serve_forever()
'''

SLOW_SERVICE = '''
[services.slow]
env = "web"
command = ["python", "slow.py", "{port}"]
port = 18504
modes = ["native"]
health = "/health"
start_timeout = 20
'''


@pytest.fixture
def slow_toy(toy):
    (toy.root / "slow.py").write_text(SLOW)
    with open(toy.root / "stack.toml", "a") as fh:
        fh.write(SLOW_SERVICE)
    toy.ports["slow"] = free_port()
    toy.env["DUPLEX_PORT_SLOW"] = str(toy.ports["slow"])
    return toy


def pumps(root: Path, name: str | None = None) -> list[int]:
    """The log pumps (each leads a detached native service's group) that write into this toy's logs."""
    logs = str(root / ".duplex" / "logs") + "/"
    found = []
    for entry in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = entry.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if len(argv) > 4 and argv[2].endswith("logpump.py") and argv[3].startswith(logs) \
                and (name is None or argv[3] == f"{logs}{name}.log") and pid_alive(int(entry.parent.name)):
            found.append(int(entry.parent.name))
    return found


def answers(toy, name: str) -> bool:
    try:
        return httpx.get(toy.url(name, "/health"), timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def draining(toy, name: str = "slow", timeout: float = 30) -> None:
    """Wait until the service got its SIGTERM (a restart's or a stop's stop is under way)."""
    log = toy.root / ".duplex" / "logs" / f"{name}.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and f"{name}: draining" in log.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{name} never began to drain")


def start(toy, services: str, *more: str) -> str:
    run = toy.inv("run", "--native", "--detach", "--services", services, *more, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def stopped_clean(toy) -> str:
    """`inv stop`: exit 0 means every process of the run is gone, and no service answers."""
    out = toy.inv("stop", timeout=90)
    assert out.returncode == 0, out.stdout + out.stderr
    assert wait_gone(pumps(toy.root), timeout=5) == [], out.stdout
    for name in ("api", "slow"):
        assert not answers(toy, name), f"{name} still answers after `inv stop` said:\n{out.stdout}"
    return out.stdout


def test_two_restarts_at_once_one_slow_to_drain_leave_the_state_naming_what_serves(slow_toy):
    toy = slow_toy
    start(toy, "api,slow", "--no-dashboard")
    first = toy.popen("restart", "slow")
    try:
        draining(toy)  # the slow one is stopping; the other restart runs meanwhile
        other = toy.inv("restart", "api", timeout=90)
        assert other.returncode == 0, other.stdout + other.stderr
        assert first.wait(90) == 0, first.stdout.read()
    finally:
        if first.poll() is None:
            first.kill()
    status = toy.inv("status", "--json")
    assert status.returncode == 0, status.stderr
    rows = {r["name"]: r for r in json.loads(status.stdout)}
    assert rows["api"]["state"] == "running" and rows["slow"]["state"] == "running", status.stdout
    for name in ("api", "slow"):  # the recorded pid is the group that serves
        assert toy.state()["services"][name]["pid"] in pumps(toy.root, name)
    stopped_clean(toy)
    again = toy.inv("run", "--native", "--detach", "--services", "api,slow", "--no-dashboard", timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr  # no port held by a forgotten process


def test_a_restart_racing_stop_leaves_nothing_running(slow_toy):
    toy = slow_toy
    start(toy, "api,slow", "--no-dashboard")
    restart = toy.popen("restart", "slow")
    try:
        draining(toy)
        run = toy.inv("run", "--native", "--detach", "--services", "api", "--no-dashboard", "--skip-preflight")
        assert run.returncode != 0 and "`inv restart slow`" in run.stderr and "is in progress" in run.stderr, \
            run.stdout + run.stderr  # nor does a run start in the middle of an action
        out = stopped_clean(toy)  # waits for the restart in progress, then stops what it started
        assert "waiting for `inv restart slow`" in out, out
        restart.wait(60)
    finally:
        if restart.poll() is None:
            restart.kill()
    assert toy.state()["services"] == {}


def test_two_restarts_of_one_service_leave_one_process_that_stop_ends(slow_toy):
    toy = slow_toy
    start(toy, "slow", "--no-dashboard")
    first = toy.popen("restart", "slow")
    try:
        draining(toy)
        second = toy.popen("restart", "slow")
        assert first.wait(90) == 0, first.stdout.read()
        assert second.wait(90) == 0, second.stdout.read()
    finally:
        for proc in (first, locals().get("second")):
            if proc is not None and proc.poll() is None:
                proc.kill()
    groups = pumps(toy.root, "slow")
    assert groups == [toy.state()["services"]["slow"]["pid"]], groups
    stopped_clean(toy)


def test_stop_finds_and_ends_a_service_process_the_state_lost(slow_toy):
    """A process of the run the state lost (here: started by hand as the log pump would) is shown by
    `inv status`, blocks `inv run` with its pid, and is stopped by `inv stop`, never left serving
    behind a "stopped"."""
    toy = slow_toy
    start(toy, "api", "--no-dashboard")
    log = toy.root / ".duplex" / "logs" / "slow.log"
    python = toy.root / ".duplex" / "envs" / "web" / "bin" / "python"
    pump = ROOT / "duplex" / "standalone" / "logpump.py"
    stray = subprocess.Popen([sys.executable, "-I", str(pump), str(log), "--",
                              str(python), "slow.py", str(toy.ports["slow"])], cwd=toy.root,
                             start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env={**os.environ, "SLOW_DRAIN": "0"})
    try:
        deadline = time.monotonic() + 20
        while not answers(toy, "slow"):
            assert time.monotonic() < deadline, "the stray service never answered"
            time.sleep(0.1)
        status = toy.inv("status")
        assert f"pid {stray.pid} (not in the run state" in status.stdout, status.stdout
        refused = toy.inv("run", "--native", "--detach", "--services", "slow", "--no-dashboard", "--skip-preflight")
        assert refused.returncode != 0 and f"slow: pid {stray.pid}, not in the run state" in refused.stderr, \
            refused.stdout + refused.stderr
        out = stopped_clean(toy)
        assert f"slow: stopping pid {stray.pid} (not in the run state)" in out, out
        assert stray.wait(10) is not None
    finally:
        if stray.poll() is None:
            os.killpg(stray.pid, signal.SIGKILL)


def test_a_restart_from_a_shell_without_the_run_s_ports_keeps_the_run_s_port(toy):
    start(toy, "web", "--no-dashboard")
    before = toy.state()["services"]["api"]["url"]
    bare = {k: v for k, v in toy.env.items() if not k.startswith("DUPLEX_PORT_")}
    out = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), "restart", "api"],
                         cwd=toy.root, env=bare, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stdout + out.stderr
    assert toy.state()["services"]["api"]["url"] == before
    assert answers(toy, "api")  # where web (and the dashboard) still send their requests
    assert toy.get("web", "/env")["PEER_URL"] == toy.url("api")
    # a shell that asks for another port is told, and the run's port is kept
    moved = toy.inv("restart", "api", extra={"DUPLEX_PORT_API": str(free_port())}, timeout=90)
    assert moved.returncode == 0 and "is not the run's: api keeps the run's port" in moved.stdout, \
        moved.stdout + moved.stderr
    assert answers(toy, "api")
    toy.inv("stop")


def test_a_restart_that_would_lose_a_secret_the_run_had_is_refused(toy):
    toy.edit('[services.api.environment]', 'secrets = ["TOY_SECRET"]\n[services.api.environment]')
    run = toy.inv("run", "--native", "--detach", "--services", "api", "--no-dashboard",
                  extra={"TOY_SECRET": "s3cret-value"}, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "s3cret-value" not in (toy.root / ".duplex" / "run" / "state.json").read_text()
    refused = toy.inv("restart", "api", timeout=90)
    assert refused.returncode != 0 and "the run was started with TOY_SECRET set" in refused.stderr \
        and "Traceback" not in refused.stderr, refused.stdout + refused.stderr
    assert answers(toy, "api")  # refused before anything was stopped
    ok = toy.inv("restart", "api", extra={"TOY_SECRET": "s3cret-value"}, timeout=90)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    toy.inv("stop")


def _server_process(reloader: int) -> int:
    import psutil
    for child in psutil.Process(reloader).children(recursive=True):
        if "--serve-fd" in child.cmdline():
            return child.pid
    raise AssertionError("no warm server process")


def _kill_the_server(toy) -> None:
    """SIGKILL the warm server process; the reloader says so and waits for a change."""
    import psutil
    log = toy.root / ".duplex" / "logs" / "api.log"
    seen = log.read_text(errors="replace").count("waiting for a change to start it again")
    top = psutil.Process(toy.state()["services"]["api"]["pid"])
    reloader = next(p.pid for p in (top, *top.children(recursive=True))  # the script itself, not its log pump
                    if p.cmdline()[1:2] and p.cmdline()[1].endswith("runner.py") and "--serve-fd" not in p.cmdline())
    os.kill(_server_process(reloader), signal.SIGKILL)
    deadline = time.monotonic() + 20
    while log.read_text(errors="replace").count("waiting for a change to start it again") == seen:
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def test_a_code_reload_after_the_warm_server_process_died_accepts_the_fresh_one(toy):
    toy.edit('app = "app:app"\nport = 18501\nhealth = "/health"\nstart_timeout = 20',
             'app = "app:app"\nreload = "warm"\nport = 18501\nhealth = "/health"\nstart_timeout = 10')
    run = toy.inv("run", "--native", "--detach", "--services", "api", timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    try:
        _kill_the_server(toy)
        began = time.monotonic()
        code = toy.inv("restart", "api", "--code", timeout=60)
        assert code.returncode == 0 and "code reloaded in a fresh server process" in code.stdout, \
            code.stdout + code.stderr
        assert time.monotonic() - began < 10 and answers(toy, "api")
        # the dashboard's button: the same path
        board = json.loads((toy.root / ".duplex" / "run" / "dashboard.json").read_text())
        _kill_the_server(toy)
        reply = httpx.post(f"http://127.0.0.1:{board['port']}/api/services/api/reload-code",
                           headers={"x-duplex-token": board["token"]}, timeout=60)
        assert reply.status_code == 200 and reply.json()["ok"], reply.text
        assert answers(toy, "api")
    finally:
        toy.inv("stop")


def test_the_dashboard_refuses_an_action_while_one_runs_and_a_killed_holder_frees_it(slow_toy):
    from tests.run.test_dashboard import LINK, click, state_of
    from tests.support.browser import chromium
    from tests.support.browser import wait_for as wait_until
    toy = slow_toy
    toy.env["SLOW_DRAIN"] = "10"  # long enough for the page and the API to ask while it drains
    link = LINK.search(start(toy, "api,slow")).group(1)
    board = json.loads((toy.root / ".duplex" / "run" / "dashboard.json").read_text())
    headers = {"x-duplex-token": board["token"]}
    with chromium() as driver:
        driver.get(link)
        wait_until(lambda: state_of(driver, "api") == "healthy", 30, "api healthy", driver)
        restart = toy.popen("restart", "slow")
        draining(toy)
        click(driver, "api", "restart")  # the page says who holds the run, and changes nothing
        wait_until(lambda: "`inv restart slow`" in driver.find_element("id", "message").text
                   and "is in progress" in driver.find_element("id", "message").text, 10,
                   "the page's refusal", driver)
    try:
        busy = httpx.post(f"http://127.0.0.1:{board['port']}/api/services/api/restart", headers=headers, timeout=60)
        assert busy.status_code == 409 and "`inv restart slow`" in busy.json()["error"] \
            and "is in progress" in busy.json()["error"], busy.text
        restart.send_signal(signal.SIGKILL)  # the holder dies mid-action: the kernel frees its lock
        restart.wait(10)
        ok = httpx.post(f"http://127.0.0.1:{board['port']}/api/services/api/restart", headers=headers, timeout=60)
        assert ok.status_code == 200 and ok.json()["ok"], ok.text
    finally:
        if restart.poll() is None:
            restart.kill()
    stopped_clean(toy)


def test_the_recorded_options_keep_values_but_never_secrets_and_replay_onto_any_shell():
    """Pure: what `inv run` records (run_options) and what a restart plans with (planning_env)."""
    from types import SimpleNamespace

    from duplex.errors import RunError
    from duplex.run.service import planning_env
    from duplex.run.state import run_options
    svc = SimpleNamespace(port=9100, secrets={"API_KEY"}, url="http://127.0.0.1:9100")
    plan = SimpleNamespace(native=True, start_order=["my-svc"], telemetry=None, services={"my-svc": svc})
    environ = {"HF_TOKEN": "hf_secret", "API_KEY": "k3y-value", "HF_HOME": "/cache/hf",
               "HF_ENDPOINT": "http://user:pw@mirror.local", "CUDA_VISIBLE_DEVICES": "1", "PATH": "/bin"}
    options = run_options(plan, environ)
    assert options["ports"] == {"my-svc": 9100}
    assert options["env"] == {"HF_HOME": "/cache/hf", "CUDA_VISIBLE_DEVICES": "1"}  # no credentials
    assert options["secrets"] == ["API_KEY", "HF_ENDPOINT", "HF_TOKEN"]  # names only
    assert "hf_secret" not in json.dumps(options) and "pw@" not in json.dumps(options)
    said = []
    replayed = planning_env(options, {**environ, "HF_HOME": "/elsewhere", "CUDA_VISIBLE_DEVICES": "0",
                                      "DUPLEX_PORT_MY_SVC": "9200"}, said.append)
    assert replayed["DUPLEX_PORT_MY_SVC"] == "9100" and replayed["HF_HOME"] == "/cache/hf" \
        and replayed["CUDA_VISIBLE_DEVICES"] == "1" and replayed["HF_TOKEN"] == "hf_secret"
    assert len(said) == 1 and "DUPLEX_PORT_MY_SVC=9200 here is not the run's" in said[0]
    assert "CUDA_VISIBLE_DEVICES" not in planning_env({**options, "env": {}}, environ)  # the run had none
    with pytest.raises(RunError, match="started with API_KEY, HF_TOKEN set"):
        planning_env(options, {"HF_ENDPOINT": "http://user:pw@mirror.local"})
    older = {"native": True, "services": ["my-svc"]}  # a state an older duplex wrote: the shell as is
    assert planning_env(older, {"DUPLEX_PORT_MY_SVC": "9200"}) == {"DUPLEX_PORT_MY_SVC": "9200"}
