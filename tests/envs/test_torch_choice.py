"""The PyTorch variant choice as data: driver CUDA version and GPU architectures in, variant out."""

from __future__ import annotations

import pytest

from duplex.envs.torch import choose, offered
from duplex.gpu import GpuInfo, NvmlFacts, probe_nvml_facts
from duplex.errors import EnvError

A100, RTX3090, L4 = GpuInfo(0, "A100", (8, 0)), GpuInfo(0, "RTX 3090", (8, 6)), GpuInfo(0, "L4", (8, 9))
H100, B200, RTX5090 = GpuInfo(0, "H100", (9, 0)), GpuInfo(0, "B200", (10, 0)), GpuInfo(0, "RTX 5090", (12, 0))
GTX1080, K80 = GpuInfo(0, "GTX 1080", (6, 1)), GpuInfo(0, "K80", (3, 7))


def probe(cuda: int, *gpus: GpuInfo) -> NvmlFacts:
    return NvmlFacts(cuda_driver=cuda, driver_version="x", gpus=gpus or (RTX3090,))


@pytest.mark.parametrize("torch_version,cuda,want", [
    # (torch release, driver's CUDA version from NVML, variant)
    ("2.5.1", 11040, "cu118"), ("2.5.1", 12000, "cu124"), ("2.5.1", 12080, "cu124"),
    ("2.6.0", 11080, "cu118"), ("2.6.0", 12020, "cu126"),
    ("2.7.1", 11080, "cu118"), ("2.7.1", 12020, "cu128"), ("2.7.1", 13000, "cu128"),
    ("2.8.0", 12040, "cu129"), ("2.9.0", 12080, "cu128"), ("2.9.0", 13000, "cu130"),
    ("2.13.0", 12090, "cu128"), ("2.13.0", 13010, "cu130"), (None, 12040, "cu128"),
])
def test_newest_variant_the_driver_runs(torch_version, cuda, want):
    assert choose("auto", probe(cuda), torch_version).variant == want


def test_no_driver_or_no_gpu_means_cpu():
    assert choose("auto", None).variant == "cpu"
    assert choose("auto", NvmlFacts()).variant == "cpu"
    assert choose("auto", NvmlFacts(cuda_driver=12040, gpus=())).variant == "cpu"
    assert "no NVIDIA driver" in choose("auto", NvmlFacts()).reason


def test_this_machine_has_no_gpu_so_auto_is_cpu():
    assert choose("auto", probe_nvml_facts()).variant == "cpu"


def test_cuda_11_driver_cannot_run_any_variant_of_a_new_torch():
    with pytest.raises(EnvError) as err:
        choose("auto", probe(11080), "2.9.0")
    assert "cu126 needs CUDA 12.x (driver >= 525.60.13)" in str(err.value)
    assert "update the NVIDIA driver" in err.value.fix and "cpu" in err.value.fix


def test_blackwell_needs_cu128_or_newer():
    assert choose("auto", probe(12080, RTX5090), "2.7.1").variant == "cu128"
    assert choose("auto", probe(12080, B200), "2.9.0").variant == "cu128"
    with pytest.raises(EnvError, match=r"no kernels for RTX 5090 \(sm_120\)"):
        choose("auto", probe(12080, RTX5090), "2.6.0")  # 2.6 tops out at cu126


def test_old_cards_keep_an_older_variant_and_mixed_machines_are_refused():
    chosen = choose("auto", probe(13000, GTX1080), "2.9.0")
    assert chosen.variant == "cu126" and "sm_61" in chosen.reason
    with pytest.raises(EnvError) as err:
        choose("auto", probe(13000, GTX1080, RTX5090), "2.9.0")
    assert "GTX 1080 (sm_61)" in str(err.value) and "RTX 5090 (sm_120)" in str(err.value)
    assert "CUDA_VISIBLE_DEVICES" in err.value.fix


def test_same_major_architectures_run_older_kernels():
    assert choose("auto", probe(12040, L4, A100, H100), "2.5.1").variant == "cu124"  # sm_89 runs sm_86 code
    with pytest.raises(EnvError):
        choose("auto", probe(12040, K80), "2.9.0")  # Kepler: only cu118 had it


def test_overrides_and_bad_names():
    assert choose("cpu", probe(12080)).variant == "cpu"
    assert choose("none", None).index_url is None
    forced = choose("cu130", probe(12040), "2.9.0")
    assert forced.variant == "cu130" and "driver >= 580.65.06" in forced.warnings[0]
    assert forced.index_url == "https://download.pytorch.org/whl/cu130"
    with pytest.raises(EnvError, match="not published for cu118"):
        choose("cu118", probe(12040), "2.9.0")
    with pytest.raises(EnvError, match="not a PyTorch variant"):
        choose("cu999", None)
    assert offered("2.6.0") == ("cu118", "cu124", "cu126")
