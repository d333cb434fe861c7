"""`inv status` in-process (duplex.run.status): the rows of a run whose `inv` is gone, from real
service processes, a fake engine and a tiny real HTTP server for health. No Docker, no `inv`."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time

import pytest

from duplex.layout import Layout
from duplex.run.status import status
from duplex.standalone import HERE
from tests.run.inprocess import (
    FakeEngine,
    Services,
    Timeline,
    end_group,
    no_real_engine,  # noqa: F401 - an autouse fixture: no real engine here
    write_run,
)


@pytest.fixture
def services(tmp_path):
    started = Services(Timeline(tmp_path / "timeline"))
    yield started
    started.close()


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "project"
    path.mkdir()
    return path


@pytest.fixture
def health_url():
    """A server that answers GET /health with 200 (any other path: 404)."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the standard library's name
            self.send_response(200 if self.path.startswith("/health") else 404)
            self.end_headers()

        def log_message(self, *_args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/health"
    server.shutdown()
    server.server_close()


def rows_by_name(rows: list[dict]) -> dict[str, dict]:
    return {r["name"]: r for r in rows}


def test_a_running_native_service_is_running_and_healthy_when_its_health_answers(root, services, health_url):
    asr = services.start("asr")
    write_run(root, {"asr": services.record(asr, "asr", url="http://127.0.0.1:1",
                                           health={"kind": "http", "url": health_url})}, [["asr"]])
    assert status(root, engine=FakeEngine()) == [
        {"name": "asr", "mode": "native", "state": "running", "healthy": True, "url": "http://127.0.0.1:1",
         "id": f"pid {asr.pid}"}]


def test_a_running_service_whose_health_does_not_answer_is_running_but_not_healthy(root, services, health_url):
    asr = services.start("asr")
    write_run(root, {"asr": services.record(asr, "asr", health={"kind": "http",
                                                                "url": health_url.replace("/health", "/nope")})},
              [["asr"]])
    (row,) = status(root, engine=FakeEngine())
    assert (row["state"], row["healthy"]) == ("running", False)


def test_an_exited_native_service_is_exited_and_never_probed(root, services, health_url):
    dead = services.dead_record("asr")
    write_run(root, {"asr": {**dead, "health": {"kind": "http", "url": health_url}}}, [["asr"]])
    assert status(root, engine=FakeEngine()) == [
        {"name": "asr", "mode": "native", "state": "exited", "healthy": False, "url": None,
         "id": f"pid {dead['pid']}"}]


def test_containers_are_rows_with_the_engine_s_state_and_a_lost_one_is_left_out(root, services):
    engine = FakeEngine()
    moshi = engine.add("moshi", root)
    exited = engine.add("frontend", root, status="exited")
    gone = engine.add("web", root)
    engine.items.remove(gone)  # removed behind duplex's back: its record shows nothing
    asr = services.start("asr")
    write_run(root, {"asr": services.record(asr, "asr"), "moshi": moshi.record(url="http://m"),
                     "frontend": exited.record(), "web": gone.record()}, [["asr", "moshi"], ["frontend", "web"]])
    rows = rows_by_name(status(root, engine=engine))
    assert list(rows) == ["asr", "frontend", "moshi"]  # by name
    assert rows["moshi"] == {"name": "moshi", "mode": "container", "state": "running", "healthy": False,
                             "url": "http://m", "id": moshi.short_id}
    assert (rows["frontend"]["state"], rows["frontend"]["id"]) == ("exited", exited.short_id)


def test_a_container_the_state_does_not_record_is_shown(root):
    engine = FakeEngine()
    left = engine.add("moshi", root)
    engine.add("moshi", root.parent / "another-checkout")
    assert status(root, engine=engine) == [{"name": "moshi", "mode": "container", "state": "running",
                                           "healthy": False, "url": None, "id": left.short_id}]


def test_with_the_engine_unreachable_the_native_rows_remain(root, services):
    engine = FakeEngine(up=False)
    asr = services.start("asr")
    write_run(root, {"asr": services.record(asr, "asr"), "moshi": {"name": "moshi", "mode": "container",
                                                                   "container": "0" * 64, "url": None}},
              [["asr", "moshi"]])
    assert [(r["name"], r["state"]) for r in status(root, engine=engine)] == [("asr", "running")]


def test_a_detached_service_whose_record_the_state_lost_is_a_row_that_says_so(root):
    log = Layout(root).log("asr")
    log.parent.mkdir(parents=True)
    pump = subprocess.Popen([sys.executable, "-I", str(HERE / "logpump.py"), str(log), "--", "sleep", "60"],
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while not status(root, engine=FakeEngine()) and time.monotonic() < deadline:
            time.sleep(0.005)  # until the pump has started its service (its command line is read)
        assert status(root, engine=FakeEngine()) == [
            {"name": "asr", "mode": "native", "state": "running", "healthy": False, "url": None,
             "id": f"pid {pump.pid} (not in the run state; `inv stop` ends it)"}]
    finally:
        end_group(pump)


def test_no_run_no_rows(root):
    assert status(root, engine=FakeEngine()) == []
