"""The PyTorch variant choice as data: driver CUDA version and GPU architectures in, variant out."""

from __future__ import annotations

import pytest

from duplex.envs.torch_builds import TorchWanted, choose, offered
from duplex.errors import EnvError
from duplex.gpu import probe_nvml_facts
from duplex.machine import GpuInfo, NvmlFacts

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
    # the releases after 2.9, as published (the table once assumed they published what 2.9 did)
    ("2.11.0", 12040, "cu128"), ("2.12.0", 12040, "cu126"), ("2.12.0", 13020, "cu132"),
    ("2.13.0", 12090, "cu126"), ("2.13.0", 13010, "cu130"), ("2.14.0", 12080, "cu126"),
    ("2.15.0", 13000, "cu132"), (None, 12040, "cu126"),
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
    assert "update the NVIDIA driver to >= 525.60.13 (torch 2.9 cu126)" in err.value.fix
    assert "allow torch 2.7 (cu118" in err.value.fix and "torch = \"cpu\"" in err.value.fix


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


H100_550 = NvmlFacts(driver_version="550.54.15", cuda_driver=12040, gpus=(H100,))


def test_the_table_is_one_data_file_with_its_sources():
    from duplex.envs.torch_builds import TABLE, table
    text = TABLE.read_text()
    assert "Sources:" in text and "download.pytorch.org" in text
    t = table()
    assert t.releases[(2, 12)] == ("cu126", "cu130", "cu132") and t.releases[(2, 13)] == ("cu126", "cu130")
    assert t.releases[(2, 15)] == ("cu130", "cu132") and t.pypi[(2, 14)] == "cu132"
    assert all(v in t.variants for names in t.releases.values() for v in names)


def test_h100_on_driver_550_gets_cu126_from_the_range_never_cu128():
    chosen = choose("auto", H100_550, wanted=TorchWanted(allowed=">=2.2.0,<2.14", env="moshi"))
    assert (chosen.variant, chosen.release, chosen.constraint) == ("cu126", "2.13", "torch==2.13.*")
    assert "narrowed" not in chosen.reason  # 2.13 is the newest release the range allows
    assert choose("auto", H100_550, wanted=TorchWanted(allowed="<2.15")).variant == "cu126"  # 2.14: cu126 legacy
    with pytest.raises(EnvError) as err:
        choose("auto", H100_550, wanted=TorchWanted(allowed=">=2.15", env="moshi"))
    assert "driver to >= 580.65.06 (torch 2.15" in err.value.fix and "allow torch 2.14 (cu126" in err.value.fix


def test_the_range_is_narrowed_when_it_must_be_and_the_reason_says_so():
    blackwell = NvmlFacts(driver_version="575.57.08", cuda_driver=12090, gpus=(RTX5090,))
    chosen = choose("auto", blackwell, wanted=TorchWanted(allowed=">=2.2.0,<2.14"))
    assert (chosen.variant, chosen.release, chosen.constraint) == ("cu128", "2.11", "torch==2.11.*")
    assert "narrowed to 2.11.*" in chosen.reason and "cu126 wheels carry no kernels" in chosen.reason
    t4 = NvmlFacts(driver_version="470.82.01", cuda_driver=11040, gpus=(GpuInfo(0, "Tesla T4", (7, 5)),))
    assert choose("auto", t4, wanted=TorchWanted(allowed=">=2.2.0,<2.14")).release == "2.7"  # cu118
    open_top = choose("auto", H100_550, wanted=TorchWanted(allowed=">=2.2"))
    assert open_top.release == "2.14" and "narrowed to 2.14.*" in open_top.reason  # 2.15: CUDA 13 only
    pinned_open = choose("auto", NvmlFacts(driver_version="580.65.06", cuda_driver=13000, gpus=(H100,)),
                         wanted=TorchWanted(allowed=">=2.2"))
    assert pinned_open.release == "2.15" and "not in duplex's table" in pinned_open.reason


def test_the_locks_pin_decides_and_an_unknown_release_is_refused_naming_the_lock_command():
    chosen = choose("auto", H100_550, wanted=TorchWanted(allowed="<2.14", locked={"cu126": "2.12.1"}))
    assert chosen.variant == "cu126" and chosen.release == "2.12" and "lock pins torch 2.12.1" in chosen.reason
    with pytest.raises(EnvError) as err:
        choose("auto", H100_550, wanted=TorchWanted(locked={"cu126": "2.16.0"}, env="moshi"))
    assert "torch 2.16.0" in str(err.value) and "does not know" in str(err.value)
    assert "inv lock --env moshi --torch cu126" in err.value.fix
    with pytest.raises(EnvError, match="torch 2.16.0"):
        choose("auto", H100_550, "2.16.0")
    trusted = choose("cu130", H100_550, wanted=TorchWanted(pin="2.16.0"))  # the user's word: kept, flagged
    assert trusted.variant == "cu130" and "your word" in trusted.warnings[0]
    forced = choose("cu128", H100_550, wanted=TorchWanted(allowed=">=2.2,<2.14"))
    assert forced.release == "2.11" and forced.constraint == "torch==2.11.*"


def test_publish_default_is_the_widest_published_build():
    from duplex.envs.torch_builds import widest
    assert widest("2.13")[0] == "cu126"  # cu130 needs driver 580: most datacenter drivers are older
    assert "not on sm_100" in widest("2.13")[1]
    assert widest("2.11")[0] == "cu128"  # CUDA 12 drivers and Blackwell both
    assert widest("2.15")[0] == "cu130"
