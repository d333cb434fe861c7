"""run_preflight end to end: probes gathered once and in parallel, the report, JSON, exit code, time."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

import duplex.preflight as pf
from checks import STATUSES, Result
from duplex.host import probe_machine
from duplex.plan import plan
from duplex.preflight import Probes, run_preflight
from duplex.report import print_preflight
from duplex.stack import load_stack

from .conftest import make, nvml_fixture

ROOT = Path(__file__).resolve().parents[2]
GOOD = "hf_previewtokenpreviewtoken"


def names(report) -> dict[str, Result]:
    return {r.name: r for r in report.results}


@pytest.mark.docker
def test_the_shipped_stack_in_container_mode_passes_here_in_under_two_seconds():
    stack = load_stack(ROOT / "stack.toml")
    environ = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9"}  # a hub that is not there
    machine = probe_machine(environ)
    started = time.perf_counter()
    report = run_preflight(stack, plan(stack, machine), environ=environ)
    took = time.perf_counter() - started
    assert took < 2.0, took
    assert report.exit_code == 0, [r for r in report.results if r.status == "fail"]
    got = names(report)
    assert got["docker.engine"].status == "pass" and got["ports.asr"].status == "pass"
    assert got["gpu.moshi"].status == "warn"  # left out: no GPU here
    assert got["python"].status == "skip"  # container mode
    rows = json.loads(report.to_json())
    assert isinstance(rows, list) and {r["status"] for r in rows} <= set(STATUSES)
    assert all(set(r) == {"name", "group", "status", "detail", "fix"} for r in rows)
    assert all(r["fix"] for r in rows if r["status"] != "pass")


@pytest.mark.docker
def test_a_stack_with_every_problem_at_once(hub_server, tmp_path):
    """A gated model without access, a taken port, a GPU service on a recorded H100: one report."""
    hub_server.tokens[GOOD] = "bob"
    hub_server.add_model("org/voice-7b", gated="manual", files={"model.safetensors": 15 * 2**30, "config.json": 1},
                         parameters={"BF16": 7_500_000_000})
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        environ = {**{k: v for k, v in os.environ.items() if k.startswith("DOCKER")},
                   "HF_ENDPOINT": hub_server.url, "HF_TOKEN": GOOD}
        stack, the_plan, ctx = make(tmp_path, environ=environ, services=["api", "voice"], api_port=port,
                                    voice_gpu="required", voice_models='["org/voice-7b"]', gpus=1)
        probes = Probes(nvml=lambda env: nvml_fixture("nvml_h100_driver550"))
        report = run_preflight(stack, the_plan, environ=ctx.environ, probes=probes)
    got = names(report)
    assert report.exit_code == 1
    assert got["ports.api"].status == "fail" and f"(pid {os.getpid()})" in got["ports.api"].detail
    assert got["token"].status == "pass" and "bob" in got["token"].detail
    assert got["token.org/voice-7b"].status == "fail"
    assert got["gpu.driver"].status == "pass" and got["gpu.voice"].status == "pass"
    assert got["gpu.vram.voice"].status == "pass" and "16.8 GiB" in got["gpu.vram.voice"].detail
    assert got["models.org/voice-7b"].status == "warn" and "15.0 GiB to download" in got["models.org/voice-7b"].detail
    assert got["disk"].status == "pass"
    assert got["docker.gpu.voice"].status == "fail"  # this engine has no NVIDIA runtime
    assert GOOD not in report.to_json()
    groups = [r.group for r in report.results]
    assert groups == sorted(groups, key=pf.GROUPS.index)  # grouped, in a stable order


def test_a_probe_that_breaks_or_hangs_is_reported_not_waited_on(tmp_path, monkeypatch):
    monkeypatch.setattr(pf, "PROBE_TIMEOUT", 0.5)

    def hang(path):
        time.sleep(5)

    def boom(port):
        raise RuntimeError("kaboom")
    stack, the_plan, ctx = make(tmp_path, native=True, services=["api"])
    started = time.perf_counter()
    report = run_preflight(stack, the_plan, environ=ctx.environ, probes=Probes(disk=hang, port=boom))
    assert time.perf_counter() - started < 2
    got = names(report)
    assert got["disk.probe"].status == "warn" and "no answer" in got["disk.probe"].detail
    assert got["port.probe"].status == "warn" and "kaboom" in got["port.probe"].detail
    assert "python.small.interpreter" in got  # the rest still ran


def test_before_a_run_a_missing_model_fails(tmp_path):
    stack, the_plan, ctx = make(tmp_path, native=True, services=["api"], api_models='["org/absent"]',
                                environ={"HF_HUB_OFFLINE": "1"})
    report = run_preflight(stack, the_plan, environ=ctx.environ, for_run=True)
    got = names(report)
    assert got["models.org/absent"].status == "fail" and got["token"].status == "skip"
    assert report.exit_code == 1


def test_rendering_shows_every_row_and_the_summary(tmp_path):
    from rich.console import Console
    stack, the_plan, ctx = make(tmp_path, native=True, services=["api"])
    report = run_preflight(stack, the_plan, environ=ctx.environ)
    out = Console(record=True, width=200)
    print_preflight(report, out)
    text = out.export_text()
    assert all(r.name in text for r in report.results)
    assert "preflight" in text and f"{report.counts()['fail']} failed" in text
    gpu_text = "could not select device driver \"\" with capabilities: [[gpu]]"
    from checks import fail
    report.results.append(fail("docker.gpu.x", gpu_text, "[install] the toolkit"))
    out = Console(record=True, width=300)
    print_preflight(report, out)
    text = out.export_text()
    assert gpu_text in text and "[install] the toolkit" in text  # rich markup does not eat them
