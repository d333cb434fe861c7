"""gpu checks on recorded NVML facts (no GPU here), and the real NVML probe's honest answer on this machine."""

from __future__ import annotations

from pathlib import Path

import pynvml

from checks import gpu
from checks.models import ModelFacts
from duplex.gpu import gpu_count, nvidia_pci_devices, probe_nvml_facts
from duplex.machine import GIB
from tests.support import fakenvml

from .conftest import NO_GPU, by_name, make, nvml_fixture

ROOT = Path(__file__).resolve().parents[2]


def _libnvidia_ml_loads() -> bool:
    """Whether the NVIDIA driver's NVML library is on this machine (what pynvml loads on Linux)."""
    import ctypes
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


def test_the_real_probe_tells_the_truth_about_this_machine(tmp_path):
    """No skip: without the driver's library the probe names it; with it, the probe lists GPUs."""
    facts = probe_nvml_facts({})
    assert facts.nvidia_pci_devices == nvidia_pci_devices()  # the real /sys
    if not _libnvidia_ml_loads():
        assert not facts.ok and facts.gpus == () and facts.driver_version is None
        assert facts.error_code == pynvml.NVML_ERROR_LIBRARY_NOT_FOUND
        assert facts.error == "NVML Shared Library Not Found"
        assert gpu_count() == 0
        what, fix = gpu.explain(facts)
        if facts.nvidia_pci_devices:  # a card on the bus, no driver
            assert "not installed" in what and "install the NVIDIA driver" in fix
        else:
            assert "no NVIDIA GPU or driver" in what and "NVIDIA GPU" in fix
    else:  # a GPU host: the driver answers, and its GPUs come back with real figures
        assert facts.ok and facts.error_code is None, facts.error
        assert facts.driver_version and (facts.cuda_driver or 0) >= 10000
        assert facts.gpus and gpu_count() == len(facts.gpus)
        assert all(g.name and g.sm >= 30 and 0 < g.memory_free <= g.memory_total for g in facts.gpus)
        ctx = make(tmp_path, native=True, api_gpu="required")[2]
        assert gpu.check_driver(ctx, facts).status in ("pass", "warn")  # never "no driver"


def test_h100_served_by_the_stand_in_library_through_the_real_binding(fake_nvml, tmp_path):
    facts = fakenvml.probe(fake_nvml, "h100_driver550", tmp_path)
    assert facts.driver_version == "550.54.15" and facts.cuda_driver == 12040 and facts.cuda_text == "12.4"
    assert [(g.name, g.capability, g.sm) for g in facts.gpus] == [("NVIDIA H100 80GB HBM3", (9, 0), 90)]
    assert facts.gpus[0].memory_free == 84986691584 and facts.gpus[0].uuid.startswith("GPU-5e3c7a58")
    assert facts.nvidia_pci_devices == 1 and facts.notes == ()


def test_cuda_visible_devices_means_what_cuda_makes_of_it(fake_nvml, tmp_path):
    """Indices, GPU-/MIG- UUIDs (unique prefixes), -1 and an unknown entry end the list (CUDA's rule)."""
    def seen(value, host="two_gpus_busy", **more):
        env = {"CUDA_VISIBLE_DEVICES": value, **more} if value is not None else more
        return [g.label for g in fakenvml.probe(fake_nvml, host, tmp_path, env).gpus]
    assert seen(None) == ["GPU 0", "GPU 1"]
    assert seen("1") == ["GPU 1"] and seen("1,0") == ["GPU 1", "GPU 0"]
    assert seen("") == [] and seen("-1") == [] and seen("0,-1,1") == ["GPU 0"] and seen("5,0") == []
    assert seen("GPU-4d6f8b0c-2e3a-4f5b-9c7d-0e1f3a5b7c09") == ["GPU 1"]
    assert seen("GPU-4d6f") == ["GPU 1"] and seen("GPU-") == []  # a prefix must be unique
    assert seen("GPU-0000dead") == []
    assert seen("MIG-5b7d", "a100_mig") == ["GPU 0 MIG 1"]
    assert seen("2,0", "a100_mig") == ["GPU 0 MIG 2", "GPU 0 MIG 0"]
    hidden = fakenvml.probe(fake_nvml, "two_gpus_busy", tmp_path, {"CUDA_VISIBLE_DEVICES": "-1"})
    assert hidden.ok and hidden.gpus == () and hidden.hidden == 2


def test_cuda_device_order_is_honoured(fake_nvml, tmp_path):
    mixed = {"driver_version": "550.54.15", "cuda_driver": 12040, "gpus": [
        {"name": "Tesla T4", "capability": [7, 5], "memory_total": 15 * GIB, "memory_free": 15 * GIB, "uuid": "GPU-aaaa"},
        {"name": "NVIDIA H100", "capability": [9, 0], "memory_total": 80 * GIB, "memory_free": 80 * GIB, "uuid": "GPU-bbbb"}]}
    fastest = fakenvml.probe(fake_nvml, mixed, tmp_path, {"CUDA_VISIBLE_DEVICES": "0"})
    assert [g.name for g in fastest.gpus] == ["NVIDIA H100"]  # CUDA's default order: fastest first
    pci = fakenvml.probe(fake_nvml, mixed, tmp_path, {"CUDA_VISIBLE_DEVICES": "0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"})
    assert [g.name for g in pci.gpus] == ["Tesla T4"]  # NVML's order is PCI bus order


def test_one_failing_device_call_does_not_abort_the_probe(fake_nvml, tmp_path):
    facts = fakenvml.probe(fake_nvml, "gb10_memory_not_supported", tmp_path)
    assert facts.ok and len(facts.gpus) == 1
    gb10 = facts.gpus[0]
    assert gb10.name == "NVIDIA GB10" and gb10.sm == 121 and gb10.memory_free is None
    assert gb10.problem == "memory info: Not Supported" and "Not Supported" in facts.notes[0]
    two = {**fakenvml.host("two_gpus_busy"), "fail": [{"call": "nvmlDeviceGetName", "device": 0, "code": 15}]}
    facts = fakenvml.probe(fake_nvml, two, tmp_path)
    assert [g.name for g in facts.gpus] == ["GPU 0", "NVIDIA GeForce RTX 4090"]
    assert facts.gpus[0].problem == "name: GPU is lost" and facts.gpus[1].problem is None
    lost = {**fakenvml.host("two_gpus_busy"), "fail": [{"call": "nvmlDeviceGetHandleByIndex_v2", "device": 0, "code": 15}]}
    facts = fakenvml.probe(fake_nvml, lost, tmp_path)
    assert [g.label for g in facts.gpus] == ["GPU 1"] and "GPU 0: left out" in facts.notes[0]
    old = {**fakenvml.host("h100_driver550"), "fail": [{"call": "nvmlDeviceGetMigMode", "code": 13}]}
    assert len(fakenvml.probe(fake_nvml, old, tmp_path).gpus) == 1  # FunctionNotFound: no MIG, not a failure


def test_mig_instances_are_the_devices(fake_nvml, tmp_path):
    facts = fakenvml.probe(fake_nvml, "a100_mig", tmp_path)
    assert [(g.device_id, g.name.split()[-1], g.uuid[:8]) for g in facts.gpus] == [
        ("0:0", "3g.40gb", "MIG-4a6c"), ("0:1", "2g.20gb", "MIG-5b7d"), ("0:2", "1g.10gb", "MIG-6c8e")]
    assert facts.gpus[0].memory_total == 40192 * 1024 ** 2 and facts.gpus[0].sm == 80
    empty = fakenvml.host("a100_mig")
    empty = {**empty, "gpus": [{**empty["gpus"][0], "instances": []}]}
    facts = fakenvml.probe(fake_nvml, empty, tmp_path)
    assert facts.gpus == () and "MIG mode with no MIG instances" in facts.notes[0]


def test_nvml_init_errors_become_data_with_pynvmls_own_exception_classes(fake_nvml, tmp_path):
    for host, code, words in (("version_mismatch", 18, "version mismatch"), ("driver_not_loaded", 9, "Driver Not Loaded")):
        facts = fakenvml.probe(fake_nvml, host, tmp_path)
        assert facts.error_code == code and words.lower() in facts.error.lower()
        assert facts.nvidia_pci_devices == 1


def test_nvidia_card_on_pci_bus_is_seen_from_sysfs(tmp_path):
    dev = tmp_path / "bus/pci/devices/0000:65:00.0"
    dev.mkdir(parents=True)
    (dev / "vendor").write_text("0x10de\n")
    (dev / "class").write_text("0x030200\n")
    audio = tmp_path / "bus/pci/devices/0000:65:00.1"  # the card's HDMI audio function does not count
    audio.mkdir(parents=True)
    (audio / "vendor").write_text("0x10de\n")
    (audio / "class").write_text("0x040300\n")
    assert nvidia_pci_devices(tmp_path) == 1


def test_h100_passes_and_lists_the_gpu(tmp_path):
    _, _, ctx = make(tmp_path, native=True, api_gpu="required", gpus=1)
    results = by_name([gpu.check_driver(ctx, nvml_fixture("nvml_h100_driver550")),
                       *gpu.check_services(ctx, nvml_fixture("nvml_h100_driver550"))])
    driver = results["gpu.driver"]
    assert driver.status == "pass"
    assert "driver 550.54.15 (CUDA 12.4)" in driver.detail and "H100" in driver.detail and "sm_90" in driver.detail
    assert "79.2 of 79.6 GiB free" in driver.detail
    assert results["gpu.api"].status == "pass"


def test_old_driver_470_warns_with_the_driver_to_install(tmp_path):
    _, _, ctx = make(tmp_path, native=True, api_gpu="optional", gpus=1)
    result = gpu.check_driver(ctx, nvml_fixture("nvml_t4_driver470"))
    assert result.status == "warn"
    assert "470.82.01 (CUDA 11.4)" in result.detail and "525.60.13" in result.detail
    assert "update the NVIDIA driver" in result.fix


def test_version_mismatch_says_reboot(tmp_path):
    _, _, ctx = make(tmp_path, native=True, services=["api"], api_gpu="required")
    facts = nvml_fixture("nvml_version_mismatch")
    results = by_name([gpu.check_driver(ctx, facts), *gpu.check_services(ctx, facts)])
    assert results["gpu.driver"].status == "fail"
    assert "version mismatch" in results["gpu.driver"].detail and "reboot" in results["gpu.driver"].fix
    assert results["gpu.api"].status == "fail" and "reboot" in results["gpu.api"].fix


def test_library_not_found_with_a_card_present_says_install_the_driver(tmp_path):
    _, _, ctx = make(tmp_path, native=True, api_gpu="optional")
    facts = nvml_fixture("nvml_library_not_found")
    result = gpu.check_driver(ctx, facts)
    assert result.status == "warn" and "not installed" in result.detail
    assert "ubuntu-drivers" in result.fix and "--gpus all" in result.fix
    loaded = gpu.check_driver(ctx, nvml_fixture("nvml_driver_not_loaded"))
    assert loaded.status == "warn" and "modprobe nvidia" in loaded.fix and "Secure Boot" in loaded.fix


def test_gpu_policies_without_a_gpu(tmp_path):
    _, _, ctx = make(tmp_path, services=["api", "voice"], api_gpu="optional", voice_gpu="required")
    results = by_name([gpu.check_driver(ctx, NO_GPU), *gpu.check_services(ctx, NO_GPU)])
    assert results["gpu.driver"].status == "fail"  # a required service needs it
    assert results["gpu.voice"].status == "fail" and "gpu = \"required\"" in results["gpu.voice"].detail
    assert "leave it out" in results["gpu.voice"].fix
    assert results["gpu.api"].status == "warn" and "on the CPU" in results["gpu.api"].detail


def test_gpu_required_service_left_out_by_default_warns(tmp_path):
    _, plan, ctx = make(tmp_path, voice_gpu="required")
    assert "voice" in plan.left_out
    results = by_name(gpu.check_services(ctx, NO_GPU))
    assert results["gpu.voice"].status == "warn" and "--services voice" in results["gpu.voice"].fix
    assert gpu.check_driver(ctx, NO_GPU).status == "skip"  # nothing in this run uses a GPU


def test_vram_fit_from_model_sizes(tmp_path):
    _, _, ctx = make(tmp_path, services=["voice"], voice_gpu="required", voice_models='["org/big"]')
    h100 = nvml_fixture("nvml_h100_driver550")
    busy = nvml_fixture("nvml_two_gpus_busy")
    fits = gpu.check_vram(ctx, h100, {"org/big": ModelFacts("org/big", True, 17 * GIB, 16 * GIB, "cache")})
    assert fits[0].status == "pass" and "19.2 GiB" in fits[0].detail and "H100" in fits[0].detail
    tight = gpu.check_vram(ctx, busy, {"org/big": ModelFacts("org/big", True, 17 * GIB, 16 * GIB, "cache")})
    # Not placed (a Machine without NVML's device list): the container gets every GPU and uses the
    # first, so GPU 0 is what must hold it, not the GPU with the most free memory.
    assert tight[0].status == "warn" and "2.0 GiB free on GPU 0" in tight[0].detail
    assert "GPU with 19.2 GiB free" in tight[0].fix and "smaller or quantised model" in tight[0].fix
    assert "offload" not in tight[0].fix.lower()  # `python -m voice` has no such option
    unknown = gpu.check_vram(ctx, h100, {"org/big": ModelFacts("org/big", False)})
    assert unknown[0].status == "warn" and "size unknown" in unknown[0].detail
    assert gpu.check_vram(ctx, NO_GPU, {})[0].status == "skip"


def _server_flags(path: Path) -> set[str]:
    """The options a server's argparse really defines (read from its source, not imported: no torch)."""
    import ast
    flags = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            flags |= {a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("--")}
    return flags


def test_vram_fix_for_moshi_names_only_options_the_vendored_server_has(tmp_path):
    """The shipped stack's moshi service on a busy GPU: the advice must work when followed."""
    text = (ROOT / "stack.toml").read_text()
    _, _, ctx = make(tmp_path, text=text, services=["moshi"], gpus=2)
    busy = nvml_fixture("nvml_two_gpus_busy")
    facts = {"kyutai/moshiko-pytorch-bf16": ModelFacts("kyutai/moshiko-pytorch-bf16", True, 16 * GIB, 16 * GIB, "cache")}
    fix = gpu.check_vram(ctx, busy, facts)[0].fix
    flags = _server_flags(ROOT / "third_party" / "moshi" / "moshi" / "server.py")
    assert "--hf-repo" in flags and "--cpu-offload" not in flags  # what the vendored Kyutai server takes
    assert "`--hf-repo kyutai/moshiko-pytorch-q8`" in fix and "[services.moshi]" in fix
    assert "has no CPU offload" in fix and "--cpu-offload is a flag of NVIDIA PersonaPlex's server only" in fix
    assert "CPU_OFFLOAD" not in fix  # nothing reads such a variable


def test_vram_fix_for_personaplex_offers_its_cpu_offload(tmp_path):
    _, _, ctx = make(tmp_path, services=["voice"], voice_gpu="required", voice_models='["nvidia/personaplex-7b-v1"]')
    busy = nvml_fixture("nvml_two_gpus_busy")
    facts = {"nvidia/personaplex-7b-v1": ModelFacts("nvidia/personaplex-7b-v1", True, 16 * GIB, 16 * GIB, "cache")}
    result = gpu.check_vram(ctx, busy, facts)[0]
    assert result.status == "warn" and "PersonaPlex's server" in result.fix and '"--cpu-offload"' in result.fix
