"""The live dashboard of real runs, in real headless Chromium: the token, the services table from
the run state, live logs and their filter, restart / crash / GPU columns, `inv dashboard`,
`inv restart`, and that no dashboard process outlives its run (docs/dashboard.md)."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import time

import httpx
import pytest

from tests.run.conftest import lines_of, pid_alive, wait_for, wait_gone
from tests.support import fakenvml
from tests.support.browser import chromium
from tests.support.browser import wait_for as wait_until

LINK = re.compile(r"dashboard: (http://127\.0\.0\.1:(\d+)/\?t=([\w-]+))")


def board_info(toy) -> dict:
    return json.loads((toy.root / ".duplex" / "run" / "dashboard.json").read_text())


def cell(driver, service: str, column: str) -> str:
    """Read in one script: the table is redrawn as the rows change, so held elements go stale."""
    return driver.execute_script(
        "const c = document.querySelector(`tr[data-service='${arguments[0]}'] td.${arguments[1]}`);"
        "return c ? c.textContent : '';", service, column)


def state_of(driver, service: str) -> str | None:
    return driver.execute_script(
        "const r = document.querySelector(`tr[data-service='${arguments[0]}']`);"
        "return r ? r.dataset.state || r.textContent : null;", service)


def links_of(driver, service: str) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll(`tr[data-service='${arguments[0]}'] td.urls a`)].map(a => a.href);",
        service)


def log_lines(driver) -> list[str]:
    return driver.execute_script("return [...document.querySelectorAll('#logs div')].map(d => d.textContent);")


def click(driver, service: str, button: str) -> None:
    driver.execute_script("document.querySelector(`tr[data-service='${arguments[0]}'] button.${arguments[1]}`).click();",
                          service, button)


@pytest.fixture
def gpu_env(fake_nvml, tmp_path):
    """The simulated NVML for the run (and so its dashboard): an L40S pair; `place(pid, used)`
    rewrites the description (read at every nvmlInit) so a service's process shows GPU memory."""
    desc = copy.deepcopy(fakenvml.host("two_l40s_one_busy"))
    env = fakenvml.host_env(fake_nvml, desc, tmp_path / "nvml")
    path = env["FAKE_NVML_DESCRIPTION"]

    def place(pid: int, used: int) -> None:
        desc["gpus"][1]["processes"] = [{"pid": pid, "used": used}]
        with open(path, "w") as fh:
            fh.write(fakenvml.describe(desc))
    return env, place


def test_detached_run_dashboard_token_table_logs_restart_crash_gpu_and_stop(toy, gpu_env):
    env, place = gpu_env
    run = toy.inv("run", "--native", "--detach", "--services", "web", extra=env)
    assert run.returncode == 0, run.stdout + run.stderr
    url, port, token = LINK.search(run.stdout).groups()
    base = f"http://127.0.0.1:{port}"
    info = board_info(toy)
    assert (toy.root / ".duplex" / "run" / "dashboard.json").stat().st_mode & 0o077 == 0
    try:
        assert toy.inv("dashboard").stdout.strip() == url
        # refused without the token, for the page, the API and the event stream alike
        deadline = time.monotonic() + 15
        while True:
            try:
                assert httpx.get(f"{base}/", timeout=2).status_code == 401
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the dashboard never listened"
                time.sleep(0.1)
        wrong = token[:-1] + ("y" if token.endswith("x") else "x")  # a token that ends in x was its own "wrong" one
        for path in ("/api/services", "/api/logs", "/api/events", f"/?t={wrong}"):
            assert httpx.get(base + path, timeout=2).status_code == 401, path
        # actions: only a POST with the token header, never from another origin (a forged form)
        cookie = {"duplex_dashboard": token}
        assert httpx.post(f"{base}/api/services/api/stop", cookies=cookie).status_code == 403
        assert httpx.post(f"{base}/api/services/api/stop", headers={"x-duplex-token": token,
                          "origin": "http://evil.example"}).status_code == 403
        assert httpx.get(f"{base}/api/services", headers={"x-duplex-token": token}).status_code == 200

        api_pid = toy.state()["services"]["api"]["pid"]
        server_pid = max(toy_group(api_pid))  # the uvicorn worker: the process that would hold the GPU
        place(server_pid, 1536 * 2**20)
        with chromium() as driver:
            driver.get(url)
            assert "?t=" not in driver.current_url  # the token moved into the tab's sessionStorage
            for name in ("api", "web"):
                wait_until(lambda name=name: state_of(driver, name) == "healthy", 30, f"{name} healthy", driver)
            links = links_of(driver, "web")
            assert [link.rstrip("/") for link in links] == [toy.url("web")]
            assert httpx.get(links[0].rstrip("/") + "/health").status_code == 200
            assert cell(driver, "api", "ident") == f"pid {api_pid}"
            wait_until(lambda: "GPU 1: 1.5 GiB" in cell(driver, "api", "gpu-memory"), 15, "GPU memory", driver)
            assert cell(driver, "web", "gpu-memory") == ""
            assert "not selected" in state_of(driver, "crash")  # left out, and why

            # live logs, then the filter narrows them
            wait_until(lambda: any("Application startup complete" in t for t in log_lines(driver)), 15,
                       "the services' log lines", driver)
            before = len(log_lines(driver))
            driver.find_element("id", "filter").send_keys("startup complete")
            wait_until(lambda: 0 < len(log_lines(driver)) < before, 10, "the filter", driver)
            assert all("startup complete" in t.lower() for t in log_lines(driver))

            # restart from the page: a new pid, healthy again, one restart counted
            click(driver, "api", "restart")
            wait_until(lambda: cell(driver, "api", "ident") not in ("", f"pid {api_pid}")
                       and state_of(driver, "api") == "healthy", 60, "api restarted and healthy", driver)
            assert cell(driver, "api", "restarts") == "1"
            new_pid = toy.state()["services"]["api"]["pid"]
            assert new_pid != api_pid and cell(driver, "api", "ident") == f"pid {new_pid}"

            # a service killed from outside shows as crashed
            os.killpg(toy.state()["services"]["web"]["pid"], signal.SIGKILL)
            wait_until(lambda: state_of(driver, "web") == "crashed", 15, "web crashed", driver)
            driver.save_screenshot(str(toy.root / "dashboard.png"))
    finally:
        stop = toy.inv("stop")
    assert stop.returncode == 0 and "dashboard: stopped" in stop.stdout, stop.stdout
    assert wait_gone([info["pid"]], timeout=5) == []
    assert toy.inv("dashboard").returncode == 1
    assert token not in (toy.root / ".duplex" / "logs" / "dashboard.log").read_text()


def toy_group(pgid: int) -> list[int]:
    from tests.run.conftest import group_pids
    return group_pids(pgid)


def test_inv_restart_warm_reload_and_an_attached_run_that_takes_its_dashboard_along(toy):
    toy.edit('app = "app:app"\nport = 18501', 'app = "app:app"\nreload = "warm"\nport = 18501')
    run = toy.popen("run", "--native", "--services", "api")
    try:
        out, seen = lines_of(run), []
        line = wait_for(out, "dashboard: http", seen, timeout=60)
        url = LINK.search(line).group(1)
        wait_for(out, "press Ctrl-C", seen, timeout=60)
        board = board_info(toy)["pid"]
        old = toy.state()["services"]["api"]["pid"]
        restarted = toy.inv("restart", "api")
        assert restarted.returncode == 0 and "api: restarted in" in restarted.stdout, restarted.stdout + restarted.stderr
        new = toy.state()["services"]["api"]["pid"]
        assert new != old and toy.get("api", "/health") == {"status": "ok"}
        # said, not taken for a crash: "stopped outside this terminal", or "restarted (pid N) outside this
        # terminal" when the watch first looks after the new process is recorded
        wait_for(out, "outside this terminal", seen, timeout=10)
        assert not any("crashed" in line for line in seen)
        toy.get("api", "/version?m=after-restart")  # the new process's lines come to this terminal too
        assert wait_for(out, "after-restart", seen, timeout=10).startswith("api")
        assert httpx.get(url, follow_redirects=True).status_code == 200
        # a warm reload shows up in the page with its edit-to-served time
        with chromium() as driver:
            driver.get(url)
            wait_until(lambda: state_of(driver, "api") == "healthy", 30, "api healthy", driver)
            assert cell(driver, "api", "reloads") == "0"
            app = toy.root / "app.py"
            app.write_text(app.read_text().replace('VERSION = "v1"', 'VERSION = "v2"'))
            wait_until(lambda: toy.get("api", "/version") == {"version": "v2"}, 20, "the edit served")
            wait_until(lambda: re.fullmatch(r"1 \(last 0\.\d{3}s\)", cell(driver, "api", "reloads")), 15,
                       "the warm reload in the page", driver)
        bad = toy.inv("restart", "nope")
        assert bad.returncode != 0 and "Traceback" not in bad.stderr and "choose from" in bad.stderr, bad.stderr
        # a killed `inv run` leaves no dashboard (it dies with its parent); `inv stop` stops the rest
        run.send_signal(signal.SIGKILL)
        run.wait(10)
        assert wait_gone([board], timeout=5) == []
        toy.inv("stop")
        assert not pid_alive(new) or wait_gone([new], timeout=5) == []
    finally:  # a failure above must not leave this `inv run` (and its ports) to the next test
        if run.poll() is None:
            run.kill()
        toy.inv("stop")


@pytest.mark.docker
def test_container_run_dashboard_shows_the_container_its_logs_and_a_restart(engine, toy):
    run = toy.inv("run", "--detach", "--services", "api", timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    url, port, token = LINK.search(run.stdout).groups()
    api = lambda path: httpx.get(f"http://127.0.0.1:{port}{path}", headers={"x-duplex-token": token},
                                 timeout=5).json()
    board = board_info(toy)["pid"]
    from duplex.plan import LABEL
    assert len(engine.containers.list(filters={"label": f"{LABEL}.root={toy.root}"})) == 1  # the filter finds ours
    try:
        first = toy.state()["services"]["api"]["container"]

        def api_row():
            try:
                return next((r for r in api("/api/services")["services"] if r["name"] == "api"), None)
            except httpx.TransportError:
                return None
        row = wait_until(lambda: (r := api_row()) and r["state"] == "healthy" and r["memory"] and r, 30, "api row")
        assert row["mode"] == "container" and row["id"] == f"container {first[:12]}"
        wait_until(lambda: any("Application startup complete" in l["text"]
                               for l in api("/api/logs?service=api")["lines"]), 15, "the engine's log lines")
        reply = httpx.post(f"http://127.0.0.1:{port}/api/services/api/restart",
                           headers={"x-duplex-token": token}, timeout=120)
        assert reply.status_code == 200 and reply.json()["ok"], reply.text
        second = toy.state()["services"]["api"]["container"]
        assert second != first
        row = wait_until(lambda: (r := api_row()) and r["state"] == "healthy" and r["restarts"] == 1 and r,
                         30, "api restarted")
        assert row["id"] == f"container {second[:12]}"
    finally:
        stop = toy.inv("stop")
    assert "dashboard: stopped" in stop.stdout and wait_gone([board], timeout=5) == []
    from duplex.plan import LABEL
    assert engine.containers.list(all=True, filters={"label": f"{LABEL}.root={toy.root}"}) == []


def test_with_telemetry_on_and_no_collector_the_dashboard_lists_requests_with_their_spans(tmp_path):
    """`inv run --native --otlp URL` with nothing at URL: the dashboard receives the traces itself;
    a transcription through the frontend is one request over frontend -> asr, in the API and the page."""
    from duplex.run.smoke_apps import SAMPLE
    from tests.daily.test_telemetry import FAST_EXPORT, _inv
    from tests.run.test_parity import post_file
    from tests.support.net import free_port
    from tests.support.stackcopy import copy_stack
    root = copy_stack(tmp_path / "stack", "dashotel")
    ports = {"asr": free_port(), "frontend": free_port()}
    otlp = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, **FAST_EXPORT, "DUPLEX_STACK": str(root / "stack.toml"),
           **{f"DUPLEX_PORT_{n.upper()}": str(p) for n, p in ports.items()}}
    try:
        up = _inv(root, env, "run", "--native", "--detach", "--skip-preflight", "--otlp", otlp)
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"receiving the services' traces at {otlp}" in up.stdout
        url, port, token = LINK.search(up.stdout).groups()
        code, body = post_file(f"http://127.0.0.1:{ports['frontend']}/api/transcribe", SAMPLE)
        assert code == 200 and "hello" in body["text"], body
        assert httpx.get(f"{otlp}/api/services", headers={"x-duplex-token": token}).status_code == 404  # traces only

        def request():
            found = httpx.get(f"http://127.0.0.1:{port}/api/traces", headers={"x-duplex-token": token}).json()
            return next((t for t in found["traces"] if t["services"] == ["frontend", "asr"]), None)
        trace = wait_until(request, 30, "the request's trace")
        assert trace["name"] == "POST /api/transcribe" and \
            any(s["service"] == "asr" and s["name"] == "POST /transcribe" for s in trace["spans"])
        with chromium() as driver:
            driver.get(url)
            wait_until(lambda: driver.execute_script(
                "const r = document.querySelector(`#traces tr[data-trace='${arguments[0]}'] td.services`);"
                "return r && r.textContent;", trace["trace"]) == "frontend → asr", 15, "the request in the page", driver)
    finally:
        _inv(root, env, "stop", "--all", timeout=120)


PRELOAD = '''"""Stands in for a model load: once per server process."""
import os
import time

LOADED = {}


def preload():
    LOADED.update(pid=os.getpid(), at=time.time())
'''
LOADED_ROUTE = '''

@app.get("/loaded")
def loaded():
    import preload
    return {"pid": os.getpid(), "at": preload.LOADED.get("at"), "version": VERSION}
'''


def test_reload_code_keeps_the_model_and_reload_model_loads_it_again_from_the_cli_and_the_page(toy):
    (toy.root / "preload.py").write_text(PRELOAD)
    (toy.root / "app.py").write_text((toy.root / "app.py").read_text() + LOADED_ROUTE)
    toy.edit('app = "app:app"\nport = 18501',
             'app = "app:app"\nreload = "warm"\npreload = "preload:preload"\nwatch = ["."]\nport = 18501')
    run = toy.inv("run", "--native", "--detach", "--services", "web")
    assert run.returncode == 0, run.stdout + run.stderr
    try:
        url, port, token = LINK.search(run.stdout).groups()
        first = toy.get("api", "/loaded")
        assert first["at"] is not None
        code = toy.inv("restart", "api", "--code")
        assert code.returncode == 0 and "api: code reloaded in" in code.stdout, code.stdout + code.stderr
        assert toy.get("api", "/loaded") == first  # the same process, the model not loaded again
        logs = toy.inv("logs", "--service", "api").stdout
        assert "Warm reload: a code reload was asked for; re-imported app:app" in logs
        model = toy.inv("restart", "api", "--model")
        assert model.returncode == 0 and "api: model reloaded, healthy after" in model.stdout, \
            model.stdout + model.stderr
        print(code.stdout + model.stdout)  # the figures docs/dashboard.md quotes
        second = toy.get("api", "/loaded")
        assert second["pid"] != first["pid"] and second["at"] > first["at"]
        assert toy.get("web", "/health") == {"status": "ok"}  # its dependent never noticed
        # the page: the buttons on the warm service only, and what they do through the API
        headers = {"x-duplex-token": token}
        rows = {r["name"]: r for r in httpx.get(f"http://127.0.0.1:{port}/api/services", headers=headers,
                                                timeout=5).json()["services"]}
        assert rows["api"]["warm"] and not rows["web"]["warm"]
        with chromium() as driver:
            driver.get(url)
            wait_until(lambda: state_of(driver, "api") == "healthy", 30, "api healthy", driver)
            buttons = driver.execute_script(
                "return [...document.querySelectorAll('tr[data-service] button')].map("
                "b => b.closest('tr').dataset.service + ' ' + b.className)")
            assert "api reload-code" in buttons and "api reload-model" in buttons
            assert "web reload-code" not in buttons
            # clicked in one script: the table is redrawn as rows change, so held elements go stale
            driver.execute_script("document.querySelector(\"tr[data-service='api'] button.reload-model\").click()")
            wait_until(lambda: "model reloaded in" in driver.find_element("id", "message").text, 60,
                       "the page's reload", driver)
        third = toy.get("api", "/loaded")
        assert third["pid"] != second["pid"]
        reply = httpx.post(f"http://127.0.0.1:{port}/api/services/api/reload-code", headers=headers, timeout=60)
        assert reply.status_code == 200 and reply.json()["ok"], reply.text
        assert toy.get("api", "/loaded") == third
        # mistakes: one clear line each, nothing changed
        both = toy.inv("restart", "api", "--code", "--model")
        assert both.returncode == 2 and "choose one" in both.stderr and "Traceback" not in both.stderr
        cold = toy.inv("restart", "web", "--code")
        assert cold.returncode != 0 and "web does not reload warm" in cold.stderr \
            and "inv restart web" in cold.stderr and "Traceback" not in cold.stderr, cold.stderr
        refused = httpx.post(f"http://127.0.0.1:{port}/api/services/web/reload-model", headers=headers, timeout=60)
        assert refused.status_code == 409 and "does not reload warm" in refused.json()["error"]
        assert toy.get("api", "/loaded") == third
    finally:
        toy.inv("stop")


class _Recorder(__import__("http.server").server.BaseHTTPRequestHandler):
    """Another server on 127.0.0.1 the developer's browser visits: it keeps every request's headers."""
    seen: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.seen.append(dict(self.headers.items()))
        body = b"<!doctype html><title>another server</title><img src='/pixel.png'>"
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.end_headers()
        self.wfile.write(body)


def test_two_dashboards_stay_signed_in_and_no_other_server_on_the_host_receives_a_token(tmp_path):
    """Cookies ignore ports: a token cookie went to every server on 127.0.0.1 the browser visited,
    and a second checkout's dashboard replaced the first's. The token lives in the tab's
    sessionStorage (per origin: host and port) and travels only in a header to its own dashboard."""
    import threading
    from http.server import ThreadingHTTPServer

    from tests.support.board import board, planned
    for name in ("a", "b"):
        (tmp_path / name / ".duplex" / "logs").mkdir(parents=True)
        (tmp_path / name / ".duplex" / "logs" / f"svc-{name}.log").write_text(f"INFO hello from {name}\n")
    third = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=third.serve_forever, daemon=True).start()
    other = f"http://127.0.0.1:{third.server_address[1]}"

    def signed_in(driver, name: str) -> bool:
        return driver.execute_script("return document.getElementById('conn')?.textContent") == "live" and \
            state_of(driver, f"svc-{name}") is not None and \
            any(f"hello from {name}" in t for t in log_lines(driver))
    try:
        with board(tmp_path / "a", planned({"svc-a": {}}, stack="first")) as a, \
                board(tmp_path / "b", planned({"svc-b": {}}, stack="second")) as b, chromium() as driver:
            driver.get(a.link)
            assert driver.current_url == f"{a.base}/"  # the token left the address bar
            wait_until(lambda: signed_in(driver, "a"), 20, "the first dashboard", driver)
            assert driver.title == "first · duplex dashboard"
            driver.get(b.link)
            wait_until(lambda: signed_in(driver, "b"), 20, "the second dashboard", driver)
            driver.get(other + "/")
            wait_until(lambda: len(_Recorder.seen) >= 2, 10, "the other server's requests")  # the page, its image
            tokens = (a.token, b.token)
            assert all(t not in json.dumps(h) for h in _Recorder.seen for t in tokens), _Recorder.seen
            driver.get(f"{a.base}/")  # back to the first, without its link: still signed in
            wait_until(lambda: signed_in(driver, "a"), 20, "the first dashboard again", driver)
            driver.refresh()
            wait_until(lambda: signed_in(driver, "a"), 20, "the first dashboard reloaded", driver)
            # the download: fetched with the header, handed to the browser as a file
            saved = tmp_path / "downloads"
            saved.mkdir()
            driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(saved)})
            driver.execute_script("const s = document.getElementById('service'); s.value = 'svc-a';"
                                  "s.dispatchEvent(new Event('input')); document.getElementById('download').click();")
            wait_until(lambda: (saved / "svc-a.log").exists() and
                       (saved / "svc-a.log").read_text() == "INFO hello from a\n", 15, "the download", driver)
            driver.get(f"{b.base}/")
            wait_until(lambda: signed_in(driver, "b"), 20, "the second dashboard again", driver)
            assert driver.get_cookies() == []
            driver.get(other + "/again")
            wait_until(lambda: len(_Recorder.seen) >= 4, 10, "the other server's requests")
            # a new tab has no token: the page says how to get in, and nothing is shown
            driver.switch_to.new_window("tab")
            driver.get(f"{a.base}/")
            wait_until(lambda: "inv dashboard" in driver.find_element("id", "conn").text, 10, "signed out", driver)
            assert state_of(driver, "svc-a") is None
        assert _Recorder.seen and all(t not in json.dumps(h) for h in _Recorder.seen for t in tokens), _Recorder.seen
        assert not any("cookie" in (k.lower() for k in h) for h in _Recorder.seen), _Recorder.seen
    finally:
        third.shutdown()


SAMPLED = 12  # seconds of sampling: a dozen health probes per service, two scrapes of asr's metrics


def _access_lines(log: str) -> list[str]:
    """uvicorn's access lines (`INFO:     127.0.0.1:PORT - "GET /health HTTP/1.1" 200 OK`)."""
    return [line for line in log.splitlines() if re.search(r'"(GET|POST|HEAD) \S+ HTTP/', line)]


def test_the_dashboards_sampling_stays_out_of_the_services_logs(tmp_path):
    """The real asr and frontend, native and detached, sampled by the dashboard (and the supervisor's
    health wait, and `inv status`): their logs hold none of duplex's probes, while a request of
    anyone else's to /health is still logged; asr's declared /metrics is scraped (its charts fill),
    and the frontend, which declares none, is never asked for one."""
    from tests.daily.test_telemetry import _inv
    from tests.support.net import free_port
    from tests.support.stackcopy import copy_stack
    root = copy_stack(tmp_path / "stack", "dashquiet")
    ports = {"asr": free_port(), "frontend": free_port()}
    env = {**os.environ, "DUPLEX_STACK": str(root / "stack.toml"),
           **{f"DUPLEX_PORT_{n.upper()}": str(p) for n, p in ports.items()}}
    try:
        up = _inv(root, env, "run", "--native", "--detach", "--skip-preflight")
        assert up.returncode == 0, up.stdout + up.stderr
        _url, port, token = LINK.search(up.stdout).groups()
        time.sleep(SAMPLED)
        assert _inv(root, env, "status").returncode == 0
        rows = httpx.get(f"http://127.0.0.1:{port}/api/services", headers={"x-duplex-token": token}).json()
        asr = next(r for r in rows["services"] if r["name"] == "asr")
        frontend = next(r for r in rows["services"] if r["name"] == "frontend")
        assert asr["state"] == "healthy" and len(asr["health"]) >= 2 and asr.get("metrics"), asr  # it sampled
        assert frontend["state"] == "healthy" and not frontend.get("metrics")
        for p in ports.values():  # someone else's request: logged as ever
            assert httpx.get(f"http://127.0.0.1:{p}/health").status_code == 200
        time.sleep(0.5)
        for name in ports:
            access = _access_lines((root / ".duplex" / "logs" / f"{name}.log").read_text())
            health = [line for line in access if "/health" in line]
            assert len(health) == 1 and "duplex-probe" not in health[0], (name, access[-5:], len(access))
            assert not [line for line in access if "/metrics" in line], (name, access[-5:])
    finally:
        _inv(root, env, "stop", "--all", timeout=120)


def test_every_probe_duplex_makes_is_marked_and_no_undeclared_metrics_path_is_asked(toy):
    """The toy's server logs every request (it is not one of the shipped servers, which hide the
    marked ones): after the health wait and seconds of dashboard sampling, each /health request it
    saw carries duplex's probe marker, and nothing asked it for /metrics, which it does not declare."""
    run = toy.inv("run", "--native", "--detach", "--services", "web")
    assert run.returncode == 0, run.stdout + run.stderr
    time.sleep(SAMPLED)
    assert toy.inv("status").returncode == 0
    for name in ("api", "web"):
        access = _access_lines((toy.root / ".duplex" / "logs" / f"{name}.log").read_text())
        health = [line for line in access if "/health" in line]
        assert len(health) >= 3 and all("/health?duplex-probe=1 " in line for line in health), (name, health[-3:])
        assert not [line for line in access if "/metrics" in line], (name, access[-5:])
