"""Smoke: real checks against the running default stack, and clear failures when asr is broken."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from duplex.host import probe_machine
from duplex.plan import Health, base_image, plan
from duplex.run.smoke import app_of, smoke, targets_at
from duplex.run.smoke_apps import ASR_APP, EXPECTED, SAMPLE
from duplex.run.smoke_gpu import gpu_check
from duplex.run.smoke_results import SmokeReport, SmokeResult, Target
from duplex.run.state import read_state
from duplex.scoring import word_error_rate
from duplex.stack import load_stack
from tests.run.conftest import wait_gone
from tests.support.asr_server import asr_server
from tests.support.envs import ROOT, ensure_env
from tests.support.net import free_port
from tests.support.stackcopy import copy_stack


def test_sample_is_small_16k_mono_speech():
    import wave
    with wave.open(str(SAMPLE)) as w:
        assert (w.getframerate(), w.getnchannels()) == (16000, 1)
    assert SAMPLE.stat().st_size < 80_000


def test_app_comes_from_the_command_in_both_modes():
    assert app_of(["python", "-m", "uvicorn", ASR_APP, "--host", "0.0.0.0"]) == ASR_APP
    assert app_of(["python", "/x/warm/runner.py", "--app", "servers.frontend.app:app"]) == "servers.frontend.app:app"
    assert app_of(["python", "-m", "moshi.server", "--port", "8998"]) is None
    assert word_error_rate("hello world", "Hello, world!") == 0 and word_error_rate("a b", "a") == 0.5


def test_report_fails_on_any_failure_and_gpu_skips_without_a_runtime():
    skipped = gpu_check(False, "duplex/python:3.11-bookworm")()
    assert skipped.status == "skip" and "NVIDIA container runtime" in skipped.reason
    report = SmokeReport([skipped, SmokeResult("asr", "transcribe", "pass", 0.3, "ok")])
    assert report.ok and report.exit_code == 0
    report.results.append(SmokeResult("frontend", "page", "fail", 0.1, "cannot reach"))
    assert not report.ok and report.exit_code == 1
    assert report.lines()[-1] == "smoke: 1 passed, 1 failed, 1 skipped"
    assert json.loads(json.dumps(report.as_dict()))["ok"] is False


def test_a_service_that_does_not_answer_fails_with_the_url():
    port = free_port()
    report = smoke([Target("moshi", "container", f"http://127.0.0.1:{port}",
                           Health("websocket", f"ws://127.0.0.1:{port}/api/chat", 2.0))], timeout=2)
    (result,) = report.results
    assert (result.check, result.status) == ("handshake", "fail") and str(port) in result.reason


def _inv(root: Path, env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args], cwd=root,
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def running_stack(tmp_path):
    """The default stack (asr + frontend, natively) in a copy, started with `inv run --native --detach`."""
    root = copy_stack(tmp_path / "stack", "smoketest")
    ports = {"asr": free_port(), "frontend": free_port()}
    env = {**os.environ, "DUPLEX_STACK": str(root / "stack.toml"),
           **{f"DUPLEX_PORT_{n.upper()}": str(p) for n, p in ports.items()}}
    up = _inv(root, env, "run", "--native", "--detach", "--skip-preflight")
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield root, env
    finally:
        _inv(root, env, "stop", "--all", timeout=120)


def _smoke_running(root: Path, env: dict) -> SmokeReport:
    """What `inv smoke` does: the plan for the run's mode, narrowed to what is running."""
    stack = load_stack(root / "stack.toml")
    native = read_state(root).get("mode") == "native"
    the_plan = plan(stack, probe_machine(env, gpus=0), native=native)
    return smoke(targets_at(root, the_plan), gpu=gpu_check(False, base_image(stack, probe_machine(env, gpus=0))))


def test_smoke_passes_on_the_running_stack_then_fails_when_asr_dies(running_stack):
    root, env = running_stack
    started = time.monotonic()
    report = _smoke_running(root, env)
    took = time.monotonic() - started
    by_name = {r.name: r for r in report.results}
    assert report.ok, report.lines()
    assert set(by_name) == {"asr", "frontend", "gpu"}
    asr = by_name["asr"]
    assert (asr.check, asr.status) == ("transcribe", "pass")
    assert asr.detail["backend"] == "pocketsphinx" and word_error_rate(EXPECTED, asr.detail["text"]) <= 0.34
    assert (by_name["frontend"].check, by_name["frontend"].status) == ("page", "pass")
    assert by_name["gpu"].status == "skip"
    assert took < 20, took
    print(f"\nsmoke on the running stack: {took:.2f}s", *report.lines(), sep="\n  ")
    # `inv smoke --latency`: speech streamed at real time to asr's WS /stream, through the real CLI
    cli = _inv(root, env, "smoke", "--latency", "--services", "asr", "--json")
    assert cli.returncode == 0, cli.stdout + cli.stderr
    rows = {r["check"]: r for r in json.loads(cli.stdout)["results"]}
    assert rows["latency"]["status"] == "pass" and rows["latency"]["detail"]["finals"] == 3, rows
    assert rows["latency"]["detail"]["end_to_final_s"]["n"] == 3 and rows["transcribe"]["status"] == "pass"
    # Crash asr (SIGKILL, as the OOM killer would): smoke names it and says where to look.
    pid = read_state(root)["services"]["asr"]["pid"]
    os.killpg(pid, signal.SIGKILL)
    assert wait_gone([pid]) == []
    broken = _smoke_running(root, env)
    failed = {r.name: r for r in broken.results if r.status == "fail"}
    print(*broken.lines(), sep="\n  ")
    assert not broken.ok and set(failed) == {"asr"}
    # "not running" once the state shows it gone; "cannot reach URL" while its group is still reaped
    assert "inv logs --service asr" in failed["asr"].reason, failed["asr"].reason
    assert "exited" in failed["asr"].reason or "Connection refused" in failed["asr"].reason


def test_smoke_fails_clearly_when_the_asr_backend_cannot_load():
    """ASR_BACKEND=nemo in the plain asr env: /health is 503 and the smoke says why."""
    python = ensure_env("asr") / "bin" / "python"
    with asr_server(python, {"ASR_BACKEND": "nemo"}, name="smoke-nemo", ready=False) as server:
        report = smoke([Target("asr", "native", server.url, Health("http", f"{server.url}/health", 5),
                               ASR_APP)], timeout=10)
    (result,) = report.results
    assert not report.ok and result.status == "fail" and result.check == "transcribe"
    assert "503" in result.reason and "not_ready" in result.reason and "nemo" in result.reason
