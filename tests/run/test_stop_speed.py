"""Stopping is prompt (issue 18, family 8): Ctrl-C and `inv stop` end a native stack as soon as its
services have exited (zombies waiting for init do not count), dependents first, and a service that
drains slowly is said, not waited on in silence. benchmarks/stop_speed.py measures the default stack."""

from __future__ import annotations

import json
import os
import signal
import time

from tests.run.conftest import ctrl_c, group_pids, lines_of, pid_alive, wait_for, wait_gone
from tests.support.event_stream import open_event_stream

SLOW = '''
import http.server, signal, sys, threading, time

def drain(*_):
    print("slow: draining", flush=True)
    time.sleep(2.0)
    print("slow: drained", flush=True)
    sys.exit(0)

signal.signal(signal.SIGTERM, drain)

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *a):
        pass

threading.Thread(target=http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever,
                 daemon=True).start()
while True:
    time.sleep(0.1)
'''


def pids_of(toy) -> list[int]:
    return [p for r in toy.state()["services"].values() for p in group_pids(r["pid"])]


def test_ctrl_c_ends_a_native_stack_promptly_dependents_first(toy):
    run = toy.popen("run", "--native", "--services", "web")
    out, seen = lines_of(run), []
    toy.wait_healthy("api", "web", proc=run)
    wait_for(out, "press Ctrl-C", seen)
    pids = pids_of(toy)
    began = time.monotonic()
    run.send_signal(signal.SIGINT)
    assert run.wait(timeout=30) == 130
    took = time.monotonic() - began
    time.sleep(0.2)
    while not out.empty():
        seen.append(out.get())
    assert wait_gone(pids, timeout=1) == []
    text = "\n".join(seen)
    # web's uvicorn finished (its last line is read before the next wave starts) before api was asked
    assert text.index("web    | INFO:     Finished server process") < text.index("duplex | api: stopping"), text
    assert took < 2.0, f"Ctrl-C took {took:.2f}s (two uvicorn --reload services; 3.4 s before issue 18)"


def test_inv_stop_ends_a_detached_stack_promptly_dependents_first(toy):
    assert toy.inv("run", "--native", "--detach", "--services", "web").returncode == 0
    pids = pids_of(toy)
    began = time.monotonic()
    stop = toy.inv("stop")
    took = time.monotonic() - began
    assert stop.returncode == 0 and stop.stdout.strip().endswith("stopped: web, api"), stop.stdout
    assert stop.stdout.index("web: stopping") < stop.stdout.index("api: stopping")
    assert wait_gone(pids, timeout=1) == []
    assert took < 3.0, f"inv stop took {took:.2f}s, CLI start-up included"


def test_a_graceful_drain_is_said_and_waited_for_in_both_paths(toy):
    (toy.root / "slow.py").write_text(SLOW)
    with open(toy.root / "stack.toml", "a") as stack:
        stack.write('\n[services.slow]\nenv = "web"\ncommand = ["python", "slow.py", "{port}"]\nport = 18505\n'
                    'modes = ["native"]\nhealth = "/health"\nstart_timeout = 20\n')
    extra = {"DUPLEX_PORT_SLOW": str(toy.ports["crash"])}  # a free port the fixture reserved
    run = toy.popen("run", "--native", "--services", "slow", extra=extra)
    out, seen = lines_of(run), []
    wait_for(out, "press Ctrl-C", seen, timeout=60)
    text = ctrl_c(run, out, seen)
    assert "slow: still stopping after 1s (a graceful drain; SIGKILL after 10s)" in text, text
    assert "slow: drained" in text and "duplex | slow: stopped after 2." in text
    assert toy.inv("run", "--native", "--detach", "--services", "slow", extra=extra).returncode == 0
    stop = toy.inv("stop", extra=extra)
    assert "slow: still stopping after 1s (a graceful drain; SIGKILL after 10s)" in stop.stdout, stop.stdout
    assert "slow: stopped after 2." in stop.stdout and "drained" in (toy.root / ".duplex/logs/slow.log").read_text()


def test_sigint_to_inv_alone_stops_everything_dependents_first_and_clears_the_run(toy):
    """An IDE's stop button or `kill -INT PID`: the signal reaches `inv run` only, never the
    services (each leads a session of its own) nor the dashboard, whose page is open. When `inv`
    has exited nothing of the run is left: every service process and the dashboard are gone,
    dependents went first, the dashboard's event stream was ended by the server (not cut by a
    SIGKILL after its grace), and the run state and the dashboard's file are cleared."""
    run = toy.popen("run", "--native", "--services", "web")
    out, seen = lines_of(run), []
    wait_for(out, "press Ctrl-C", seen, timeout=60)
    board = json.loads((toy.root / ".duplex" / "run" / "dashboard.json").read_text())
    _resp, stream = open_event_stream(board)
    pids = [*pids_of(toy), *group_pids(board["pid"])]
    assert os.getpgid(run.pid) not in [os.getpgid(p) for p in pids]  # a group signal could not reach them
    os.kill(run.pid, signal.SIGINT)
    assert run.wait(timeout=30) == 130
    assert [p for p in pids if pid_alive(p)] == []  # at once: inv returns only after all of them
    time.sleep(0.2)  # the reader threads take the last lines
    while not out.empty():
        seen.append(out.get())
    text = "\n".join(seen)
    assert text.index("web: stopping") < text.index("web    | INFO:     Finished server process") \
        < text.index("api: stopping") < text.index("api    | INFO:     Finished server process"), text
    assert stream and stream[-1] == b"<end>", stream[-1:]
    assert toy.state()["services"] == {}
    assert not (toy.root / ".duplex" / "run" / "state.json").exists()
    assert not (toy.root / ".duplex" / "run" / "dashboard.json").exists()
