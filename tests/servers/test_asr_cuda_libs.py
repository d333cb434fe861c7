"""faster-whisper on a GPU needs cuBLAS and cuDNN that CTranslate2's wheels do not carry: `auto` uses
CUDA only when they load (from the system or NVIDIA's pip wheels, preloaded), else the CPU with a
warning; ASR_DEVICE=cuda without them is an error at load, not at the first request. The libraries
here are real shared objects built with gcc under the wheels' layout; the CUDA device count is the
one stand-in (no GPU on this machine)."""

from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

from servers.asr import cudalibs, loaders
from servers.asr.settings import Settings
from tests.support.tools import tool


def _fake_wheels(site: Path) -> Path:
    """site-packages/nvidia/{cublas,cudnn}/lib with libraries of the sonames CTranslate2 opens."""
    src = site / "empty.c"
    site.mkdir(parents=True, exist_ok=True)
    src.write_text("int duplex_fake_cuda_lib(void) { return 0; }\n")
    for soname, (_wheel, folder) in cudalibs.NEEDED.items():
        lib = site / "nvidia" / folder / "lib"
        lib.mkdir(parents=True, exist_ok=True)
        name = soname.replace(".so", "-duplextest.so")  # never the real soname in this process
        subprocess.run([tool("gcc"), "-shared", "-fPIC", f"-Wl,-soname,{name}", "-o", str(lib / soname), str(src)],
                       check=True)
    return site


def test_auto_falls_back_to_the_cpu_with_a_warning_when_the_libraries_are_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(loaders, "cuda_warning", None)
    device = loaders.whisper_device(Settings(device="auto"), cuda_devices=lambda: 1,
                                    libs=lambda: cudalibs.ensure([str(tmp_path)], load=lambda p: False))
    assert device == "cpu"
    assert "libcublas.so.12" in loaders.cuda_warning and "nvidia-cublas-cu12" in loaders.cuda_warning
    assert "transcribing on the CPU" in loaders.cuda_warning


def test_the_wheels_libraries_are_found_and_preloaded(tmp_path, monkeypatch):
    site = _fake_wheels(tmp_path / "site-packages")
    loaded = []

    def load(path: str) -> bool:
        if "/" not in path:
            return False  # not on the system library path
        ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)  # really loads the file
        loaded.append(Path(path).name)
        return True
    missing, found = cudalibs.ensure([str(site)], load=load)
    assert missing == [] and loaded == ["libcublasLt.so.12", "libcublas.so.12", "libcudnn.so.9"]
    assert all("site-packages/nvidia/" in f for f in found)
    monkeypatch.setattr(loaders, "cuda_warning", None)
    device = loaders.whisper_device(Settings(device="auto"), cuda_devices=lambda: 1,
                                    libs=lambda: cudalibs.ensure([str(site)], load=load))
    assert device == "cuda" and loaders.cuda_warning is None
    assert loaders.whisper_device(Settings(device="auto"), cuda_devices=lambda: 0) == "cpu"  # no GPU: no question


def test_this_machine_has_no_cuda_libraries_and_says_which():
    missing, _ = cudalibs.ensure([])
    if missing:  # a host without CUDA 12 cuBLAS/cuDNN installed system-wide
        assert "libcublas.so.12" in cudalibs.missing_text(missing)
