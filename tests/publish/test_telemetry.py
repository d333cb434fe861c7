"""Published telemetry: off leaves OTEL_* to the platform; on carries the stack's collector as written."""

from __future__ import annotations

import yaml

from duplex.publish import publish, target_plan
from duplex.stack import load_stack
from tests.publish.conftest import copy_default


def _stack(tmp_path, extra: str = ""):
    path = copy_default(tmp_path / "repo", "otelpub")
    path.write_text(path.read_text().replace("[stack]\n", f"[stack]\n{extra}", 1))
    return load_stack(path)


def _compose_env(tmp_path, stack) -> tuple[dict, list[str]]:
    report = publish(target_plan(stack, environ={}), out=tmp_path / "deploy", k8s=False)
    compose = yaml.safe_load((tmp_path / "deploy" / "compose.yaml").read_text())
    return {n: s.get("environment", {}) for n, s in compose["services"].items()}, report.warnings


def test_off_publishes_no_otel_variables(tmp_path):
    env, _ = _compose_env(tmp_path, _stack(tmp_path))
    assert env and not [k for svc in env.values() for k in svc if k.startswith("OTEL_")]


def test_on_publishes_the_collector_as_written_and_warns_about_loopback(tmp_path):
    env, warnings = _compose_env(tmp_path, _stack(tmp_path, 'telemetry = "otlp"\notlp_endpoint = "http://otel-collector:4318"\n'))
    assert env["asr"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    assert env["frontend"]["OTEL_SERVICE_NAME"] == "frontend" and env["asr"]["OTEL_SDK_DISABLED"] == "false"
    assert not any("loopback" in w for w in warnings)
    (tmp_path / "b").mkdir()
    env, warnings = _compose_env(tmp_path / "b", _stack(tmp_path / "b", 'telemetry = "otlp"\n'))
    assert env["asr"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318"  # not this host's host.docker.internal
    assert any("otlp_endpoint http://127.0.0.1:4318 is loopback" in w for w in warnings)
