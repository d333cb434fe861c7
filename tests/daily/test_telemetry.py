"""Telemetry: off by default, the standard OTEL_* variables when on, real spans at a real OTLP receiver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from duplex.machine import Machine
from duplex.plan import HOST_FROM_CONTAINER, plan
from duplex.run.smoke_apps import SAMPLE
from duplex.stack import load_stack
from servers import telemetry
from tests.run.test_parity import post_file
from tests.support.asr_server import asr_server
from tests.support.envs import ROOT, ensure_env
from tests.support.net import free_port
from tests.support.otlp import Collector
from tests.support.stackcopy import copy_stack

FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "200"}  # the SDK's own knob: batches every 0.2 s, not 5 s


def _inv(root: Path, env: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args], cwd=root,
                          env=env, capture_output=True, text=True, timeout=timeout)


def _stack(tmp_path: Path, extra: str = ""):
    root = copy_stack(tmp_path / "stack", "oteltest")
    if extra:
        text = (root / "stack.toml").read_text().replace('on_crash = "keep"', f'on_crash = "keep"\n{extra}', 1)
        (root / "stack.toml").write_text(text)
    return load_stack(root / "stack.toml")


def test_off_by_default_and_off_means_off(tmp_path):
    the_plan = plan(_stack(tmp_path), Machine(), native=True)
    assert the_plan.telemetry is None
    for svc in the_plan.services.values():
        assert svc.environment["OTEL_SDK_DISABLED"] == "true"
        assert not any(k.startswith("OTEL_EXPORTER") for k in svc.environment)
    # A collector address left in the user's shell does not switch the servers on.
    assert not telemetry.enabled({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"})
    assert not telemetry.enabled({})
    assert not telemetry.enabled({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"})
    assert telemetry.enabled({"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"})


def test_stack_setting_gives_every_service_the_standard_variables(tmp_path):
    stack = _stack(tmp_path, 'telemetry = "otlp"\notlp_endpoint = "http://127.0.0.1:4318"')
    machine = Machine(env={"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer s3cret"})
    native = plan(stack, machine, native=True)
    asr = native.services["asr"].environment
    assert asr["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318"
    assert asr["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf" and asr["OTEL_SDK_DISABLED"] == "false"
    assert asr["OTEL_SERVICE_NAME"] == "asr" and native.services["frontend"].environment["OTEL_SERVICE_NAME"] == "frontend"
    assert asr["OTEL_RESOURCE_ATTRIBUTES"] == "service.namespace=oteltest,duplex.mode=native"
    assert native.masked_env("asr")["OTEL_EXPORTER_OTLP_HEADERS"] == "***"  # a collector's auth: never shown
    # From a container the host's loopback is the host gateway; the flag overrides the stack's endpoint.
    containers = plan(stack, machine, otlp="http://localhost:5318/")
    env = containers.services["asr"].environment
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://{HOST_FROM_CONTAINER}:5318"
    assert env["OTEL_RESOURCE_ATTRIBUTES"].endswith("duplex.mode=container")
    assert plan(stack, machine, otlp="https://otel.example:4318").services["asr"].environment[
        "OTEL_EXPORTER_OTLP_ENDPOINT"] == "https://otel.example:4318"


def test_config_shows_telemetry_and_refuses_a_bad_collector_url(tmp_path):
    stack = _stack(tmp_path)
    env = {**os.environ, "DUPLEX_STACK": str(stack.root / "stack.toml")}
    shown = _inv(stack.root, env, "config", "--native", "--json", "--otlp", "http://127.0.0.1:4318")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["telemetry"] == {"exporter": "otlp", "endpoint": "http://127.0.0.1:4318"}
    bad = _inv(stack.root, env, "config", "--otlp", "127.0.0.1:4318")
    assert bad.returncode == 2 and "not a collector URL" in bad.stderr and "Traceback" not in bad.stderr
    broken = stack.root / "stack.toml"
    broken.write_text(broken.read_text().replace('on_crash = "keep"', 'on_crash = "keep"\ntelemetry = "zipkin"', 1))
    refused = _inv(stack.root, env, "config")
    assert refused.returncode != 0 and "stack.telemetry" in refused.stderr and "Traceback" not in refused.stderr


def test_spans_from_frontend_and_asr_arrive_in_one_trace(tmp_path):
    """`inv run --native --otlp URL`: a transcription through the frontend is one trace over both."""
    root = copy_stack(tmp_path / "stack", "oteltest")
    ports = {"asr": free_port(), "frontend": free_port()}
    with Collector() as collector:
        env = {**os.environ, **FAST_EXPORT, "DUPLEX_STACK": str(root / "stack.toml"),
               **{f"DUPLEX_PORT_{n.upper()}": str(p) for n, p in ports.items()}}
        try:
            up = _inv(root, env, "run", "--native", "--detach", "--skip-preflight", "--otlp", collector.url)
            assert up.returncode == 0, up.stdout + up.stderr
            code, body = post_file(f"http://127.0.0.1:{ports['frontend']}/api/transcribe", SAMPLE)
            assert code == 200 and "hello" in body["text"], body
            asr = collector.wait_for(lambda s: s.service == "asr" and s.name == "POST /transcribe")
            front = collector.wait_for(lambda s: s.service == "frontend" and s.name == "POST /api/transcribe")
        finally:
            _inv(root, env, "stop", "--all", timeout=120)
        assert asr and front, [(s.service, s.name) for s in collector.spans]
        assert asr[0].trace_id == front[0].trace_id  # the frontend's httpx call carried the traceparent
        assert asr[0].attributes.get("http.route") == "/transcribe"
        assert asr[0].resource["service.namespace"] == "oteltest" and asr[0].resource["duplex.mode"] == "native"
        assert not [s for s in collector.spans if "/health" in s.name]  # health polls are not traced
        assert set(collector.posts) == {"/v1/traces"}


def test_no_spans_when_off_even_with_a_collector_in_the_environment():
    python = ensure_env("asr") / "bin" / "python"
    with Collector() as collector:
        env = {**FAST_EXPORT, "OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url}
        with asr_server(python, env, name="otel-off") as server:
            code, _ = post_file(f"{server.url}/transcribe", SAMPLE)
            assert code == 200
            time.sleep(1.5)  # seven export intervals
        assert collector.posts == []
        env["OTEL_SDK_DISABLED"] = "false"  # the same server with it on: the receiver hears it
        with asr_server(python, env, name="otel-on") as server:
            assert post_file(f"{server.url}/transcribe", SAMPLE)[0] == 200
            assert collector.wait_for(lambda s: s.name == "POST /transcribe", timeout=10)


@pytest.mark.docker
def test_spans_arrive_from_the_asr_container(tmp_path):
    """Container mode: the collector on the host is reached at host.docker.internal."""
    root = copy_stack(tmp_path / "stack", "oteltest")
    with Collector(host="0.0.0.0") as collector:  # the docker bridge reaches the host, not its loopback
        port = free_port()  # drawn while the collector holds its own port: never the same one
        env = {**os.environ, "DUPLEX_STACK": str(root / "stack.toml"), "DUPLEX_PORT_ASR": str(port)}
        try:
            up = _inv(root, env, "run", "--detach", "--services", "asr", "--otlp",
                      f"http://127.0.0.1:{collector.port}")
            assert up.returncode == 0, up.stdout + up.stderr
            assert post_file(f"http://127.0.0.1:{port}/transcribe", SAMPLE)[0] == 200
            # The container exports every 5 s (the SDK default); `inv stop` flushes on SIGTERM too.
            spans = collector.wait_for(lambda s: s.service == "asr" and s.name == "POST /transcribe", timeout=30)
        finally:
            _inv(root, env, "stop", "--all", timeout=120)
        assert spans and spans[0].resource["duplex.mode"] == "container"


@pytest.mark.docker
def test_with_no_collector_the_dashboard_receives_the_asr_containers_spans(tmp_path):
    """Container mode, nothing at the endpoint: the dashboard's receiver also listens at the engine's
    host gateway (what host.docker.internal is in the container), for trace exports only."""
    import httpx

    from tests.run.test_dashboard import LINK
    root = copy_stack(tmp_path / "stack", "oteldash")
    port, otlp = free_port(), free_port()
    env = {**os.environ, "DUPLEX_STACK": str(root / "stack.toml"), "DUPLEX_PORT_ASR": str(port)}
    try:
        up = _inv(root, env, "run", "--detach", "--services", "asr", "--otlp", f"http://127.0.0.1:{otlp}")
        assert up.returncode == 0, up.stdout + up.stderr
        _url, board, token = LINK.search(up.stdout).groups()
        assert post_file(f"http://127.0.0.1:{port}/transcribe", SAMPLE)[0] == 200
        deadline = time.monotonic() + 40  # the container's SDK exports every 5 s
        while True:
            found = httpx.get(f"http://127.0.0.1:{board}/api/traces", headers={"x-duplex-token": token}).json()
            asr = [t for t in found["traces"] if t["services"] == ["asr"] and t["name"] == "POST /transcribe"]
            if asr:
                break
            assert time.monotonic() < deadline, (found, (root / ".duplex" / "logs" / "dashboard.log").read_text())
            time.sleep(0.5)
        assert "receiving container traces at" in (root / ".duplex" / "logs" / "dashboard.log").read_text()
    finally:
        _inv(root, env, "stop", "--all", timeout=120)
