"""The pure plan for both modes, from the shipped stack and hand-made Machine facts."""

from __future__ import annotations

import json
import textwrap

import pytest

from duplex.errors import PlanError
from duplex.host import probe_machine
from duplex.machine import Machine
from duplex.plan import plan
from duplex.stack import Stack, load_stack
from tests.conftest import ROOT, run_inv

LAPTOP = Machine(gpu_count=0, nvidia_runtime=False, hf_home="/home/u/.cache/huggingface", uid=1234, gid=99)
GPU_BOX = Machine(gpu_count=1, nvidia_runtime=True, hf_home="/data/hf", uid=1000, gid=1000,
                  env={"HF_TOKEN": "hf_secret", "HF_HUB_OFFLINE": "1"})


@pytest.fixture(scope="module")
def stack() -> Stack:
    return load_stack(ROOT / "stack.toml")


def test_plain_run_puts_every_service_in_a_container(stack):
    p = plan(stack, GPU_BOX)
    assert {s.mode for s in p.services.values()} == {"container"}
    assert p.start_order[-1] == "frontend"
    assert p.waves == [["asr", "moshi"], ["frontend"]]  # independent ones start together


def test_native_runs_what_may_run_natively_and_keeps_moshi_in_a_container(stack):
    p = plan(stack, GPU_BOX, native=True)
    assert {n: s.mode for n, s in p.services.items()} == {
        "asr": "native", "frontend": "native", "moshi": "container"}
    front, asr = p.services["frontend"], p.services["asr"]
    assert front.bind == asr.bind == "127.0.0.1"
    assert front.command[:4] == ["python", "-m", "uvicorn", "servers.frontend.app:app"]
    assert "--reload" in front.command and front.watch == ["servers/frontend"]
    # the shipped asr opts into warm reload: its model survives code edits
    assert asr.command[1].endswith("duplex/standalone/warm/runner.py") and asr.watch == ["servers/asr"]
    assert asr.command[asr.command.index("--preload") + 1] == "servers.asr.loaders:preload"


def test_discovery_from_native_frontend_reaches_container_moshi_on_loopback(stack):
    env = plan(stack, GPU_BOX, native=True).services["frontend"].environment
    assert env["MOSHI_WS_URL"] == "ws://127.0.0.1:8998/api/chat"
    assert env["services__asr__http__0"] == "http://127.0.0.1:8000"
    assert env["services__moshi__http__0"] == "http://127.0.0.1:8998"
    assert env["ASR_URL"] == "http://127.0.0.1:8000"


def test_discovery_between_containers_uses_service_names(stack):
    env = plan(stack, GPU_BOX).services["frontend"].environment
    assert env["MOSHI_WS_URL"] == "ws://moshi:8998/api/chat"
    assert env["services__asr__http__0"] == "http://asr:8000"


def test_container_depending_on_native_service_reaches_the_host(tmp_path):
    path = tmp_path / "stack.toml"
    path.write_text(textwrap.dedent("""
        [envs.e]
        [services.db]
        env = "e"
        command = ["python", "-m", "db", "--port", "{port}", "--host", "{host}"]
        port = 7000
        modes = ["native"]
        [services.api]
        env = "e"
        app = "api:app"
        port = 7001
        modes = ["container"]
        image = "api:1"
        depends_on = ["db"]
        [services.api.environment]
        DB = "{db.host}:{db.port}"
    """))
    p = plan(load_stack(path), LAPTOP, native=True)
    assert p.services["api"].environment["DB"] == "host.docker.internal:7000"
    assert p.services["db"].bind == "0.0.0.0"
    assert p.services["db"].command == ["python", "-m", "db", "--port", "7000", "--host", "0.0.0.0"]
    assert any("binds 0.0.0.0" in w for w in p.warnings)


def test_gpu_service_left_out_on_a_laptop_and_frontend_still_starts(stack):
    p = plan(stack, LAPTOP, native=True)
    assert list(p.services) == ["asr", "frontend"]
    assert p.left_out == {"moshi": "needs a GPU and this machine has none"}
    assert "MOSHI_WS_URL" not in p.services["frontend"].environment
    assert p.services["frontend"].depends_on == {"asr": True}


def test_naming_a_gpu_service_keeps_it_and_warns(stack):
    p = plan(stack, LAPTOP, services=["moshi"])
    assert list(p.services) == ["moshi"]
    assert any("preflight will fail it" in w for w in p.warnings)


def test_services_selects_required_dependencies_but_not_optional_ones(stack):
    p = plan(stack, GPU_BOX, services=["frontend"])
    assert p.start_order == ["asr", "frontend"]
    assert p.left_out["moshi"] == "not selected"
    assert p.services["frontend"].depends_on == {"asr": True}


def test_optional_dependency_is_waited_for_when_in_the_run(stack):
    p = plan(stack, GPU_BOX, services=["frontend", "moshi"])
    assert p.services["frontend"].depends_on == {"asr": True, "moshi": False}
    assert p.start_order.index("moshi") < p.start_order.index("frontend")


def test_port_override_moves_the_service_and_what_points_at_it(stack):
    machine = Machine(env={"DUPLEX_PORT_ASR": "9000"})
    p = plan(stack, machine, native=True)
    assert p.services["asr"].port == 9000 and "9000" in p.services["asr"].command
    assert p.services["frontend"].environment["ASR_URL"] == "http://127.0.0.1:9000"
    c = plan(stack, machine)
    assert c.services["asr"].port == 9000 and c.services["asr"].container_port == 8000
    assert c.services["frontend"].environment["ASR_URL"] == "http://asr:8000"


def test_port_override_clash_is_refused(stack):
    with pytest.raises(PlanError, match="share port 8010"):
        plan(stack, Machine(env={"DUPLEX_PORT_ASR": "8010"}), native=True)


def test_shared_cache_is_the_same_folder_in_both_modes(stack):
    native = plan(stack, GPU_BOX, native=True)
    assert native.services["asr"].environment["HF_HOME"] == "/data/hf"
    moshi = native.services["moshi"]
    assert [(m.source, m.target) for m in moshi.mounts] == [("/data/hf", "/cache/huggingface")]
    assert moshi.environment["HF_HOME"] == "/cache/huggingface"
    assert moshi.environment["HF_HUB_OFFLINE"] == "1"


def test_separate_hub_cache_is_mounted_too(stack):
    machine = Machine(hf_home="/data/hf", hf_hub_cache="/fast/hub")
    asr = plan(stack, machine).services["asr"]
    assert ("/fast/hub", "/cache/huggingface/hub") in [(m.source, m.target) for m in asr.mounts]
    assert asr.environment["HF_HUB_CACHE"] == "/cache/huggingface/hub"


def test_token_only_where_models_need_it_and_always_masked(stack):
    p = plan(stack, GPU_BOX)
    assert p.services["moshi"].environment["HF_TOKEN"] == "hf_secret"
    assert p.masked_env("moshi")["HF_TOKEN"] == "***"
    assert "HF_TOKEN" not in p.services["asr"].environment


def test_gpu_requests_follow_the_machine(stack):
    box = plan(stack, GPU_BOX)
    assert box.services["moshi"].gpu and box.services["asr"].gpu
    laptop = plan(stack, LAPTOP, services=["asr"])
    assert not laptop.services["asr"].gpu
    assert any("runs on the CPU" in w for w in laptop.warnings)


def test_container_build_uses_the_host_user_and_base_image_override(stack):
    asr = plan(stack, LAPTOP).services["asr"]
    assert asr.image == "duplex-duplex-asr:dev"
    # the official image of the env's Python (asr: >=3.10,<3.13 -> 3.11; moshi: "3.11")
    assert asr.build_args == {"BASE_IMAGE": "python:3.11-slim-bookworm", "UID": "1234", "GID": "99"}
    other = plan(stack, Machine(env={"DUPLEX_BASE_IMAGE": "corp/python:3.11"})).services["asr"]
    assert other.build_args["BASE_IMAGE"] == "corp/python:3.11"
    digest = "sha256:" + "ab" * 32
    pinned = plan(stack, LAPTOP, image_pins={"python:3.11-slim-bookworm": digest}).services["asr"]
    assert pinned.build_args["BASE_IMAGE"] == f"python:3.11-slim-bookworm@{digest}"
    air_gapped = plan(stack, Machine(env={"DUPLEX_BASE_IMAGE": "duplex/python:3.11-bookworm"}),
                      image_pins={"python:3.11-slim-bookworm": digest}).services["asr"]
    assert air_gapped.build_args["BASE_IMAGE"] == "duplex/python:3.11-bookworm"  # no pin of its own
    assert asr.labels["dev.duplex.service"] == "asr"


def test_official_base_follows_each_env_python():
    from duplex.images.lock import official_base
    assert [official_base(p) for p in (">=3.10,<3.13", "3.12", ">=3.12", "<3.11", None)] == [
        "python:3.11-slim-bookworm", "python:3.12-slim-bookworm", "python:3.12-slim-bookworm",
        "python:3.10-slim-bookworm", "python:3.11-slim-bookworm"]


def test_probe_reads_hf_variables_like_huggingface_hub(tmp_path):
    m = probe_machine({"HF_HOME": str(tmp_path), "HF_HUB_CACHE": str(tmp_path / "hub"),
                       "HF_TOKEN": "x", "PATH": "/bin"}, gpus=0)
    assert m.hf_home == str(tmp_path) and m.hf_hub_cache is None
    assert m.env == {"HF_TOKEN": "x"}
    assert probe_machine({"XDG_CACHE_HOME": "/xdg"}, gpus=0).hf_home == "/xdg/huggingface"


def test_inv_config_json_on_the_default_stack_masks_secrets():
    proc = run_inv("config", "--json", "--native", "--services", "frontend,moshi",
                   env={"HF_TOKEN": "hf_do_not_print", "DUPLEX_PORT_FRONTEND": "8111"}, check=True)
    data = json.loads(proc.stdout)
    assert "hf_do_not_print" not in proc.stdout + proc.stderr
    services = {s["name"]: s for s in data["services"]}
    assert data["start_order"] == ["asr", "moshi", "frontend"]
    assert services["moshi"]["env"]["HF_TOKEN"] == "***"
    assert services["frontend"]["url"] == "http://127.0.0.1:8111"
    assert services["frontend"]["depends_on"] == [{"name": "asr", "required": True},
                                                 {"name": "moshi", "required": False}]
    for key in ("name", "mode", "url", "env", "depends_on"):
        assert all(key in s for s in data["services"])


def test_inv_config_human_output():
    proc = run_inv("config", "--native", check=True)
    assert "start order: asr → frontend" in proc.stdout
    assert "left out: moshi" in proc.stdout


WHISPER = """
[envs.asr]
[services.asr]
env = "asr"
app = "servers.asr.app:app"
port = 8000
dockerfile = "dockerfiles/asr.Dockerfile"
models = ["Systran/faster-whisper-base"]
[services.asr.environment]
ASR_MODEL = "Systran/faster-whisper-base"
ASR_MODEL_REVISION = "{revision:Systran/faster-whisper-base}"
"""


def test_model_services_start_offline_at_the_pinned_revision(tmp_path):
    path = tmp_path / "stack.toml"
    path.write_text(WHISPER)
    stack = load_stack(path)
    pinned = plan(stack, LAPTOP, native=True, pins={"Systran/faster-whisper-base": "abc123"})
    env = pinned.services["asr"].environment
    assert env["ASR_MODEL_REVISION"] == "abc123" and env["HF_HUB_OFFLINE"] == "1"
    unpinned = plan(stack, LAPTOP, native=True)
    assert "ASR_MODEL_REVISION" not in unpinned.services["asr"].environment
    assert any("inv prefetch --services asr" in w for w in unpinned.warnings)


def test_revision_template_must_name_a_declared_model(tmp_path):
    path = tmp_path / "stack.toml"
    path.write_text(WHISPER.replace('models = ["Systran/faster-whisper-base"]', "models = []"))
    proc = run_inv("config", env={"DUPLEX_STACK": str(path)})
    assert proc.returncode == 1
    assert "{revision:Systran/faster-whisper-base} names a model the service does not declare" in proc.stderr


def test_setup_saves_the_token_0600_and_never_prints_it(tmp_path):
    import os
    import stat
    stack = tmp_path / "stack.toml"
    stack.write_text('[envs.e]\n[services.s]\nenv = "e"\ncommand = ["x"]\nport = 9\nmodes = ["native"]\n'
                     'models = ["org/model"]\n')
    secret = "hf_" + "x" * 20
    proc = run_inv("setup", "--hf-token", secret, "--env", "nope", env={"DUPLEX_STACK": str(stack)})
    assert secret not in proc.stdout + proc.stderr
    dotenv = tmp_path / ".env"
    assert stat.S_IMODE(os.stat(dotenv).st_mode) == 0o600
    assert f"HF_TOKEN={secret}" in dotenv.read_text()
    env = {"DUPLEX_STACK": str(stack), "HF_TOKEN": ""}
    shown = run_inv("config", "--json", env=env, check=True)
    assert secret not in shown.stdout and '"HF_TOKEN": "***"' in shown.stdout  # loaded from .env, masked


def test_moshi_image_gets_the_torch_build_that_fits_the_driver(stack):
    box = Machine(gpu_count=1, nvidia_runtime=True, torch="cu128")
    moshi = plan(stack, box).services["moshi"]
    assert moshi.build_args["TORCH"] == "cu128"
    assert "TORCH" not in plan(stack, box).services["asr"].build_args  # torch = "none"
    assert moshi.environment["HF_HUB_OFFLINE"] == "1"  # weights come from the prefetched cache
    assert moshi.command[-2:] == ["--hf-repo", "kyutai/moshiko-pytorch-bf16"]


def test_declared_secrets_reach_the_service_masked_and_nothing_else_does(tmp_path):
    text = (ROOT / "stack.toml").read_text().replace('gpu = "optional"', 'gpu = "optional"\nsecrets = ["ASR_API_KEY"]', 1)
    (tmp_path / "stack.toml").write_text(text)
    for item in ("envs", "servers", "dockerfiles"):
        (tmp_path / item).symlink_to(ROOT / item)
    env = {"DUPLEX_STACK": str(tmp_path / "stack.toml"), "ASR_API_KEY": "sk-do-not-print",
           "UNRELATED_KEY": "nope"}
    for flags in ((), ("--native",)):
        proc = run_inv("config", "--json", "--services", "asr", *flags, env=env, check=True)
        assert "sk-do-not-print" not in proc.stdout + proc.stderr
        (asr,) = json.loads(proc.stdout)["services"]
        assert asr["env"]["ASR_API_KEY"] == "***" and "UNRELATED_KEY" not in asr["env"]
    stack = load_stack(tmp_path / "stack.toml")
    the_plan = plan(stack, probe_machine(env, gpus=0, keep=stack.secret_names))
    assert the_plan.services["asr"].environment["ASR_API_KEY"] == "sk-do-not-print"  # the value reaches the container
