"""GPU placement and the VRAM check together, on simulated hosts served through the real NVML binding:
each GPU service on one device chosen by free memory after the run's other services, needs summed
per device, MIG instances as devices, published per-model figures, `.nemo` weights counted."""

from __future__ import annotations

from pathlib import Path

from checks import Context, gpu
from checks.models import ModelFacts, local_sizes
from duplex.machine import Machine
from duplex.plan import plan
from duplex.run.containers import run_kwargs
from duplex.stack import load_stack
from duplex.vram import FIGURES, GB, need
from tests.support.stacks import write_stack

from .conftest import by_name, nvml_fixture

GIB = 1024 ** 3
ROOT = Path(__file__).resolve().parents[2]
TWO = """
[stack]
name = "pair"
[envs.small]
[services.voice]
env = "small"
command = ["python", "-m", "voice", "--port", "{port}"]
port = 18701
modes = ["container"]
dockerfile = "voice.Dockerfile"
gpu = "required"
models = ["org/voice"]
[services.asr]
env = "small"
command = ["python", "-m", "asr", "--port", "{port}"]
port = 18702
modes = ["native", "container"]
dockerfile = "asr.Dockerfile"
gpu = "optional"
models = ["org/asr"]
"""


def machine_for(facts, tmp_path) -> Machine:
    return Machine(gpu_count=len(facts.gpus), nvidia_runtime=True, gpus=facts.gpus, hf_home=str(tmp_path / "hf"))


def planned(tmp_path, host, needs, native=False, text=TWO):
    stack = load_stack(write_stack(tmp_path, text))
    facts = nvml_fixture(host)
    the_plan = plan(stack, machine_for(facts, tmp_path), native=native,
                    needs={n: need(stack.services[n].models, {m: b for m, b in needs.items()}) for n in stack.services})
    return stack, the_plan, facts


def test_a_busy_gpu_is_passed_over_and_the_container_gets_only_its_device(tmp_path):
    _, the_plan, facts = planned(tmp_path, "two_l40s_one_busy", {"org/voice": 16 * GIB, "org/asr": 1 * GIB})
    voice, asr = the_plan.services["voice"], the_plan.services["asr"]
    assert voice.gpu_devices == ["1"] and "GPU 1 (NVIDIA L40S" in voice.gpu_placement
    assert asr.gpu_devices == ["1"]  # GPU 0 has 5 GiB free; after voice's ~19 GiB, GPU 1 still has more
    request = run_kwargs(voice, "pair", "net", "h")["device_requests"][0]
    assert request.device_ids == ["1"] and request.capabilities == [["gpu"]] and not request.count


def test_services_sharing_a_gpu_are_summed(tmp_path):
    """Two RTX 4090: 2 and 12 GiB free. Each model alone fits GPU 1; together they do not."""
    stack, the_plan, facts = planned(tmp_path, "two_gpus_busy", {"org/voice": 8 * GIB, "org/asr": 1 * GIB})
    assert the_plan.services["voice"].gpu_devices == ["1"]
    sizes = {"org/voice": ModelFacts("org/voice", True, 8 * GIB, 8 * GIB, "cache"),
             "org/asr": ModelFacts("org/asr", True, 3 * GIB, 3 * GIB, "cache")}
    # planned with ~9.6 + 1.2 GiB: asr fits the 2.4 GiB GPU 1 has left better than GPU 0's 2 GiB
    assert the_plan.services["asr"].gpu_devices == ["1"]
    results = by_name(gpu.check_vram(Context(stack, the_plan, {}), facts, sizes))
    for name in ("voice", "asr"):  # 9.6 + 3.6 = 13.2 GiB on a GPU with 12 GiB free
        assert results[f"gpu.vram.{name}"].status == "warn"
        assert "on the same device: 13.2 GiB" in results[f"gpu.vram.{name}"].detail


def test_sum_per_device_fails_what_each_alone_would_pass(tmp_path):
    one = {"driver_version": "550.54.15", "cuda_driver": 12040, "gpus": [
        {"name": "NVIDIA L4", "capability": [8, 9], "memory_total": 23 * GIB, "memory_free": 22 * GIB, "uuid": "GPU-l4"}]}
    from tests.support import fakenvml

    from .conftest import _LIB
    facts = fakenvml.probe(_LIB[0], one, tmp_path / "served")
    stack = load_stack(write_stack(tmp_path, TWO))
    the_plan = plan(stack, machine_for(facts, tmp_path))
    assert the_plan.services["voice"].gpu_devices == the_plan.services["asr"].gpu_devices == ["0"]
    sizes = {"org/voice": ModelFacts("org/voice", True, 0, 12 * GIB, "cache"),
             "org/asr": ModelFacts("org/asr", True, 0, 7 * GIB, "cache")}
    results = by_name(gpu.check_vram(Context(stack, the_plan, {}), facts, sizes))
    for name in ("voice", "asr"):  # 14.4 and 8.4 GiB each fit in 22; 22.8 together do not
        assert results[f"gpu.vram.{name}"].status == "warn", results[f"gpu.vram.{name}"]
        assert "on the same device: 22.8 GiB" in results[f"gpu.vram.{name}"].detail


def test_mig_instances_are_placement_targets(tmp_path):
    _, the_plan, facts = planned(tmp_path, "a100_mig", {"org/voice": 16 * GIB, "org/asr": 1 * GIB})
    assert the_plan.services["voice"].gpu_devices == ["0:0"]  # the 3g.40gb instance
    assert "MIG-4a6c" in the_plan.services["voice"].gpu_placement
    native = planned(tmp_path / "n", "a100_mig", {"org/voice": 16 * GIB, "org/asr": 1 * GIB}, native=True)[1]
    assert native.services["asr"].environment["CUDA_VISIBLE_DEVICES"].startswith("MIG-")


def test_native_services_see_their_gpu_by_uuid_whatever_the_device_order(tmp_path):
    _, the_plan, _ = planned(tmp_path, "two_l40s_one_busy", {"org/voice": 16 * GIB, "org/asr": 1 * GIB}, native=True)
    assert the_plan.services["asr"].mode == "native"
    assert the_plan.services["asr"].environment["CUDA_VISIBLE_DEVICES"] == "GPU-2b4d6f8a-0c1e-4d3f-9a5b-7c9e1f3a5b07"


def test_moshi_uses_kyutais_published_figure_not_weights_times_1_2(tmp_path):
    repo = "kyutai/moshiko-pytorch-bf16"
    assert FIGURES[repo][0] == 24 * GB
    est = need([repo], {repo: 15 * GIB})  # weights x 1.2 would say 18 GiB
    assert est.bytes == 24 * GB and "Kyutai" in est.how
    text = (ROOT / "stack.toml").read_text()
    stack = load_stack(write_stack(tmp_path, text))
    facts = nvml_fixture("two_gpus_busy")
    the_plan = plan(stack, machine_for(facts, tmp_path), services=["moshi"])
    results = by_name(gpu.check_vram(Context(stack, the_plan, {}), facts,
                                     {repo: ModelFacts(repo, True, 15 * GIB, 15 * GIB, "cache")}))
    assert results["gpu.vram.moshi"].status == "warn" and "22.4 GiB" in results["gpu.vram.moshi"].detail


def test_nemo_weights_count(tmp_path):
    snap = tmp_path / "snap"
    snap.mkdir()
    (snap / "model.nemo").write_bytes(b"\0" * 4096)
    (snap / "README.md").write_text("x")
    assert local_sizes(snap) == (4097, 4096)


def test_a_gpu_that_does_not_report_memory_is_skipped_with_the_reason(tmp_path):
    stack, the_plan, facts = planned(tmp_path, "gb10_memory_not_supported", {"org/voice": 16 * GIB, "org/asr": GIB})
    sizes = {r: ModelFacts(r, True, GIB, GIB, "cache") for r in ("org/voice", "org/asr")}
    result = by_name(gpu.check_vram(Context(stack, the_plan, {}), facts, sizes))["gpu.vram.voice"]
    assert result.status == "skip" and "does not report its memory" in result.detail
    driver = gpu.check_driver(Context(stack, the_plan, {}), facts)
    assert driver.status == "warn" and "memory info: Not Supported" in driver.detail
