"""`inv setup` for one env: reuse it when its stamp matches, else build beside it and swap in when complete."""

from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EnvError
from ..layout import python_in
from ..machine import NvmlFacts
from ..syntax import VERSION_ONLY
from ..textfile import read_text
from . import fixes as fixes_mod
from . import imports, layout, sources, system
from . import lock as lock_mod
from . import stamp as stamp_mod
from .commands import CommandFailed, Progress
from .installer import INSTALLERS, explain, pick
from .interpreters import install_hint, probe
from .managed import find_or_fetch
from .pythons import allows, parse_range
from .torch_builds import TorchChoice, TorchWanted, choose  # noqa: F401 - the setup API
from .torch_choice import torch_choice, torch_wanted  # noqa: F401 - the setup API

env_path = layout.env_path


@dataclass
class EnvResult:
    name: str
    path: Path
    python_version: str
    installer: str
    torch_variant: str
    reused: bool
    seconds: float
    warnings: list[str] = field(default_factory=list)
    torch_reason: str = ""
    fixes: list[str] = field(default_factory=list)  # what each fix did

    @property
    def state(self) -> str:
        return "reused" if self.reused else "built"

    def as_dict(self) -> dict:
        """The row `inv setup --json` prints."""
        return {"env": self.name, "python": self.python_version, "path": str(self.path),
                "torch": self.torch_variant, "torch_reason": self.torch_reason, "state": self.state,
                "installer": self.installer,
                "seconds": round(self.seconds, 3), "warnings": self.warnings, "fixes": self.fixes}


def _spec(spec, attr, default):
    return getattr(spec, attr, default) if spec is not None else default


def _python_ok(spec, python: str | None, exact: str | None = None):
    """Whether a built env's Python is what is asked for: the env's range, `--python 3.11`, or
    `exact` (the version of the interpreter `--python /path` names)."""
    rng = _spec(spec, "python", ">=3.10,<3.13")

    def ok(version: str) -> bool:
        if not allows(rng, version):
            return False
        if exact:
            return version == exact
        if python and python[:1].isdigit():
            return version in parse_range(python)
        return True
    return ok


def _asked_python(python: str | None) -> str | None:
    """`--python PATH`: the version of that interpreter (probed once), or an EnvError when it is not
    one; None for no --python or a version (those are checked against the range as they are)."""
    if not python or VERSION_ONLY.fullmatch(python):
        return None
    found = probe(shutil.which(python) or python, "--python")
    if found is None:
        raise EnvError(f"--python {python}: not a working Python interpreter", fix=install_hint())
    return found.version


def _wanted(root: Path, name: str, spec, choice: TorchChoice) -> tuple[Path, dict]:
    lock = lock_mod.lock_path(root, name, spec, choice.variant)
    state = lock_mod.lock_state(root, name, spec, choice.variant)
    relock = f"inv lock --env {name}" + (f" --torch {choice.variant}" if choice.variant != "none" else "")
    if state == "missing":
        raise EnvError(f"env {name!r}: no lock {lock_mod._rel(lock, root)}"
                       + (f" for torch {choice.variant} ({choice.reason})" if choice.variant != "none" else ""),
                       fix=f"run `{relock}`")
    if state != "ok":
        raise EnvError(f"env {name!r}: the lock is {state}", fix=f"run `{relock}`, then `inv setup --env {name}`")
    want = {"lock": lock_mod._rel(lock, root), "lock_sha256": hashlib.sha256(lock.read_bytes()).hexdigest(),
            "torch": choice.variant, "fixes": tuple(_spec(spec, "fixes", []) or ())}
    return lock, want


def env_status(root: Path, name: str, spec, *, probe: NvmlFacts | None = None, torch: str | None = None) -> str:
    """'missing', 'ok' or 'stale: why' for an env, without building anything."""
    root = Path(root)
    venv = layout.env_path(root, name)
    if not python_in(venv).exists():
        return "missing"
    try:
        choice = torch_choice(root, name, spec, torch=torch, probe=probe)
        _, want = _wanted(root, name, spec, choice)
    except EnvError as err:
        return f"stale: {str(err).splitlines()[0]}"
    reason = stamp_mod.stale_reason(stamp_mod.read(venv), python_ok=_python_ok(spec, None), **want)
    return f"stale: {reason}" if reason else "ok"


def provision_env(root: Path, name: str, spec, *, python: str | None = None, force: bool = False,
                  installer: str | None = None, probe: NvmlFacts | None = None, torch: str | None = None,
                  progress: Progress = lambda _: None) -> EnvResult:
    """Make env `name` match its lock, interpreter, torch variant and fixes; reuse it when it already does."""
    started = time.perf_counter()
    root = Path(root)
    venv = layout.env_path(root, name)
    # What was asked is checked before anything else, so a mistake is refused even when the env
    # is up to date (it was silently ignored without --force): installer, torch, interpreter.
    if installer is not None:
        pick(installer)
    choice = torch_choice(root, name, spec, torch=torch, probe=probe)
    lock, want = _wanted(root, name, spec, choice)
    fixes_mod.check_names(want["fixes"], name)
    python_ok = _python_ok(spec, python, _asked_python(python))
    old = stamp_mod.read(venv) if python_in(venv).exists() else None
    reason = "--force" if force else stamp_mod.stale_reason(old, python_ok=python_ok, **want)
    if reason is None and installer is not None and INSTALLERS[installer].name != old.installer:
        reason = f"built with {old.installer}, --installer {installer} asked"
    if reason is None:
        _clean_if_idle(root, name)  # the partial builds a killed setup left: the docs promise it
        why = old.torch_reason or choice.reason  # stamps before torch_reason: today's reason
        torch_text = f"torch {old.torch}" + (f": {why}" if old.torch != "none" else "")
        progress(f"{name}: up to date (Python {old.python_version}, {torch_text}), nothing to do")
        return EnvResult(name, venv, old.python_version, old.installer, old.torch, True,
                         time.perf_counter() - started, [], why, list(old.fix_results))
    if old is not None or venv.exists():
        progress(f"{name}: rebuilding: {reason}")
    try:
        with layout.locked(root, name):
            layout.clean(root, name)  # builds a killed setup left behind
            return _build(root, name, spec, lock, want, choice, python, installer, progress, started)
    except OSError as exc:  # the env folder itself cannot be made or locked (read-only, full, not ours)
        raise layout.from_os_error(exc, name, "preparing the env folder", layout.envs_dir(root)) from None


def _clean_if_idle(root: Path, name: str) -> None:
    """Remove this env's leftover builds unless another setup of it is running right now."""
    try:
        with layout.locked(root, name, wait=False) as held:
            if held:
                layout.clean(root, name)
    except OSError:
        pass  # a read-only or full disk: nothing to clean there, and reuse must still work


def _build(root, name, spec, lock, want, choice, python, installer, progress, started) -> EnvResult:
    interp = find_or_fetch(_spec(spec, "python", ">=3.10,<3.13"), name, python=python,
                           prefer=lock_mod.locked_python(lock) or lock_mod.lock_python(spec), progress=progress)
    progress(f"{name}: Python {interp.version} ({interp.path}, from {interp.source})")
    if choice.variant != "none":
        progress(f"{name}: torch {choice.variant}: {choice.reason}")
    warnings = list(choice.warnings)
    pins = lock_mod.pins(read_text(lock, what="lock file"))
    libs = _spec(spec, "system_libs", None) or _spec(spec, "system", [])  # `system`: the older name
    warnings += system.check(list(libs or []), name, pins,
                             system.pypi_has_wheel(interp.path), progress)
    tool = pick(installer)
    build = layout.new_build(root, name)
    relock = f"inv lock --env {name}" + (f" --torch {choice.variant}" if choice.variant != "none" else "")
    step = "creating the venv"
    try:
        progress(f"{name}: creating the venv ({tool.name})")
        try:
            tool.create(interp.path, build)
            step = "installing the pinned packages"
            progress(f"{name}: installing {len(pins)} pinned packages from {want['lock']} ({tool.name}, hashes required)")
            links = sources.find_links()  # the torch index only when the wheelhouse lacks the locked build
            index = sources.torch_index(choice.variant) if sources.index_needed(lock.read_text(encoding="utf-8"), links) else None
            tool.install(build, lock, find_links=links, index=index)
        except CommandFailed as err:
            raise explain(err, name, lock, relock, step=step, where=layout.builds_dir(root)) from None
        py = python_in(build)
        step = "applying the post-install fixes"
        results = fixes_mod.apply(py, want["fixes"], name, progress)
        req = lock_mod.requirements_path(root, name, spec)
        dists = lock_mod.wanted_names(req) if req.is_file() else []
        imports.check_imports(py, dists, name, lock_mod._rel(req, root), progress)
        step = "writing the env stamp"
        stamp_mod.write(build, stamp_mod.Stamp(
            lock=want["lock"], lock_sha256=want["lock_sha256"], python=str(interp.path),
            python_version=interp.version, torch=choice.variant, fixes=want["fixes"], installer=tool.name,
            fix_results=tuple(f"{r.name}: {r.message}" for r in results), torch_reason=choice.reason))
        step = "swapping in the new env"
        layout.swap_in(root, name, build)
    except OSError as exc:  # disk full, read-only, not ours: say so instead of a traceback
        shutil.rmtree(build, ignore_errors=True)  # the previous env (if any) stays in place
        raise layout.from_os_error(exc, name, step, build) from None
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)  # the previous env (if any) stays in place
        raise
    layout.clean(root, name)
    seconds = time.perf_counter() - started
    progress(f"{name}: ready in {seconds:.1f} s at {layout.env_path(root, name)}")
    return EnvResult(name, layout.env_path(root, name), interp.version, tool.name, choice.variant, False,
                     seconds, warnings, choice.reason, [f"{r.name}: {r.message}" for r in results])


def lock_env(root: Path, name: str, spec, *, torch: str | None = None, probe: NvmlFacts | None = None,
             progress: Progress = lambda _: None) -> Path:
    """`inv lock` for one env: its lock for the torch variant this machine (or --torch) gets."""
    choice = torch_choice(Path(root), name, spec, torch=torch, probe=probe)
    if choice.variant != "none":
        progress(f"{name}: torch {choice.variant}: {choice.reason}")
    return lock_mod.lock_env(Path(root), name, spec, variant=choice.variant, progress=progress,
                             constraint=choice.constraint)
