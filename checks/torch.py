"""torch: it imports in each native env that has it, and its CUDA build fits the driver and the GPUs.

Importing torch takes a second or more, so the answer is remembered per env build (its stamp) and driver
in .duplex/cache/torch.json: a rebuilt env or a new driver asks again.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from duplex.machine import NvmlFacts

from . import Context, Result, fail, passed, skip, warn

SCRIPT = r"""
import json
out = {}
try:
    import torch
    out["version"] = torch.__version__
    out["cuda"] = torch.version.cuda
    try:
        out["arch"] = list(torch._C._cuda_getArchFlags().split()) if torch.version.cuda else []
    except Exception:
        out["arch"] = []
    out["available"] = bool(torch.cuda.is_available())
except BaseException as exc:
    out["error"] = "%s: %s" % (type(exc).__name__, exc)
print(json.dumps(out))
"""


@dataclass(frozen=True)
class TorchFacts:
    version: str | None = None
    cuda: str | None = None  # "12.4"; None for a CPU build
    arch: tuple[str, ...] = field(default=())  # "sm_90", "compute_90" ...
    available: bool = False  # torch.cuda.is_available()
    error: str | None = None  # why it did not import

    @property
    def cuda_major(self) -> int | None:
        return int(self.cuda.split(".")[0]) if self.cuda else None


def _key(venv: Path, driver: str | None) -> str:
    stamp = venv / ".duplex-stamp.json"
    try:
        data = stamp.read_bytes() + str(stamp.stat().st_mtime_ns).encode()
    except OSError:
        data = b"no stamp"
    return hashlib.sha256(str(venv.resolve()).encode() + data + str(driver).encode()).hexdigest()


def probe_torch(python: Path, *, driver: str | None = None, memo: Path | None = None,
                timeout: float = 60) -> TorchFacts:
    """Import torch in the env's interpreter (a subprocess), or reuse the remembered answer."""
    venv = python.parent.parent
    key = _key(venv, driver)
    remembered = _read(memo)
    if key in remembered:
        return TorchFacts(**{**remembered[key], "arch": tuple(remembered[key].get("arch", ()))})
    try:
        proc = subprocess.run([str(python), "-c", SCRIPT], capture_output=True, text=True, timeout=timeout)
        data = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else \
            {"error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]}
    except subprocess.TimeoutExpired:
        return TorchFacts(error=f"`import torch` took longer than {timeout:.0f} s")
    except (OSError, ValueError) as exc:
        return TorchFacts(error=str(exc))
    facts = TorchFacts(**{**data, "arch": tuple(data.get("arch", ()))})
    if memo is not None:
        _write(memo, {**remembered, key: asdict(facts)})
    return facts


def _read(memo: Path | None) -> dict:
    try:
        return json.loads(memo.read_text(encoding="utf-8")) if memo else {}
    except (OSError, ValueError):
        return {}


def _write(memo: Path, data: dict) -> None:
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, memo)
    except OSError:
        pass


def kernels_for(arch: tuple[str, ...], sm: int) -> bool:
    """SASS sm_XY runs on the same major at >= Y; PTX compute_XY is JIT-compiled for any newer GPU."""
    for flag in arch:
        kind, _, num = flag.partition("_")
        if not num.isdigit():
            continue
        n = int(num)
        if kind == "sm" and n // 10 == sm // 10 and n <= sm:
            return True
        if kind == "compute" and n <= sm:
            return True
    return not arch  # an unknown list cannot prove anything


def check(ctx: Context, facts: dict[str, TorchFacts], nvml: NvmlFacts) -> list[Result]:
    out = []
    for env in ctx.native_envs():
        spec = ctx.stack.envs.get(env)
        if getattr(spec, "torch", "none") == "none":
            continue
        name = f"python.{env}.torch"
        fact = facts.get(env)
        uses_gpu = any(s.gpu_policy != "none" for s in ctx.services("native") if s.env == env)
        redo = f"inv setup --env {env} --force"
        if fact is None:
            out.append(skip(name, "env not built: nothing to import", f"inv setup --env {env}"))
        elif fact.error:
            out.append(fail(name, f"torch does not import: {fact.error}", redo))
        elif fact.cuda is None:
            if nvml.gpus and uses_gpu:
                out.append(warn(name, f"torch {fact.version} is the CPU build: the GPU goes unused",
                                f"set envs.{env}.torch = \"auto\" in stack.toml, then `inv setup --env {env}`"))
            else:
                out.append(passed(name, f"torch {fact.version} imports (CPU build)"))
        else:
            out.append(_cuda(name, env, fact, nvml, redo))
    return out


def _cuda(name: str, env: str, fact: TorchFacts, nvml: NvmlFacts, redo: str) -> Result:
    head = f"torch {fact.version} (CUDA {fact.cuda})"
    if not nvml.ok or not nvml.gpus:
        return warn(name, f"{head} imports, but no usable GPU: it runs on the CPU",
                    "see gpu.driver; or set the env's torch = \"cpu\" for a smaller env")
    driver_major = (nvml.cuda_driver or 0) // 1000
    if fact.cuda_major and driver_major < fact.cuda_major:
        return fail(name, f"{head} needs a CUDA {fact.cuda_major}.x driver; driver {nvml.driver_version} "
                          f"supports CUDA {nvml.cuda_text}",
                    f"update the NVIDIA driver, or rebuild for it: `inv setup --env {env} --torch cu118` "
                    f"(if the pinned torch ships cu118)")
    missing = [g for g in nvml.gpus if not kernels_for(fact.arch, g.sm)]
    if missing:
        gpus = ", ".join(f"{g.name} (sm_{g.sm})" for g in missing)
        return fail(name, f"{head} carries no kernels for {gpus}; it has {' '.join(fact.arch)}",
                    f"set envs.{env}.torch = \"auto\" and `{redo}` (picks a build for this GPU), or pin a "
                    f"torch release that supports it")
    if not fact.available:
        return warn(name, f"{head} fits the driver, but torch.cuda.is_available() is False",
                    "run `nvidia-smi`; check CUDA_VISIBLE_DEVICES and that this user can open /dev/nvidia*")
    return passed(name, f"{head} fits driver {nvml.driver_version} (CUDA {nvml.cuda_text}) and "
                        + ", ".join(f"{g.name} (sm_{g.sm})" for g in nvml.gpus))
