"""Replicas and autoscaling: what `inv publish --capacity` writes (read back from the files, the
manifests checked against the Kubernetes schemas), its refusals through the real `inv`, and the
probes and the drain run for real against small servers that behave like asr's /metrics and moshi's
one-conversation handshake."""

from __future__ import annotations

import asyncio
import http.server
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from duplex.capacity import ServiceCapacity, document
from duplex.publish.common import drain_command, websocket_check
from duplex.publish.scaling import HEADROOM
from duplex.publish.validate import validate_manifests
from tests.conftest import run_inv
from tests.publish.conftest import copy_default
from tests.publish.test_validate import compose_config

WALL = 1800  # asr's session limit in the test stack's environment


def scaled_stack(tmp_path: Path) -> Path:
    """The default stack with moshi at 2-4 pods of one conversation and asr at 2-6 pods of 8 sessions."""
    stack = copy_default(tmp_path / "repo", "scaled")
    text = stack.read_text()
    # the shipped stack declares each one's sessions (asr 8, moshi 1): replicas and a ceiling go beside them
    text = re.sub(r"^sessions = 1\b.*$", "replicas = 2\nmax_replicas = 4\nsessions = 1", text, count=1, flags=re.M)
    text = re.sub(r"^sessions = 8\b.*$", "replicas = 2\nmax_replicas = 6\nsessions = 8", text, count=1, flags=re.M)
    assert text.count("max_replicas") == 2, "the shipped stack's sessions lines moved"
    text = text.replace('ASR_BACKEND = "pocketsphinx"', f'ASR_BACKEND = "pocketsphinx"\nASR_STREAM_MAX_WALL_SECONDS = "{WALL}"', 1)
    stack.write_text(text)
    return stack


def capacity_file(path: Path, **capacity: int | None) -> Path:
    """What `inv loadtest` writes (duplex.capacity.document), two replicas measured each."""
    services = [ServiceCapacity(service=name, replicas=2, sessions=1 if name == "moshi" else 8,
                                budget={"final_p95": 0.5}, capacity=value, stopped="the test's figure")
                for name, value in capacity.items()]
    path.write_text(json.dumps(document("scaled", services, {"tool": "test"}, {"gpu": "none"})))
    return path


def docs_of(out: Path, name: str) -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all((out / "k8s" / f"{name}.yaml").read_text())}


def test_publish_with_a_capacity_file_writes_replicas_autoscalers_budgets_and_drains(tmp_path):
    stack = scaled_stack(tmp_path)
    cap = capacity_file(tmp_path / "loadtest.json", moshi=2, asr=13)  # per_replica: moshi 1, asr 6
    out = tmp_path / "deploy"
    proc = run_inv("publish", "--capacity", str(cap), "--out", str(out), "--json",
                   env={"DUPLEX_STACK": str(stack)}, cwd=tmp_path, timeout=300, check=True)
    report = json.loads(proc.stdout)
    assert report["validated"]["kubernetes"].startswith("kubernetes-validate, strict")
    assert report["validated"]["compose"].startswith("docker compose 2.")
    assert "k8s/prometheus-adapter.yaml" in report["files"]

    moshi = docs_of(out, "moshi")
    deployment, pod = moshi["Deployment"], moshi["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    # Readiness is the handshake (busy = not ready), liveness any HTTP answer (busy is alive).
    assert container["readinessProbe"]["exec"]["command"][-2:] == ["--phase", "ready"]
    assert container["readinessProbe"]["failureThreshold"] == 1
    assert container["livenessProbe"]["exec"]["command"][-2:] == ["--phase", "alive"]
    hpa = moshi["HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "moshi"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
    per_replica = json.loads(cap.read_text())["services"]["moshi"]["per_replica"]
    assert hpa["metadata"]["annotations"]["dev.duplex/per-replica"] == str(per_replica) == "1"
    metric = hpa["spec"]["metrics"][0]
    assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == "busy_sessions"
    assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": f"{round(per_replica * HEADROOM * 1000)}m"}
    assert "replicas" not in deployment["spec"]  # the autoscaler owns the count
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    assert moshi["PodDisruptionBudget"]["spec"] == {"maxUnavailable": 1, "selector": deployment["spec"]["selector"]}
    stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert stop[:2] == ["python", "-c"] and stop[3:] == ["--ws", "ws://127.0.0.1:8998/api/chat", "--timeout", "3900"]
    assert pod["terminationGracePeriodSeconds"] >= 3900

    asr = docs_of(out, "asr")
    asr_pod = asr["Deployment"]["spec"]["template"]["spec"]
    assert asr["HorizontalPodAutoscaler"]["spec"]["metrics"][0]["pods"] == {
        "metric": {"name": "active_sessions"}, "target": {"type": "AverageValue", "averageValue": "4800m"}}
    assert asr["HorizontalPodAutoscaler"]["metadata"]["annotations"]["dev.duplex/per-replica"] == "6"
    assert asr_pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][3:] == [
        "--metrics", "http://127.0.0.1:8000/metrics", "--timeout", str(WALL)]  # the service's own limit
    assert WALL <= asr_pod["terminationGracePeriodSeconds"] <= WALL + 60
    front = docs_of(out, "frontend")
    assert set(front) == {"Deployment", "Service"} and front["Deployment"]["spec"]["replicas"] == 1
    assert "lifecycle" not in front["Deployment"]["spec"]["template"]["spec"]["containers"][0]

    # The adapter's rules: outside the kustomization (the adapter's namespace), a valid ConfigMap.
    kustomization = yaml.safe_load((out / "k8s" / "kustomization.yaml").read_text())
    assert "prometheus-adapter.yaml" not in kustomization["resources"]
    rules_map = yaml.safe_load((out / "k8s" / "prometheus-adapter.yaml").read_text())
    validate_manifests({"prometheus-adapter.yaml": [rules_map]})
    rules = yaml.safe_load(rules_map["data"]["config.yaml"])["rules"]
    assert [r["name"]["as"] for r in rules] == ["active_sessions", "busy_sessions"]

    # Compose: the replicas, each on its own host port of a range (the CPU override keeps them).
    merged = compose_config(out, "compose.yaml", "compose.cpu.yaml")["services"]
    assert merged["asr"]["deploy"]["replicas"] == 2 and not merged["asr"]["deploy"].get("resources")
    assert merged["asr"]["ports"][0]["published"] == "8000-8001"
    assert compose_config(out, "compose.yaml")["services"]["moshi"]["deploy"]["replicas"] == 2


def test_capacity_mistakes_are_refused_through_inv_and_nothing_is_written(tmp_path):
    stack = scaled_stack(tmp_path)
    env = {"DUPLEX_STACK": str(stack)}
    out = tmp_path / "deploy"
    not_capacity = tmp_path / "other.json"
    not_capacity.write_text('{"format": 7}')
    cases = {
        str(tmp_path / "missing.json"): ("no such file", "inv loadtest"),
        str(not_capacity): ("is not a duplex capacity file", "inv loadtest"),
        str(capacity_file(tmp_path / "alien.json", ghost=4)): ("measured 'ghost', which stack.toml does not have",
                                                             "this stack's own load test"),
        str(capacity_file(tmp_path / "none.json", asr=None)): ("asr met its budget at no load level",
                                                             "publish without --capacity"),
        str(capacity_file(tmp_path / "front.json", frontend=4)): ("frontend has no max_replicas",
                                                                "set max_replicas = N"),
    }
    for path, (problem, fix) in cases.items():
        proc = run_inv("publish", "--capacity", path, "--out", str(out), env=env, cwd=tmp_path, timeout=120)
        assert proc.returncode == 1, (path, proc.stdout, proc.stderr)
        assert problem in proc.stderr and fix in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr + proc.stdout
        assert not out.exists()


def _metrics_server(values: list[str]) -> tuple[http.server.HTTPServer, int]:
    """/metrics: the gauge each GET (the last value repeats); the page asr's prometheus client serves."""
    class Metrics(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            value = values.pop(0) if len(values) > 1 else values[0]
            body = ("# HELP active_sessions Live sessions\n# TYPE active_sessions gauge\n"
                    + (f"active_sessions{value}\n" if value else "")
                    + "active_sessions_peak 5.0\nsession_slots 8.0\n").encode()  # other metrics: not counted
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def run_hook(command: list[str], *extra: str) -> tuple[int, float, str]:
    """The preStop command as the kubelet runs it in the image (python -c SOURCE ARGS), polling faster."""
    start = time.monotonic()
    proc = subprocess.run([sys.executable, *command[1:], *extra], capture_output=True, text=True, timeout=60)
    return proc.returncode, time.monotonic() - start, proc.stdout + proc.stderr


def test_drain_waits_for_the_metrics_gauge_to_reach_zero_and_is_bounded():
    server, port = _metrics_server([" 1.0", " 1.0", " 1.0", " 0.0"])  # a session ends after the third look
    stuck, stuck_port = _metrics_server(['{route="/stream"} 1.0'])  # labelled samples count too
    bare, bare_port = _metrics_server([""])  # a /metrics without the gauge
    try:
        rc, took, said = run_hook(drain_command(port, "metrics", 30), "--every", "0.5")
        assert rc == 0 and 1.0 <= took < 10, (took, said)
        assert "1 live session(s); waiting" in said and "drained: 0 live session(s)" in said
        rc, took, said = run_hook(drain_command(stuck_port, "metrics", 2), "--every", "0.5")
        assert rc == 1 and 2 <= took < 10 and "gave up after 2 s with 1 live session(s)" in said, said
        rc, took, said = run_hook(drain_command(bare_port, "metrics", 30))
        assert rc == 0 and took < 10 and "no active_sessions gauge" in said, said
    finally:
        for s in (server, stuck, bare):
            s.shutdown()


def _one_conversation_server():
    """A WebSocket server that behaves as moshi's /api/chat: it upgrades every socket, then sends
    the ready byte 0x00 only once it holds its one-conversation lock. Returns (port, stop)."""
    from websockets.asyncio.server import serve

    ports: list[int] = []
    started = threading.Event()
    stop = None

    async def chat(ws):
        async with lock:
            await ws.send(b"\x00")
            await ws.wait_closed()

    def loop():
        async def main():
            nonlocal stop, lock
            lock = asyncio.Lock()
            stop = asyncio.get_running_loop().create_future()
            async with serve(chat, "127.0.0.1", 0) as server:
                ports.append(server.sockets[0].getsockname()[1])
                started.set()
                await stop
        asyncio.run(main())

    lock = None
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    assert started.wait(10)

    def close():
        stop.get_loop().call_soon_threadsafe(stop.set_result, None)
        thread.join(5)
    return ports[0], close


def test_busy_readiness_and_the_handshake_drain_against_a_one_conversation_server():
    from websockets.sync.client import connect

    port, close = _one_conversation_server()
    ready = [sys.executable, *websocket_check(port, "/api/chat", 2, phase="ready")[1:]]
    alive = [sys.executable, *websocket_check(port, "/api/chat", 2, phase="alive")[1:]]
    try:
        assert subprocess.run(ready, capture_output=True, timeout=30).returncode == 0  # idle: ready
        with connect(f"ws://127.0.0.1:{port}/api/chat") as conversation:
            assert conversation.recv(timeout=5) == b"\x00"
            busy = subprocess.run(ready, capture_output=True, text=True, timeout=30)
            assert busy.returncode == 1 and "no ready byte yet" in busy.stdout, busy.stdout
            assert subprocess.run(alive, capture_output=True, timeout=30).returncode == 0  # busy is alive
            # The drain started now waits for the conversation; it ends about 3 s later.
            hook = subprocess.Popen([sys.executable, *drain_command(port, "handshake", 30, path="/api/chat")[1:],
                                     "--every", "0.5", "--probe-timeout", "1"],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            time.sleep(3)
            assert hook.poll() is None, hook.stdout.read()
        said, _ = hook.communicate(timeout=30)
        assert hook.returncode == 0 and "busy with a conversation" in said and "drained: the ready byte came" in said, said
        assert subprocess.run(ready, capture_output=True, timeout=30).returncode == 0  # free again
        # Bounded: a conversation that outlasts the limit leaves the drain with exit 1 in time.
        with connect(f"ws://127.0.0.1:{port}/api/chat") as conversation:
            conversation.recv(timeout=5)
            rc, took, said = run_hook(drain_command(port, "handshake", 2, path="/api/chat"),
                                      "--every", "0.5", "--probe-timeout", "1")
            assert rc == 1 and 2 <= took < 15 and "gave up after 2 s" in said, said
    finally:
        close()


def test_without_a_capacity_file_the_target_is_the_declared_sessions_and_gaps_are_refused(tmp_path):
    from duplex.publish import PublishError, target_plan
    from duplex.publish.kubernetes import manifests
    from duplex.publish.scaling import plan_scaling
    from duplex.stack import load_stack
    from tests.support.stacks import write_stack

    text = scaled_stack(tmp_path).read_text()
    stack = load_stack(write_stack(tmp_path / "plain", text))
    scaling = plan_scaling(stack, ["asr", "moshi", "frontend"])
    assert scaling["asr"].target == 8 * HEADROOM and "sessions = 8 (no capacity measured)" in scaling["asr"].target_from
    files = manifests(target_plan(stack, environ={}), scaling=scaling)
    hpa = next(d for d in files["asr.yaml"] if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["metrics"][0]["pods"]["target"]["averageValue"] == "6400m"
    assert "dev.duplex/per-replica" not in hpa["metadata"]["annotations"]  # nothing was measured
    validate_manifests(files)
    # Three fixed replicas, no autoscaler: replicas: 3, a budget and the drain, no HPA.
    fixed = load_stack(write_stack(tmp_path / "fixed", text.replace("max_replicas = 6\n", "").replace("replicas = 2\nsessions = 8", "replicas = 3", 1)))
    docs = {d["kind"]: d for d in manifests(target_plan(fixed, environ={}), scaling=plan_scaling(fixed, ["asr"]))["asr.yaml"]}
    assert docs["Deployment"]["spec"]["replicas"] == 3 and "HorizontalPodAutoscaler" not in docs
    assert docs["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    assert docs["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= WALL
    # An autoscaler with nothing to count, or nothing to aim at: refused, with the fix.
    uncounted = load_stack(write_stack(tmp_path / "uncounted", text.replace('metrics = "/metrics"', "#", 1)))
    try:
        plan_scaling(uncounted, ["asr"])
        raise AssertionError("an autoscaler on a service without metrics was accepted")
    except PublishError as err:
        assert "nothing counts its live sessions" in str(err) and "metrics" in err.fix
    unsized = load_stack(write_stack(tmp_path / "unsized", text.replace("sessions = 8\n", "", 1)))
    try:
        plan_scaling(unsized, ["asr"])
        raise AssertionError("an autoscaler without sessions or a capacity file was accepted")
    except PublishError as err:
        assert "nothing says how many sessions one pod serves" in str(err) and "inv loadtest" in err.fix


def test_compose_refuses_replica_ports_that_run_into_another_service(default_stack):
    from duplex.publish import PublishError, target_plan
    from duplex.publish.compose import compose_files

    the_plan = target_plan(default_stack, environ={})
    assert compose_files(the_plan, context="..", replicas={"asr": 10})["compose.yaml"]["services"]["asr"]["ports"] == [
        "127.0.0.1:8000-8009:8000"]  # up to the frontend's 8010
    try:
        compose_files(the_plan, context="..", replicas={"asr": 11})
        raise AssertionError("asr's 11th replica on the frontend's port 8010 was accepted")
    except PublishError as err:
        assert "host port 8010 would be both asr's (11 replicas: 8000-8010) and frontend's" in str(err), str(err)
        assert "fewer replicas" in err.fix
