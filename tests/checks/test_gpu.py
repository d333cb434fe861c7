"""gpu checks on recorded NVML facts (no GPU here), and the real NVML probe's honest answer on this machine."""

from __future__ import annotations

from pathlib import Path

import pynvml

from checks import gpu
from checks.models import ModelFacts
from duplex.gpu import GIB, NvmlFacts, gpu_count, nvidia_pci_devices, probe_nvml_facts

from .conftest import NO_GPU, RecordedNvml, by_name, make, nvml_fixture

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


def test_recorded_h100_replayed_through_the_probe(tmp_path):
    recorded = nvml_fixture("nvml_h100_driver550")
    fake = RecordedNvml(recorded)
    facts = probe_nvml_facts({}, nvml=fake, sysfs=tmp_path)
    assert facts.driver_version == "550.54.15" and facts.cuda_driver == 12040 and facts.cuda_text == "12.4"
    assert [(g.name, g.capability, g.sm) for g in facts.gpus] == [("NVIDIA H100 80GB HBM3", (9, 0), 90)]
    assert facts.gpus[0].memory_free == 84986691584
    assert fake.calls == ["init", "shutdown"]


def test_cuda_visible_devices_filters_gpus():
    fake = RecordedNvml(nvml_fixture("nvml_two_gpus_busy"))
    facts = probe_nvml_facts({"CUDA_VISIBLE_DEVICES": "1"}, nvml=fake)
    assert [g.index for g in facts.gpus] == [1]
    hidden = probe_nvml_facts({"CUDA_VISIBLE_DEVICES": ""}, nvml=fake)
    assert hidden.ok and hidden.gpus == ()


def test_nvml_errors_become_data_with_pynvmls_own_exception_classes(tmp_path):
    for code, words in ((18, "version mismatch"), (12, "Library Not Found"), (9, "Driver Not Loaded")):
        facts = probe_nvml_facts({}, nvml=RecordedNvml(NvmlFacts(), init_error=code), sysfs=tmp_path)
        assert facts.error_code == code and words.lower() in facts.error.lower()


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
    assert tight[0].status == "warn" and "GPU 1" in tight[0].detail  # the GPU with the most free memory
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
