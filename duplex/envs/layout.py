"""Where envs live: .duplex/envs/<name> is a link swapped atomically to a complete build in .builds/."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
from pathlib import Path

from ..errors import EnvError
from ..layout import Layout

try:
    import fcntl
except ImportError:  # Windows: no advisory locks (each user below says what it does then)
    fcntl = None

TAG = "Signature: 8a477f597d28d172789f06886806bc55\n# duplex env builds; safe to delete\n"


def envs_dir(root: Path) -> Path:
    return Layout(root).envs


def env_path(root: Path, name: str) -> Path:
    """The venv of an env: `.duplex/envs/<name>` (its bin/python is what native runs use)."""
    return Layout(root).env(name)


def builds_dir(root: Path) -> Path:
    return envs_dir(root) / ".builds"


def prepare(root: Path) -> None:
    """Create the folders, marked as generated (gitignored, a cache dir for backup tools)."""
    builds_dir(root).mkdir(parents=True, exist_ok=True)
    base = envs_dir(root)
    if not (base / ".gitignore").exists():
        (base / ".gitignore").write_text("*\n")
    if not (base / "CACHEDIR.TAG").exists():
        (base / "CACHEDIR.TAG").write_text(TAG)


def new_build(root: Path, name: str) -> Path:
    return builds_dir(root) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{os.urandom(3).hex()}"


@contextlib.contextmanager
def locked(root: Path, name: str, *, wait: bool = True):
    """One setup per env at a time (a second waits); released when the process dies, even by SIGKILL.
    `wait=False`: yields False at once when another setup holds it (True when this one does)."""
    prepare(root)
    with open(envs_dir(root) / f".{name}.lock", "a+") as handle:
        if fcntl is None:  # Windows: no advisory lock; builds still never collide (unique names)
            yield wait
            return
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def current(root: Path, name: str) -> Path | None:
    """The build the env points at now (None when missing)."""
    link = env_path(root, name)
    if link.is_symlink():
        return (link.parent / os.readlink(link)).resolve()
    return link if link.is_dir() else None


def swap_in(root: Path, name: str, build: Path) -> Path | None:
    """Point the env at a finished build in one rename; returns the build it replaced."""
    link = env_path(root, name)
    old = current(root, name)
    if link.is_dir() and not link.is_symlink():  # a venv made in place by an older tool: move it aside
        old = builds_dir(root) / f"{name}-replaced-{os.getpid()}"
        os.replace(link, old)
    tmp = envs_dir(root) / f".{name}.new"
    tmp.unlink(missing_ok=True)
    try:
        os.symlink(os.path.relpath(build, link.parent), tmp, target_is_directory=True)
    except OSError as exc:
        raise EnvError(f"cannot create the link {tmp}: {exc.strerror}",
                       fix="on Windows enable Developer Mode (symlinks), or run from a filesystem that allows them") from exc
    os.replace(tmp, link)
    return old


def clean(root: Path, name: str) -> None:
    """Remove this env's builds the link does not point at (earlier envs, interrupted builds)."""
    keep = current(root, name)
    for build in builds_dir(root).glob(f"{name}-*"):
        if build.resolve() != keep and _owner(build.name, name):
            shutil.rmtree(build, ignore_errors=True)


def _owner(build_name: str, name: str) -> bool:
    rest = build_name[len(name) + 1:]
    return rest[:1].isdigit() or rest.startswith("replaced-")


# What tools (uv, virtualenv, pip) print for the file-system errors a user can act on.
_TOOL_TEXT = {"No space left on device": errno.ENOSPC, "Disk quota exceeded": errno.EDQUOT,
              "Read-only file system": errno.EROFS, "Permission denied": errno.EACCES}


def tool_os_error(output: str) -> tuple[int, str] | None:
    """(errno, the line that says it) when a tool failed on the file system, else None."""
    for line in output.splitlines():
        for text, code in _TOOL_TEXT.items():
            if text in line:
                return code, line.strip()[-300:]
    return None


def os_problem(code: int | None, env: str, step: str, where: Path | str, detail: str = "",
               rerun: str = "", kept: str = "the previous env (if any)") -> EnvError:
    """A file-system failure as what happened, where, and what to do; the live env was never touched."""
    where = Path(where)
    rerun = rerun or f"inv setup --env {env}"
    folder = next((p for p in (where, *where.parents) if p.is_dir()), where)
    head = f"env {env!r}: {step} failed at {where}"
    tail = (f"\n    {detail}" if detail else "") + f"\n  {kept} is untouched"
    if code in (errno.ENOSPC, errno.EDQUOT):
        return EnvError(f"{head}: no space left on the device{tail}",
                        fix=f"free disk space there (`df -h {folder}`; a venv with torch needs several GB), "
                            f"or set TMPDIR / UV_CACHE_DIR / PIP_CACHE_DIR to a larger disk, then rerun `{rerun}`")
    if code == errno.EROFS:
        return EnvError(f"{head}: the file system is read-only{tail}",
                        fix=f"remount that file system read-write, or run duplex from a project on a writable disk, "
                            f"then rerun `{rerun}`")
    if code in (errno.EACCES, errno.EPERM):
        return EnvError(f"{head}: permission denied{tail}",
                        fix=f"make {folder} writable by you (`ls -ld {folder}`; a tree made by `sudo inv setup` "
                            f"needs `sudo chown -R \"$USER\" {folder}`), then rerun `{rerun}`")
    return EnvError(f"{head}: {os.strerror(code) if code else 'file-system error'}{tail}",
                    fix=f"check {folder} (free space, permissions), then rerun `{rerun}`")


def from_os_error(exc: OSError, env: str, step: str, default_where: Path, **how) -> EnvError:
    """An OSError from our own file work (exc.filename says where when Python knows it)."""
    return os_problem(exc.errno, env, step, exc.filename or default_where, **how)

