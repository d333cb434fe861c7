"""The NVIDIA libraries CTranslate2 (faster-whisper) loads for CUDA, found before the first request.

CTranslate2's wheels carry no cuBLAS or cuDNN: on a GPU they dlopen libcublas.so.12 and cuDNN 9 at the
first transcription, and without them that request fails (`Library libcublas.so.12 is not found or
cannot be loaded`). So before choosing CUDA, the backend makes sure they load: from the system's
library path, else from NVIDIA's pip wheels in this env (nvidia-cublas-cu12, nvidia-cudnn-cu12: their
`nvidia/<lib>/lib` folders, preloaded by full path so CTranslate2's own dlopen finds them already
loaded). When they cannot be found, `auto` falls back to the CPU with a warning.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

# soname -> (the wheel that ships it, its folder under site-packages/nvidia/)
NEEDED = {
    "libcublasLt.so.12": ("nvidia-cublas-cu12", "cublas"),
    "libcublas.so.12": ("nvidia-cublas-cu12", "cublas"),
    "libcudnn.so.9": ("nvidia-cudnn-cu12", "cudnn"),
}
FIX = ("install them in the env: `pip install nvidia-cublas-cu12 nvidia-cudnn-cu12==9.*` (or the CUDA 12 "
       "cuBLAS and cuDNN 9 system packages), or set ASR_DEVICE=cpu")


def _loads(path: str) -> bool:
    try:
        ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        return True
    except OSError:
        return False


def ensure(search: list[str] | None = None, load=_loads) -> tuple[list[str], list[str]]:
    """(missing sonames, where each found one came from). Tries the system first, then each
    `site-packages/nvidia/<lib>/lib` on `search` (default: sys.path)."""
    missing, found = [], []
    for soname, (_wheel, folder) in NEEDED.items():
        if load(soname):
            found.append(f"{soname} (system)")
            continue
        for base in search if search is not None else sys.path:
            candidate = Path(base) / "nvidia" / folder / "lib" / soname
            if candidate.is_file() and load(str(candidate)):
                found.append(str(candidate))
                if folder == "cudnn":  # cuDNN 9 opens its sub-libraries by name: load them beside it
                    for extra in sorted(candidate.parent.glob("libcudnn_*.so.9")):
                        load(str(extra))
                break
        else:
            missing.append(soname)
    return missing, found


def missing_text(missing: list[str]) -> str:
    wheels = sorted({NEEDED[m][0] for m in missing})
    return f"{', '.join(missing)} not found (CTranslate2's wheels do not carry them; they come in {', '.join(wheels)})"


__all__ = ["FIX", "NEEDED", "ensure", "missing_text"]
if os.environ.get("ASR_CUDALIBS_SELFTEST"):  # pragma: no cover - manual check on a GPU host
    print(ensure())
