"""requirements.in -> hash-pinned lock (one per torch variant), and whether a lock is stale."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import sys
from pathlib import Path

from ..errors import EnvError
from ..textfile import read_text
from . import layout, sources
from .commands import CommandFailed, Progress, run
from .pythons import allows

MARK = "# duplex: requirements.in sha256="
DEFAULT_PYTHON = "3.11"  # what the contract locks for (and the images run)


def requirements_path(root: Path, name: str, spec) -> Path:
    return Path(root) / (getattr(spec, "requirements", None) or f"envs/{name}/requirements.in")


def lock_path(root: Path, name: str, spec, variant: str | None = None) -> Path:
    """requirements.lock, or requirements.<variant>.lock for an env with torch (cpu, cu128 ...)."""
    req = requirements_path(root, name, spec)
    if not variant or variant == "none":
        return req.with_suffix(".lock")
    return req.with_name(f"{req.stem}.{variant}.lock")


def lock_python(spec) -> str:
    """The Python version a lock resolves for: 3.11 when the env allows it, else the nearest allowed."""
    rng = getattr(spec, "python", ">=3.10,<3.13")
    for minor in (DEFAULT_PYTHON, "3.12", "3.10"):
        if allows(rng, minor + ".0") or allows(rng, minor + ".99"):
            return minor
    return DEFAULT_PYTHON


def locked_python(lock: Path) -> str | None:
    """The --python-version a lock was compiled for, from its header."""
    try:
        head = read_text(lock, what="lock file")[:2000]
    except OSError:
        return None
    found = re.search(r"--python-version[ =](\d+\.\d+)", head)
    return found.group(1) if found else None


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def logical_lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace("\\\n", " ").splitlines()
            if line.strip() and not line.strip().startswith("#")]


def pins(text: str) -> dict[str, str]:
    """Package -> pinned version in a lock."""
    out = {}
    for line in logical_lines(text):
        found = re.match(r"([A-Za-z0-9][\w.-]*)(\[[^\]]*\])?\s*==\s*([^\s;\\]+)", line)
        if found:
            out[_norm(found.group(1))] = found.group(3)
    return out


def unhashed(text: str) -> list[str]:
    """Requirements in a lock that carry no --hash (the install would refuse them)."""
    return [line.split()[0] for line in logical_lines(text)
            if not line.startswith("-") and "--hash=sha256:" not in line]


def wanted_names(req: Path) -> list[str]:
    names = []
    for line in logical_lines(read_text(req, what="requirements file")):
        line = line.split("#")[0].strip()
        found = re.match(r"([A-Za-z0-9][\w.-]*)", line)
        if found and not line.startswith("-"):
            names.append(_norm(found.group(1)))
    return names


def lock_state(root: Path, name: str, spec, variant: str | None = None) -> str:
    """'missing', 'ok' or 'stale: <why>' for an env's lock."""
    req, lock = requirements_path(root, name, spec), lock_path(root, name, spec, variant)
    if not lock.is_file():
        return "missing"
    if not req.is_file():
        return "ok"
    text = read_text(lock, what="lock file")
    mark = next((line for line in text.splitlines() if line.startswith(MARK)), None)
    if mark:
        if mark[len(MARK):].strip() != _sha256(req):
            return f"stale: {_rel(req, root)} changed after {_rel(lock, root)} was made"
        return "ok"
    absent = [n for n in wanted_names(req) if n not in pins(text)]
    if absent:
        return f"stale: {', '.join(absent)} in {_rel(req, root)} but not in {_rel(lock, root)}"
    if req.stat().st_mtime > lock.stat().st_mtime + 1:
        return f"stale: {_rel(req, root)} is newer than {_rel(lock, root)}"
    return "ok"


def lock_env(root: Path, name: str, spec, *, variant: str | None = None, progress: Progress = lambda _: None,
             environ: dict[str, str] | None = None, constraint: str | None = None) -> Path:
    """Resolve the env's requirements.in into a hash-pinned lock with uv; replace the lock only on success,
    and only when the torch it holds is the build asked for (`verify_torch`). `constraint`: a line such
    as `torch==2.11.*` the resolution must also satisfy (the torch choice narrowing the range)."""
    root = Path(root)
    req, lock = requirements_path(root, name, spec), lock_path(root, name, spec, variant)
    if not req.is_file():
        raise EnvError(f"env {name!r}: {_rel(req, root)} does not exist",
                       fix=f"create it with one requirement per line, then run `inv lock --env {name}`")
    read_text(req, what="requirements file")  # UTF-8 text, or one clear line before uv runs
    python = lock_python(spec)
    tmp = lock.with_name(f".{lock.name}.{os.getpid()}.tmp")
    again = f"inv lock --env {name}" + (f" --torch {variant}" if variant and variant != "none" else "")
    args = [sys.executable, "-m", "uv", "pip", "compile", "--quiet", "--generate-hashes", "--no-header",
            "--python-version", python, _rel(req, root), "-o", _rel(tmp, root)]
    for link in sources.find_links(environ):
        args += ["--find-links", link]
    limits = lock.with_name(f".{lock.name}.{os.getpid()}.constraints")
    if constraint:
        args += ["--constraint", _rel(limits, root)]
    index = sources.torch_index(variant, environ)
    if index:
        args += ["--extra-index-url", index, "--index-strategy", "unsafe-best-match"]
    progress(f"{name}: resolving {_rel(req, root)} for Python {python}"
             + (f", torch {variant}" if variant and variant != "none" else "") + " (uv pip compile)")
    try:
        if lock.is_file():  # uv keeps the pins it finds in its output file: a new line changes only what it must
            shutil.copyfile(lock, tmp)
        if constraint:
            limits.write_text(constraint + "\n", encoding="utf-8")
        run(args, what=f"locking env {name!r}", cwd=root, env=environ, timeout=1800,
            fix=f"check the names and versions in {_rel(req, root)} and your network, then `{again}`")
        body = tmp.read_text(encoding="utf-8")
        missing = unhashed(body)
        if missing:
            raise EnvError(f"the index gave no hashes for {', '.join(missing)}; a lock without hashes "
                           "cannot be installed with hashes required",
                           fix=f"pin versions whose files the index hashes (the PyTorch index has lacked some), then `{again}`")
        verify_torch(body, variant, name, again, index)
        header = (f"# Hash-pinned lock for env {name!r}" + (f", torch {variant}" if variant and variant != 'none' else "")
                  + f". Made by `{again}` (uv pip compile --generate-hashes --python-version {python}).\n"
                  f"{MARK}{_sha256(req)}\n")
        tmp.write_text(header + body, encoding="utf-8")
        os.replace(tmp, lock)
    except CommandFailed as err:
        raise _explain(err, name, again, lock) from None
    except OSError as exc:  # a read-only or full project: say where, keep the old lock
        raise layout.from_os_error(exc, name, "writing the lock", tmp, rerun=again,
                                   kept="the previous lock (if any)") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
            limits.unlink(missing_ok=True)
    progress(f"{name}: wrote {_rel(lock, root)} ({len(pins(read_text(lock, what='lock file')))} packages)")
    return lock


def torch_build(text: str) -> tuple[str | None, str | None]:
    """(torch version, the build it is) in a lock: the local tag (`2.13.0+cu126` -> cu126, `+cpu`),
    else, for an untagged torch, the CUDA runtime its nvidia-* dependencies pin (PyPI's builds:
    `nvidia-cuda-runtime-cu12==12.6.77` -> cu126), else cpu (no CUDA libraries at all)."""
    pinned = pins(text)
    version = pinned.get("torch")
    if version is None:
        return None, None
    if "+" in version:
        return version, version.split("+", 1)[1]
    for package, pin in pinned.items():
        if re.fullmatch(r"nvidia-cuda-runtime(-cu\d+)?", package):
            major, minor = pin.split(".")[:2]
            return version, f"cu{major}{minor}"
    return version, "cpu"


def verify_torch(text: str, variant: str | None, name: str, again: str, index: str | None = None) -> None:
    """The lock must hold the torch build asked for: with `--index-strategy unsafe-best-match` a
    newer torch on PyPI (a CUDA 13 build since 2.11) or a local wheel can win over the chosen index."""
    if not variant or variant == "none":
        return
    version, build = torch_build(text)
    if version is None or build == variant:
        return
    source = ("PyPI's plain torch, a " + build + " build" if "+" not in version and build != "cpu"
              else f"the {build} build")
    raise EnvError(f"env {name!r}: the resolver took torch {version} ({source}) for the {variant} lock"
                   + (f": another source beat {index}" if index else ""),
                   fix=f"pin torch to a release {index or 'your index'} serves as {variant} in "
                       f"envs/{name}/requirements.in (e.g. `torch==X.Y.Z`), or lock for the build that was "
                       f"found: `inv lock --env {name} --torch {build}`; then `{again}`")


def _explain(err: CommandFailed, name: str, again: str, where: Path) -> EnvError:
    text = err.output
    trouble = layout.tool_os_error(text)  # uv could not write the lock: full or read-only disk
    if trouble:
        return layout.os_problem(trouble[0], name, "writing the lock", where, trouble[1], rerun=again,
                                 kept="the previous lock (if any)")
    if "No solution found" in text or "not found in the package registry" in text:
        return EnvError(f"env {name!r}: the requirements cannot be resolved\n{str(err).split(chr(10), 1)[-1]}",
                        fix=f"fix the package name or version range named above, then `{again}`")
    if any(s in text for s in ("Failed to fetch", "error sending request", "dns error", "Connection refused")):
        return EnvError(f"env {name!r}: the package index is unreachable\n{str(err).split(chr(10), 1)[-1]}",
                        fix="check the network or proxy (behind a TLS-intercepting proxy set SSL_CERT_FILE "
                            f"to its CA bundle), then `{again}`")
    return err


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)
