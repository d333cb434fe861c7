"""The simulated GPU host: a stand-in libnvidia-ml.so.1 (fakenvml/fakenvml.c) built with gcc, and the
host descriptions it serves (tests/support/gpu_hosts/*.json).

Two ways to use it, both through the real nvidia-ml-py binding (its ctypes calls, struct layouts and
exception classes):
  - another process (`inv config`, `inv preflight`, ...): `host_env(lib, host)` gives LD_LIBRARY_PATH
    and FAKE_NVML_DESCRIPTION, and pynvml's own CDLL("libnvidia-ml.so.1") finds the stand-in;
  - this process: `serving(lib, host)` hands pynvml a copy of the library built under another soname
    (so this process never mistakes it for the driver's own library), for as long as the block runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import subprocess
from pathlib import Path

from tests.support.tools import tool

SOURCE = Path(__file__).parent / "fakenvml" / "fakenvml.c"
HOSTS = Path(__file__).parent / "gpu_hosts"
SONAME = "libnvidia-ml.so.1"
IN_PROCESS = "libfakenvml-inprocess.so"


def build(folder: Path) -> Path:
    """Compile the library into `folder` (as libnvidia-ml.so.1, plus the in-process copy); returns `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for soname in (SONAME, IN_PROCESS):
        subprocess.run([tool("gcc"), "-shared", "-fPIC", "-O1", "-Wall", "-Werror", f"-Wl,-soname,{soname}",
                        "-o", str(folder / soname), str(SOURCE)], check=True, capture_output=True, text=True)
    return folder


def host(name: str) -> dict:
    """A host description from tests/support/gpu_hosts/NAME.json."""
    return json.loads((HOSTS / f"{name}.json").read_text())


def describe(desc: dict) -> str:
    """The JSON host description as the library's line format (see fakenvml.c)."""
    lines = []
    if desc.get("init_error"):
        lines.append(f"init_error\t{desc['init_error']}")
    if desc.get("driver_version"):
        lines.append(f"driver\t{desc['driver_version']}")
    lines.append(f"cuda\t{desc.get('cuda_driver') or 0}")
    for gpu in desc.get("gpus", ()):
        major, minor = gpu["capability"]
        mig = "" if "mig" not in gpu else f"\tmig={1 if gpu['mig'] else 0}"
        lines.append(f"gpu\tname={gpu['name']}\tmajor={major}\tminor={minor}\ttotal={gpu['memory_total']}"
                     f"\tfree={gpu['memory_free']}\tuuid={gpu['uuid']}{mig}")
        for proc in gpu.get("processes", ()):  # compute processes: {"pid": ..., "used": bytes}
            lines.append(f"proc\tpid={proc['pid']}\tused={proc['used']}")
        for inst in gpu.get("instances", ()):
            lines.append(f"mig\tname={inst['name']}\ttotal={inst['memory_total']}\tfree={inst['memory_free']}"
                         f"\tuuid={inst['uuid']}")
    for f in desc.get("fail", ()):
        lines.append(f"fail\tcall={f['call']}\tdevice={f.get('device', -1)}\tcode={f['code']}")
    return "\n".join(lines) + "\n"


def write(desc: dict | str, folder: Path) -> Path:
    """Write a description (a dict, or a host name) for the library to serve; returns its path."""
    desc = host(desc) if isinstance(desc, str) else desc
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"nvml-{abs(hash(json.dumps(desc, sort_keys=True)))}.txt"
    path.write_text(describe(desc))
    return path


def sysfs(desc: dict, folder: Path) -> Path:
    """A /sys stand-in listing the description's NVIDIA cards on the PCI bus (what the probe counts)."""
    root = folder / "sys"
    for n in range(desc.get("nvidia_pci_devices", len(desc.get("gpus", ())))):
        dev = root / "bus" / "pci" / "devices" / f"0000:{n + 0x17:02x}:00.0"
        dev.mkdir(parents=True, exist_ok=True)
        (dev / "vendor").write_text("0x10de\n")
        (dev / "class").write_text("0x030200\n")
    (root / "bus" / "pci" / "devices").mkdir(parents=True, exist_ok=True)
    return root


def host_env(lib: Path, desc: dict | str, folder: Path) -> dict[str, str]:
    """Variables that make another process's pynvml load the stand-in and serve `desc`."""
    desc = host(desc) if isinstance(desc, str) else desc
    env = {"FAKE_NVML_DESCRIPTION": str(write(desc, folder))}
    if not desc.get("absent"):  # "absent": no NVIDIA library at all (LD_LIBRARY_PATH without it)
        env["LD_LIBRARY_PATH"] = str(lib)
    return env


@contextlib.contextmanager
def serving(lib: Path, desc: dict | str, folder: Path):
    """Within the block, this process's pynvml talks to the stand-in serving `desc`."""
    import pynvml
    path = write(desc, folder)
    old_env = os.environ.get("FAKE_NVML_DESCRIPTION")
    os.environ["FAKE_NVML_DESCRIPTION"] = str(path)
    old_lib = pynvml.nvmlLib
    pynvml.nvmlLib = ctypes.CDLL(str(lib / IN_PROCESS))
    pynvml._nvmlGetFunctionPointer_cache.clear()
    try:
        yield path
    finally:
        pynvml.nvmlLib = old_lib
        pynvml._nvmlGetFunctionPointer_cache.clear()
        if old_env is None:
            os.environ.pop("FAKE_NVML_DESCRIPTION", None)
        else:
            os.environ["FAKE_NVML_DESCRIPTION"] = old_env


def probe(lib: Path, desc: dict | str, folder: Path, environ: dict[str, str] | None = None):
    """duplex's real NVML probe against the stand-in serving `desc` (NvmlFacts)."""
    from duplex.gpu import probe_nvml_facts
    from duplex.machine import NvmlFacts
    desc = host(desc) if isinstance(desc, str) else desc
    if desc.get("absent"):
        return NvmlFacts(error_code=12, error="NVML Shared Library Not Found",
                         nvidia_pci_devices=desc.get("nvidia_pci_devices", 0), visible=(environ or {}).get("CUDA_VISIBLE_DEVICES"))
    with serving(lib, desc, folder) as path:
        return probe_nvml_facts(environ or {}, sysfs=sysfs(desc, folder / path.stem))
