"""opus (and any system library an env declares): found by the loader, or bundled by a wheel in the env."""

from __future__ import annotations

from pathlib import Path

from duplex.envs.system import find, install_hint, lib, package_manager
from duplex.layout import Layout

from . import Context, Result, fail, passed


def probe_libs(names: list[str]) -> dict[str, str | None]:
    """Library name -> the file the loader finds (ctypes.util.find_library), or None."""
    return {name: find(name) for name in names}


def bundled_in(venv: Path, name: str) -> str | None:
    """A package installed in the env whose wheel links the library in (sphn for opus), if any."""
    for pkg in lib(name).bundled_by:
        if any(venv.glob(f"lib/python3*/site-packages/{pkg}-*.dist-info")) or \
                any(venv.glob(f"Lib/site-packages/{pkg}-*.dist-info")):
            return pkg
    return None


def wanted(ctx: Context) -> list[tuple[str, str]]:
    """(env, library) for each native env that declares system libraries."""
    out = []
    for env in ctx.native_envs():
        spec = ctx.stack.envs.get(env)
        out += [(env, name) for name in (getattr(spec, "system", None) or [])]
    return out


def check(ctx: Context, found: dict[str, str | None], manager: str | None = None) -> list[Result]:
    out = []
    for env, name in wanted(ctx):
        result = f"{name}.{env}"
        if found.get(name):
            out.append(passed(result, f"lib{name} found ({found[name]}) for env {env}"))
            continue
        bundler = bundled_in(Layout(ctx.root).env(env), name)
        if bundler:
            out.append(passed(result, f"lib{name} is not installed system-wide, but {bundler}'s wheel in env "
                                      f"{env} bundles it"))
            continue
        hint = install_hint(name, manager if manager is not None else package_manager())
        out.append(fail(result, f"env {env} needs the system library lib{name} (envs.{env}.system) and the "
                                f"loader cannot find it", f"{hint}; then `inv setup --env {env}`"))
    return out
