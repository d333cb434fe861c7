"""Where envs live: .duplex/envs/<name> is a link swapped atomically to a complete build in .builds/."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

from ..errors import EnvError

TAG = "Signature: 8a477f597d28d172789f06886806bc55\n# duplex env builds; safe to delete\n"


def envs_dir(root: Path) -> Path:
    return Path(root) / ".duplex" / "envs"


def env_path(root: Path, name: str) -> Path:
    """The venv of an env: `.duplex/envs/<name>` (its bin/python is what native runs use)."""
    return envs_dir(root) / name


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
def locked(root: Path, name: str):
    """One setup per env at a time (a second waits); released when the process dies, even by SIGKILL."""
    prepare(root)
    with open(envs_dir(root) / f".{name}.lock", "a+") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory lock; builds still never collide (unique names)
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
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
