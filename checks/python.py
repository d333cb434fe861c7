"""python: an interpreter in 3.10-3.12 for each native env, and each env built and matching its lock (stamp)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from duplex.envs import env_status
from duplex.envs.interpreters import Interpreter, candidates, install_hint, probe
from duplex.envs.lock import lock_python
from duplex.envs.managed import downloads_allowed
from duplex.envs.pythons import SUPPORTED_TEXT, allows, managed_request, suggest
from duplex.layout import Layout

from . import Context, Result, fail, passed, warn


def probe_interpreters(environ: dict[str, str] | None = None) -> list[Interpreter]:
    """Every interpreter the machine offers (PATH, pyenv, uv, py launcher), each asked for its version."""
    found = candidates(environ)
    with ThreadPoolExecutor(max_workers=8) as pool:
        return [i for i in pool.map(lambda c: probe(*c), found) if i]


def probe_env(root: Path, name: str, spec, torch_probe) -> str:
    """'missing', 'ok' or 'stale: why' — the setup helper's own verdict, with NVML facts handed in."""
    return env_status(root, name, spec, probe=torch_probe)


def _spec_range(ctx: Context, env: str) -> str:
    spec = ctx.stack.envs.get(env)
    return getattr(spec, "python", None) or ">=3.10,<3.13"


def check_interpreters(ctx: Context, found: list[Interpreter]) -> list[Result]:
    out = []
    for env in ctx.native_envs():
        rng = _spec_range(ctx, env)
        fitting = sorted((i for i in found if allows(rng, i.version)), key=lambda i: i.version, reverse=True)
        name = f"python.{env}.interpreter"
        if fitting:
            best = fitting[0]
            out.append(passed(name, f"Python {best.version} ({best.path}, {best.source}) fits {rng}"))
            continue
        seen = ", ".join(sorted({i.version for i in found})) or "none"
        wanted = f"{rng}.x" if rng.count(".") == 1 and rng.replace(".", "").isdigit() else rng
        missing = f"no Python in {wanted} (duplex supports {SUPPORTED_TEXT}) was found; found: {seen}"
        if downloads_allowed(ctx.environ):  # not a blocker: `inv setup` fetches one
            out.append(warn(name, f"{missing}; `inv setup` will fetch a managed CPython with "
                                  f"`uv python install {managed_request(rng, prefer=lock_python(ctx.stack.envs.get(env)))}`",
                            "nothing, if a download is fine (UV_PYTHON_DOWNLOADS=never turns it off); else "
                            + install_hint(suggest(rng))))
        else:
            out.append(fail(name, f"{missing}; UV_PYTHON_DOWNLOADS={ctx.environ['UV_PYTHON_DOWNLOADS']} "
                                  "keeps `inv setup` from fetching one", install_hint(suggest(rng))))
    return out


def check_envs(ctx: Context, states: dict[str, str | Exception]) -> list[Result]:
    out = []
    for env in ctx.native_envs():
        name = f"python.{env}.env"
        state = states.get(env, "missing")
        where = Layout(ctx.root).env(env).relative_to(ctx.root)
        if isinstance(state, Exception):
            out.append(fail(name, f"cannot tell whether {where} is up to date: {state}",
                            getattr(state, "fix", None) or f"inv setup --env {env}"))
        elif state == "ok":
            out.append(passed(name, f"{where} matches its lock (stamp)"))
        elif state == "missing":
            out.append(fail(name, f"{where} is not built", f"inv setup --env {env}"))
        else:
            out.append(fail(name, f"{where} is {state}", f"inv setup --env {env}"))
    return out
