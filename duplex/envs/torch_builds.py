"""Which PyTorch build an env gets: a pure choice from the driver and GPU facts NVML gave (duplex.gpu),
the torch release that will really be installed, and the table of published builds
(duplex/data/torch-builds.toml: one file, with its sources).

The release matters as much as the driver: torch 2.13 publishes cu126 and cu130 only, so an H100 on
driver 550 (CUDA 12.4) gets cu126 from 2.13, never cu128. The release is the lock's pin when a lock
for the variant exists, else the newest release the `.in` range allows that has a build this driver
and these GPUs run; when that is not the newest release in range, the range is narrowed
(`torch==X.Y.*` at lock time) and the reason says so. A release the table does not know is refused.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from packaging.specifiers import SpecifierSet

from ..errors import EnvError
from ..machine import GpuInfo, NvmlFacts

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib

INDEX = "https://download.pytorch.org/whl/{variant}"
TABLE = Path(__file__).resolve().parents[1] / "data" / "torch-builds.toml"


@dataclass(frozen=True)
class Variant:
    """One PyTorch wheel build: its CUDA runtime, the driver it needs, the GPU code it carries."""

    name: str
    cuda: tuple[int, int]
    min_driver: str  # Linux driver for CUDA minor-version compatibility (the major version binds)
    sm: tuple[int, ...]  # compute capabilities with kernels (SASS) in the wheels, e.g. 86 = sm_86


@dataclass(frozen=True)
class Table:
    variants: dict[str, Variant]
    releases: dict[tuple[int, int], tuple[str, ...]]  # (2, 13) -> ("cu126", "cu130")
    pypi: dict[tuple[int, int], str]  # the build PyPI's plain torch is
    publish_gpus: tuple[int, ...]
    publish_drivers: tuple[str, ...]


def _key(text: str) -> tuple[int, int]:
    major, minor = text.split(".")[:2]
    return int(major), int(minor)


@lru_cache(maxsize=None)
def table(path: Path = TABLE) -> Table:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    variants = {name: Variant(name, _key(v["cuda"]), v["min_driver"], tuple(v["sm"]))
                for name, v in data["variants"].items()}
    releases = {_key(r): tuple(names) for r, names in data["releases"].items()}
    return Table(variants, dict(sorted(releases.items())), {_key(r): v for r, v in data.get("pypi", {}).items()},
                 tuple(data["publish"]["gpus"]), tuple(data["publish"]["drivers"]))


VARIANTS = table().variants
RELEASES = table().releases


@dataclass(frozen=True)
class TorchChoice:
    variant: str  # "cpu", "cu128", ... or "none" (no torch in this env)
    reason: str
    warnings: tuple[str, ...] = field(default=())
    release: str | None = None  # "2.13": the torch release this build is for (None: unknown / any)
    constraint: str | None = None  # "torch==2.11.*": what the lock must hold torch to

    @property
    def index_url(self) -> str | None:
        return None if self.variant == "none" else INDEX.format(variant=self.variant)


@dataclass(frozen=True)
class TorchWanted:
    """What an env asks of torch: an exact pin, a range from requirements.in, the locks there are."""

    pin: str | None = None  # "2.13.0" (from `torch==` in requirements.in)
    allowed: str | None = None  # ">=2.2.0,<2.14": the requirements.in specifier
    locked: dict[str, str] = field(default_factory=dict)  # variant -> torch version its lock pins
    env: str = "ENV"  # for the commands in messages


def cpu_only(probe: NvmlFacts) -> bool:
    """No NVIDIA driver or GPU: torch = "auto" is the CPU build, whatever the env asks of torch."""
    return not probe.cuda_driver or not probe.gpus


def release_of(version: str | None) -> tuple[int, int] | None:
    found = re.match(r"(\d+)\.(\d+)", version or "")
    return (int(found.group(1)), int(found.group(2))) if found else None


def _text(release: tuple[int, int]) -> str:
    return f"{release[0]}.{release[1]}"


def offered(torch_version: str | None) -> tuple[str, ...]:
    """CUDA variants published for a torch release; () for a release the table does not know."""
    key = release_of(torch_version)
    return RELEASES.get(key, ()) if key else ()


def runs_on(variant: Variant, gpu: GpuInfo) -> bool:
    """SASS for sm_XY runs on sm_XZ with Z >= Y (same major): sm_80 kernels serve an sm_89 card.
    A GPU whose capability NVML would not give (0.0) proves nothing either way."""
    return gpu.sm == 0 or any(sm // 10 == gpu.sm // 10 and sm <= gpu.sm for sm in variant.sm)


def driver_ok(variant: Variant, driver: str | None) -> bool:
    """Whether a driver version (e.g. "550.54.15") runs this variant (None: unknown, no)."""
    return _version(driver) >= _version(variant.min_driver) if driver else False


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text))


def problems(variant: Variant, probe: NvmlFacts) -> list[str]:
    """Why a variant cannot run here (empty when it can)."""
    out = []
    major = probe.cuda_driver // 1000 if probe.cuda_driver else None
    if major is not None and major < variant.cuda[0]:
        out.append(f"{variant.name} needs CUDA {variant.cuda[0]}.x (driver >= {variant.min_driver}); the driver "
                   f"supports CUDA {probe.cuda_text}")
    missing = [g for g in probe.gpus if not runs_on(variant, g)]
    if missing:
        out.append(f"{variant.name} wheels carry no kernels for " +
                   ", ".join(f"{g.name} (sm_{g.sm})" for g in missing))
    return out


def allows(spec: str | None, release: tuple[int, int]) -> bool:
    """Whether a specifier lets any X.Y.z of this release in (X.Y.0 and a late patch both tried)."""
    if not spec:
        return True
    specs = SpecifierSet(spec)
    return any(specs.contains(f"{_text(release)}.{patch}", prereleases=False) for patch in (0, 1, 9, 99))


def _candidates(wanted: TorchWanted) -> list[tuple[int, int]]:
    """Known releases the env allows, newest first; a pin the table does not know is refused."""
    if wanted.pin:
        key = release_of(wanted.pin)
        return [key] if key in RELEASES else []
    return [r for r in sorted(RELEASES, reverse=True) if allows(wanted.allowed, r)]


def unknown_release(version: str, env: str, where: str) -> EnvError:
    return EnvError(f"torch {version} ({where}) is a release duplex's table of PyTorch builds "
                    f"(duplex/data/torch-builds.toml) does not know: which CUDA builds it publishes is not guessed",
                    fix=f"name the build you know it publishes: `inv lock --env {env} --torch cu126` (or cu130, "
                        f"...), then `inv setup --env {env} --torch` the same; or add the release to the table")


def choose(mode: str, probe: NvmlFacts | None, torch_version: str | None = None, *,
           wanted: TorchWanted | None = None) -> TorchChoice:
    """The variant for ``torch = mode`` ('none', 'cpu', 'auto' or 'cuXXX') on this machine.
    `torch_version`: an exact pin (shorthand for wanted=TorchWanted(pin=...))."""
    wanted = wanted or TorchWanted(pin=torch_version)
    if mode in ("none", "cpu"):
        return TorchChoice(mode, "no torch in this env" if mode == "none" else "torch = \"cpu\" was asked for")
    probe = probe or NvmlFacts()
    if mode != "auto":
        return _forced(mode, probe, wanted)
    if cpu_only(probe):
        why = "no NVIDIA driver or GPU was found (NVML), so the CPU build"
        warnings = ()
        if not probe.ok and (probe.nvidia_pci_devices or probe.error_code not in (None, 12)):
            warnings = (f"an NVIDIA driver or GPU is there but NVML failed ({probe.error}): the CPU build for now; "
                        f"once `nvidia-smi` works, `inv setup --env {wanted.env}` picks a CUDA build",)
        return TorchChoice("cpu", why, warnings)
    for variant, version in sorted(wanted.locked.items(), key=lambda kv: VARIANTS.get(kv[0], Variant("", (0, 0), "", ())).cuda,
                                   reverse=True):
        if variant not in VARIANTS:
            continue
        if release_of(version) not in RELEASES:
            raise unknown_release(version, wanted.env, f"pinned by the {variant} lock")
        if variant in offered(version) and not problems(VARIANTS[variant], probe):
            return TorchChoice(variant, f"the {variant} lock pins torch {version}, which this driver (CUDA "
                                        f"{probe.cuda_text}) and every GPU ({_gpus(probe)}) run",
                               release=_text(release_of(version)))
    if wanted.pin and release_of(wanted.pin) not in RELEASES:
        raise unknown_release(wanted.pin, wanted.env, "pinned in requirements.in")
    candidates = _candidates(wanted)
    if not candidates:
        raise EnvError(f"no torch release duplex knows is in the range {wanted.allowed!r}",
                       fix=f"widen torch in envs/{wanted.env}/requirements.in, or `inv lock --env {wanted.env} "
                           "--torch VARIANT` for a build you know the release publishes")
    rejected: list[str] = []
    for release in candidates:
        for name in sorted(RELEASES[release], key=lambda n: VARIANTS[n].cuda, reverse=True):
            why = problems(VARIANTS[name], probe)
            if not why:
                return _chosen(name, release, candidates, wanted, probe, rejected)
            rejected.append(f"{_text(release)} {name}: {'; '.join(why)}")
    raise EnvError(f"no PyTorch CUDA build of torch {_range(wanted)} fits this machine (driver "
                   f"{probe.driver_version}, CUDA {probe.cuda_text}; {_gpus(probe)}): " + "; ".join(rejected[:4])
                   + (f"; and {len(rejected) - 4} more" if len(rejected) > 4 else ""),
                   fix=refusal_fix(candidates, probe, wanted))


def _chosen(name, release, candidates, wanted: TorchWanted, probe: NvmlFacts, rejected) -> TorchChoice:
    text = _text(release)
    reason = (f"torch {text} {name}: the newest build of torch {_range(wanted)} that the driver (CUDA "
              f"{probe.cuda_text}) and every GPU ({_gpus(probe)}) run")
    newest = candidates[0]
    open_top = not wanted.pin and allows(wanted.allowed, (newest[0], newest[1] + 1))
    if release != newest or open_top:
        why = (f"newer releases publish no build that fits ({'; '.join(rejected[:3])})" if release != newest
               else f"releases after {text} are not in duplex's table")
        reason += f"; torch narrowed to {text}.* ({why})"
    return TorchChoice(name, reason, release=text, constraint=None if wanted.pin else f"torch=={text}.*")


def _forced(mode: str, probe: NvmlFacts, wanted: TorchWanted) -> TorchChoice:
    """`--torch cuXXX` / torch = "cuXXX": the user's word, checked against what is known."""
    if mode not in VARIANTS:
        raise EnvError(f"torch = {mode!r} is not a PyTorch variant duplex knows ({', '.join(VARIANTS)})",
                       fix="use 'auto', 'cpu' or one of those variants")
    trouble = problems(VARIANTS[mode], probe) if probe.cuda_driver else []
    version = wanted.locked.get(mode) or wanted.pin
    if version:
        if release_of(version) not in RELEASES:  # the user named the build: trusted, and said so
            return TorchChoice(mode, f"torch = {mode!r} was asked for", (
                f"torch {version} is not in duplex's table of builds: that it publishes {mode} is your word",
                *trouble), release=_text(release_of(version)) if release_of(version) else None)
        if mode not in offered(version):
            raise EnvError(f"torch {version} is not published for {mode}; it is for: {', '.join(offered(version))}",
                           fix="pick one of those with --torch, or pin another torch version")
        return TorchChoice(mode, f"torch = {mode!r} was asked for (torch {version})", tuple(trouble),
                           release=_text(release_of(version)))
    having = [r for r in _candidates(wanted) if mode in RELEASES[r]]
    if not having:
        raise EnvError(f"no torch release in {_range(wanted)} publishes {mode} (known: "
                       + ", ".join(f"{_text(r)}: {'/'.join(v)}" for r, v in RELEASES.items() if allows(wanted.allowed, r)) + ")",
                       fix=f"pick a variant those releases publish, or widen torch in envs/{wanted.env}/requirements.in")
    text = _text(having[0])
    return TorchChoice(mode, f"torch = {mode!r} was asked for: torch {text}, the newest release in "
                             f"{_range(wanted)} that publishes it", tuple(trouble), release=text,
                       constraint=f"torch=={text}.*")


def refusal_fix(candidates: list[tuple[int, int]], probe: NvmlFacts, wanted: TorchWanted) -> str:
    """What would work instead: a newer driver (for the allowed releases) or an older torch."""
    env = wanted.env
    ways = []
    fits_gpus = [(r, n) for r in candidates for n in RELEASES[r] if all(runs_on(VARIANTS[n], g) for g in probe.gpus)]
    if fits_gpus:
        release, name = max(fits_gpus, key=lambda rn: (rn[0], VARIANTS[rn[1]].cuda[0] * -1))
        ways.append(f"update the NVIDIA driver to >= {VARIANTS[name].min_driver} (torch {_text(release)} {name})")
    older = [(r, n) for r in sorted(RELEASES, reverse=True) for n in RELEASES[r] if r not in candidates
             and not problems(VARIANTS[n], probe)]
    if older:
        release, name = older[0]
        ways.append(f"allow torch {_text(release)} ({name}, the newest release with a build for this driver and "
                    f"GPU) in envs/{env}/requirements.in")
    if not fits_gpus and not older:
        ways.append("hide the unsupported GPU with CUDA_VISIBLE_DEVICES")
    return "; or ".join(ways) + f"; or set torch = \"cpu\" for env {env} (no GPU)"


def _range(wanted: TorchWanted) -> str:
    if wanted.pin:
        return f"=={wanted.pin}"
    return wanted.allowed or "(any release)"


def _gpus(probe: NvmlFacts) -> str:
    return ", ".join(f"{g.name} (sm_{g.sm})" for g in dict.fromkeys(probe.gpus))


def widest(release: str | None, among: tuple[str, ...] | None = None) -> tuple[str, str]:
    """The published variant of a release that runs on the most current datacenter GPUs x driver
    branches (the table's [publish] lists), for images built for a host nobody can probe here.
    `among`: only these builds (those with a lock: an image can only install a locked build)."""
    key = release_of(release) or max(RELEASES)
    names = [n for n in (RELEASES.get(key) or RELEASES[max(RELEASES)]) if among is None or n in among]
    if not names:
        raise ValueError(f"none of {among} is published for torch {_text(key)}")
    t = table()

    def score(name: str) -> tuple[int, int]:
        v = VARIANTS[name]
        gpus = sum(any(sm // 10 == g // 10 and sm <= g for sm in v.sm) for g in t.publish_gpus)
        drivers = sum(driver_ok(v, d) for d in t.publish_drivers)
        return gpus * drivers, -v.cuda[0] * 100 - v.cuda[1]
    best = max(names, key=score)
    v = VARIANTS[best]
    gpus = [g for g in t.publish_gpus if any(sm // 10 == g // 10 and sm <= g for sm in v.sm)]
    missing = [f"sm_{g}" for g in t.publish_gpus if g not in gpus]
    why = (f"{best} (torch {_text(key)}): runs on drivers >= {v.min_driver} and "
           f"{', '.join(f'sm_{g}' for g in gpus)}" + (f"; not on {', '.join(missing)}" if missing else ""))
    return best, why
