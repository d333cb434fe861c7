"""Replicas in the pure plan (`inv run --replicas asr=2`, the stack's `replicas`): names, ports,
health gating, discovery, and that one replica plans exactly as before. Flag errors through `inv`."""

from __future__ import annotations

import dataclasses

import pytest

from duplex.errors import PlanError
from duplex.machine import Machine
from duplex.plan import plan
from duplex.stack import Stack, load_stack
from duplex.syntax import INSTANCE, NAME, instance_name, service_of_instance
from tests.conftest import ROOT, run_inv

LAPTOP = Machine(gpu_count=0, nvidia_runtime=False, hf_home="/home/u/.cache/huggingface", uid=1234, gid=99)
GPU_BOX = Machine(gpu_count=1, nvidia_runtime=True, hf_home="/data/hf", uid=1000, gid=1000)


@pytest.fixture(scope="module")
def stack() -> Stack:
    return load_stack(ROOT / "stack.toml")


def test_one_replica_plans_exactly_as_without_replicas(stack):
    for machine, native in ((GPU_BOX, False), (GPU_BOX, True), (LAPTOP, True)):
        assert plan(stack, machine, native=native, replicas={}) == plan(stack, machine, native=native)
        assert plan(stack, machine, native=native, replicas={"asr": 1}) == plan(stack, machine, native=native)


def test_replica_names_never_collide_with_a_service_name():
    for k in range(1, 64):
        name = instance_name("asr", k)
        assert INSTANCE.fullmatch(name) and not NAME.fullmatch(name) and service_of_instance(name) == "asr"
    assert instance_name("asr-1", 0) == "asr-1" and service_of_instance("asr-1") == "asr-1"


def test_replicas_take_the_next_ports_each_health_gated_and_dependents_wait_for_all(stack):
    p = plan(stack, LAPTOP, native=True, replicas={"asr": 3})
    assert p.waves == [["asr", "asr_1", "asr_2"], ["frontend"]]
    asr = [p.services[n] for n in ("asr", "asr_1", "asr_2")]
    assert [s.port for s in asr] == [8000, 8001, 8002]
    assert [s.health.url for s in asr] == [f"http://127.0.0.1:{8000 + k}/health" for k in range(3)]
    assert [s.command[s.command.index("--port") + 1] for s in asr] == ["8000", "8001", "8002"]
    assert {s.service for s in asr} == {"asr"} and asr[2].labels["dev.duplex.service"] == "asr_2"
    assert p.services["frontend"].depends_on == {"asr": True, "asr_1": True, "asr_2": True}
    assert asr[0].environment == asr[1].environment  # the same service, only its address differs


def test_discovery_lists_every_replica_native_and_in_containers(stack):
    env = plan(stack, LAPTOP, native=True, replicas={"asr": 2}).services["frontend"].environment
    assert env["ASR_URL"] == "http://127.0.0.1:8000,http://127.0.0.1:8001"
    assert env["services__asr__http__0"] == "http://127.0.0.1:8000"
    assert env["services__asr__http__1"] == "http://127.0.0.1:8001"
    assert "services__asr__http__2" not in env
    assert env["ASR_SESSIONS"] == "8" and env["MOSHI_SESSIONS"] == "1"  # the stack's, moshi in the run or not
    boxed = plan(stack, GPU_BOX, replicas={"asr": 2, "moshi": 2}).services
    env = boxed["frontend"].environment
    assert env["MOSHI_WS_URL"] == "ws://moshi:8998/api/chat,ws://moshi_1:8998/api/chat"
    assert env["ASR_URL"] == "http://asr:8000,http://asr_1:8000"  # network aliases: each replica's name
    assert [boxed[n].port for n in ("moshi", "moshi_1")] == [8998, 8999]  # published on the next host port
    assert boxed["moshi_1"].container_port == 8998 and boxed["moshi_1"].persistent
    native = plan(stack, GPU_BOX, native=True, replicas={"moshi": 2}).services["frontend"].environment
    assert native["MOSHI_WS_URL"] == "ws://127.0.0.1:8998/api/chat,ws://127.0.0.1:8999/api/chat"


def test_sessions_template_is_empty_when_the_stack_does_not_say(stack):
    asr = stack.services["asr"].model_copy(update={"sessions": None})
    bare = stack.model_copy(update={"services": {**stack.services, "asr": asr}})
    assert plan(bare, LAPTOP, native=True).services["frontend"].environment["ASR_SESSIONS"] == ""


def test_port_override_moves_the_base_and_replicas_that_would_overlap_are_refused(stack):
    moved = Machine(**{**dataclasses.asdict(LAPTOP), "env": {"DUPLEX_PORT_ASR": "9100"}})
    p = plan(stack, moved, native=True, replicas={"asr": 2})
    assert [p.services[n].port for n in ("asr", "asr_1")] == [9100, 9101]
    close = Machine(**{**dataclasses.asdict(LAPTOP), "env": {"DUPLEX_PORT_ASR": "8009"}})
    with pytest.raises(PlanError, match="share port 8010"):
        plan(stack, close, native=True, replicas={"asr": 2})
    high = Machine(**{**dataclasses.asdict(LAPTOP), "env": {"DUPLEX_PORT_ASR": "65535"}})
    with pytest.raises(PlanError, match="past port 65535"):
        plan(stack, high, native=True, replicas={"asr": 2})


def test_replicas_of_an_unknown_or_left_out_service_are_refused(stack):
    with pytest.raises(PlanError, match="unknown service: nope"):
        plan(stack, LAPTOP, native=True, replicas={"nope": 2})
    with pytest.raises(PlanError, match="leaves out.*moshi: needs a GPU"):
        plan(stack, LAPTOP, native=True, replicas={"moshi": 2})
    with pytest.raises(PlanError, match="leaves out.*frontend: not selected"):
        plan(stack, LAPTOP, native=True, services=["asr"], replicas={"frontend": 2})


@pytest.mark.parametrize(("value", "said"), [
    ("asr=x", "'x' is not a whole number"), ("asr=0", "out of range: give 1 to 64"),
    ("asr=65", "out of range: give 1 to 64"), ("asr", "expected SERVICE=COUNT"),
    ("nope=2", "unknown service: nope"), ("frontend=2", "which this run leaves out"),
])
def test_replicas_flag_mistakes_are_one_clear_line(value, said):
    done = run_inv("run", "--native", "--services", "asr", "--replicas", value, "--no-dashboard", "--skip-preflight")
    assert done.returncode != 0 and said in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_inv_config_shows_each_replica():
    done = run_inv("config", "--native", "--json", "--replicas", "asr=1", "--replicas", "asr=2", check=True)
    assert '"asr_1"' in done.stdout and "http://127.0.0.1:8000,http://127.0.0.1:8001" in done.stdout


def test_the_dashboard_plans_a_row_per_replica_each_scraped_on_its_own_port(stack):
    from duplex.run.dashboard import planned_view
    view = planned_view(plan(stack, LAPTOP, native=True, replicas={"asr": 2}))
    assert view["order"] == ["asr", "asr_1", "frontend"]
    assert view["services"]["asr_1"]["url"] == "http://127.0.0.1:8001" and view["services"]["asr_1"]["metrics"] == "/metrics"


def test_traces_keep_the_service_name_and_tell_replicas_apart(stack):
    p = plan(stack, LAPTOP, native=True, replicas={"asr": 2}, otlp="http://127.0.0.1:4318")
    for name in ("asr", "asr_1"):
        env = p.services[name].environment
        assert env["OTEL_SERVICE_NAME"] == "asr" and env["OTEL_RESOURCE_ATTRIBUTES"].endswith(f",service.instance.id={name}")
    assert "service.instance.id" not in p.services["frontend"].environment["OTEL_RESOURCE_ATTRIBUTES"]

