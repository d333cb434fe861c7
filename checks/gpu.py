"""gpu: the NVIDIA driver and GPUs as NVML reports them, each service's GPU policy, and whether its model fits."""

from __future__ import annotations

from duplex.machine import GIB, GpuInfo, NvmlFacts
from duplex.vram import need

from . import Context, Result, fail, passed, skip, warn
from .models import ModelFacts, size_text

CUDA12_DRIVER = "525.60.13"  # the oldest Linux driver PyTorch's CUDA 12 wheels run on

NVML_FIXES = {
    9: ("the NVIDIA kernel module is not loaded (NVML: Driver Not Loaded)",
        "load it with `sudo modprobe nvidia` (see `dmesg | grep -i nvidia`; with Secure Boot on, enroll the "
        "module's key or sign it), or reboot after installing the driver"),
    18: ("driver/library version mismatch: the NVIDIA driver was upgraded but the old kernel module is still loaded",
         "reboot (or reload the module: `sudo rmmod nvidia_uvm nvidia_drm nvidia_modeset nvidia && "
         "sudo modprobe nvidia`); `nvidia-smi` works again once they match"),
    4: ("no permission to open the GPU devices (/dev/nvidia*)",
        "add your user to the video group (`sudo usermod -aG video $USER`) and log in again"),
    15: ("the GPU has fallen off the bus (NVML: GPU is lost)", "reboot; look for Xid errors in `dmesg`"),
    16: ("the GPU needs a reset", "reboot, or `sudo nvidia-smi --gpu-reset` when nothing uses it"),
}


def explain(facts: NvmlFacts) -> tuple[str, str]:
    """(what went wrong, what to do) for an NVML failure."""
    code, text = facts.error_code, facts.error or ""
    if code is None and "nvidia-ml-py" in text:
        return text, "install it: `pip install nvidia-ml-py` (a duplex dependency: `pip install -e .`)"
    if code == 18 or "version mismatch" in text.lower():
        return NVML_FIXES[18]
    if code == 12 or "library not found" in text.lower():
        if facts.nvidia_pci_devices:
            return (f"{facts.nvidia_pci_devices} NVIDIA GPU(s) on the PCI bus, but NVML (libnvidia-ml.so.1) is "
                    f"not found: the NVIDIA driver is not installed, or not passed into this container",
                    "install the NVIDIA driver (Ubuntu: `sudo ubuntu-drivers install`; others: your distribution's "
                    "nvidia-driver package), then reboot; inside a container, run it with `--gpus all` and the "
                    "NVIDIA Container Toolkit")
        return ("no NVIDIA GPU or driver on this machine (NVML Shared Library Not Found)",
                "run GPU services on a machine with an NVIDIA GPU and driver")
    if code in NVML_FIXES:
        return NVML_FIXES[code]
    return f"NVML failed: {text}", "run `nvidia-smi` to see the driver's own message; reinstall the driver if it fails too"


def _gpus_text(facts: NvmlFacts) -> str:
    def memory(g: GpuInfo) -> str:
        if g.memory_free is None or g.memory_total is None:
            return "memory not reported"
        return f"{g.memory_free / GIB:.1f} of {g.memory_total / GIB:.1f} GiB free"
    return "; ".join(f"{g.label}: {g.name}, sm_{g.sm}, {memory(g)}" for g in facts.gpus)


def _need(ctx: Context) -> str:
    policies = {s.gpu_policy for s in ctx.services()}
    return "required" if "required" in policies else "optional" if "optional" in policies else "none"


def check_driver(ctx: Context, facts: NvmlFacts) -> Result:
    need = _need(ctx)
    if not facts.ok:
        what, fix = explain(facts)
        if need == "required":
            return fail("gpu.driver", what, fix)
        if facts.nvidia_pci_devices or facts.error_code not in (None, 12):
            return warn("gpu.driver", what, fix)  # a GPU is there but unusable: worth knowing either way
        why = "no service in this run uses a GPU" if need == "none" else "GPU-optional services run on the CPU"
        return skip("gpu.driver", f"{what}; {why}", fix)
    head = f"driver {facts.driver_version} (CUDA {facts.cuda_text})"
    if not facts.gpus:
        hidden = f"CUDA_VISIBLE_DEVICES={facts.visible!r} hides every GPU" if facts.visible is not None else \
            "NVML lists no GPU CUDA can use" + (f" ({'; '.join(facts.notes)})" if facts.notes else "")
        result = fail if need == "required" else warn if need == "optional" else skip
        return result("gpu.driver", f"{head}; {hidden}",
                      "unset or correct CUDA_VISIBLE_DEVICES" if facts.visible is not None else "run `nvidia-smi`")
    if need != "none" and (facts.cuda_driver or 0) < 12000:
        return warn("gpu.driver", f"{head} is too old for PyTorch's CUDA 12 builds (they need driver >= "
                                  f"{CUDA12_DRIVER}); {_gpus_text(facts)}",
                    "update the NVIDIA driver (550 or newer is a safe choice), then reboot; until then only "
                    "cu118 torch builds run (set torch = \"cu118\" with a torch release that ships it)")
    if facts.notes and need != "none":
        return warn("gpu.driver", f"{head}; {_gpus_text(facts)}; but: {'; '.join(facts.notes)}",
                    "run `nvidia-smi -q` for the GPU named; a call NVML does not support leaves only that figure unknown")
    return passed("gpu.driver", f"{head}; {_gpus_text(facts)}")


def check_services(ctx: Context, facts: NvmlFacts) -> list[Result]:
    out = []
    why, driver_fix = explain(facts) if not facts.ok else ("NVML lists no visible GPU", "check CUDA_VISIBLE_DEVICES")
    for svc in ctx.services():
        name = f"gpu.{svc.name}"
        if svc.gpu_policy == "none":
            continue
        if facts.gpus:
            out.append(passed(name, f"gpu = \"{svc.gpu_policy}\": {len(facts.gpus)} GPU(s) available"))
        elif svc.gpu_policy == "required":
            fix = driver_fix if facts.nvidia_pci_devices or facts.ok else \
                f"run {svc.name} on a machine with an NVIDIA GPU, or leave it out (`--services` without it)"
            out.append(fail(name, f"{svc.name} needs a GPU (gpu = \"required\") and none is usable: {why}", fix))
        else:
            out.append(warn(name, f"{svc.name} will run on the CPU (gpu = \"optional\"): {why}",
                            f"nothing to do for a CPU run; for the GPU: {driver_fix}"))
    for name, reason in ctx.plan.left_out.items():
        if "GPU" in reason:
            out.append(warn(f"gpu.{name}", f"{name} is left out of this run: it {reason}",
                            f"run it on a GPU machine; naming it (`--services {name}`) makes preflight fail instead"))
    return out


def placed_device(svc, facts: NvmlFacts) -> GpuInfo | None:
    """The device a service runs on: its placement (a container's device id, a native process's
    CUDA_VISIBLE_DEVICES), else the first device CUDA lists, the one a server that takes every GPU
    (moshi) uses."""
    if not facts.gpus:
        return None
    if svc.gpu_devices:
        found = [g for g in facts.gpus if g.device_id == svc.gpu_devices[0]]
    else:
        uuid = svc.environment.get("CUDA_VISIBLE_DEVICES", "") if svc.mode == "native" else ""
        found = [g for g in facts.gpus if uuid and g.uuid and g.uuid.startswith(uuid.split(",")[0])]
    return found[0] if found else facts.gpus[0]


def check_vram(ctx: Context, facts: NvmlFacts, models: dict[str, ModelFacts]) -> list[Result]:
    """Each GPU service's models against the free memory of the device it is placed on, summed with
    every other service of the run placed there (published figures where upstream states them,
    else weights x 1.2)."""
    rows = []
    for svc in ctx.services():
        if svc.gpu_policy == "none" or not svc.models:
            continue
        weights = {r: (models[r].weights_bytes if r in models else None) for r in svc.models}
        rows.append((svc, need(svc.models, weights), placed_device(svc, facts)))
    on: dict[GpuInfo, list] = {}
    for svc, est, device in rows:
        if device is not None and est.bytes is not None:
            on.setdefault(device, []).append((svc.name, est.bytes))
    out = []
    for svc, est, device in rows:
        name = f"gpu.vram.{svc.name}"
        if device is None:
            out.append(skip(name, "no GPU to fit the model into", "see gpu.driver"))
            continue
        if est.bytes is None:
            out.append(warn(name, f"cannot estimate the GPU memory {svc.name} needs: model size unknown ({est.how})",
                            "rerun where the hub is reachable or after `inv prefetch` (sizes are remembered)"))
            continue
        text = f"needs ~{size_text(est.bytes)} ({est.how})"
        where = f"{device.label} ({device.name})"
        if device.memory_free is None:
            out.append(skip(name, f"{text}; {where} does not report its memory ({device.problem or 'NVML'}): "
                                  "unified memory is shared with the system", "watch `free -h` and `nvidia-smi` while it loads"))
            continue
        sharing = on.get(device, [])
        total = sum(b for _, b in sharing)
        others = [f"{n} ~{size_text(b)}" for n, b in sharing if n != svc.name]
        together = f"; with {', '.join(others)} on the same device: {size_text(total)}" if others else ""
        free = f"{size_text(device.memory_free)} free on {where}"
        if total <= device.memory_free:
            out.append(passed(name, f"{text}{together}; {free}"))
        else:
            out.append(warn(name, f"{text}{together}, more than the {free}", vram_fix(svc, total)))
    return out


def vram_fix(svc, need: int) -> str:
    """What really lowers a service's GPU memory: only options its server has (checked in its argparse)."""
    fix = f"free GPU memory (`nvidia-smi` lists what holds it), or run on a GPU with {size_text(need)} free"
    if any("personaplex" in m.lower() for m in svc.models):  # NVIDIA's moshi fork: it has the flag
        return (fix + "; or let PersonaPlex's server keep part of the model in CPU memory: add "
                "\"--cpu-offload\" to its command (slower, but it fits)")
    if "moshi.server" in svc.command:  # the vendored Kyutai server: --hf-repo, no offload flag
        return (fix + f"; or load Kyutai's 8-bit checkpoint (about half the memory, needs bitsandbytes, "
                f"which the moshi env has): `--hf-repo kyutai/moshiko-pytorch-q8` in [services.{svc.name}] "
                "command and that repo in its models. The vendored Kyutai server has no CPU offload "
                "(--cpu-offload is a flag of NVIDIA PersonaPlex's server only)")
    return fix + f"; or a smaller or quantised model in services.{svc.name}.models (and the server's command)"
