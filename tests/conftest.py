"""Shared fixtures: the project root, and running the real `inv` CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config) -> None:
    """Which base image the suite's container builds start FROM. With a Docker Hub mirror on the
    engine that serves the official image (CI: .ci/run), the default: `python:3.11-slim-bookworm`,
    pulled and pinned by digest. Without one (a shared engine that may not be restarted), the
    air-gapped image scripts/base-image.sh builds, as DUPLEX_BASE_IMAGE; tests/images then runs
    the default path on an engine of its own (tests/support/registry.py)."""
    if "DUPLEX_BASE_IMAGE" in os.environ or not Path("/var/run/docker.sock").exists() and "DOCKER_HOST" not in os.environ:
        return
    from tests.support.registry import AIR_GAPPED, engine_mirror
    if engine_mirror() is None:
        os.environ["DUPLEX_BASE_IMAGE"] = AIR_GAPPED
        config.stash[BASE_KEY] = f"{AIR_GAPPED} (DUPLEX_BASE_IMAGE: the engine has no Docker Hub mirror)"
    else:
        config.stash[BASE_KEY] = "python:3.11-slim-bookworm from the engine's Docker Hub mirror, by digest"


BASE_KEY = pytest.StashKey[str]()


def pytest_report_header(config) -> str | None:
    return f"container base image: {config.stash[BASE_KEY]}" if BASE_KEY in config.stash else None


@pytest.fixture(scope="session", autouse=True)
def no_leftovers(tmp_path_factory) -> None:
    """Containers an ended test session left would hold this session's test stack names
    (tests/support/leftovers.py): removed first, and said in the summary."""
    from tests.support import leftovers
    basetemp = tmp_path_factory.getbasetemp()
    leftovers.mark(basetemp)
    removed = leftovers.remove_stale(basetemp)
    if removed:
        warnings.warn(f"removed {len(removed)} container(s) an ended test session left: {', '.join(removed)}",
                      stacklevel=1)


@pytest.fixture
def root() -> Path:
    return ROOT


def run_inv(*args: str, env: dict | None = None, cwd: Path = ROOT, timeout: float = 120,
            check: bool = False) -> subprocess.CompletedProcess:
    """Run the real CLI (`python -m invoke`) the way a user runs `inv`."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("DUPLEX_STACK", None) if env is None or "DUPLEX_STACK" not in env else None
    proc = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args],
                          cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"inv {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def fake_nvml(tmp_path_factory) -> Path:
    """The stand-in libnvidia-ml.so.1, built once per test session (tests/support/fakenvml.py)."""
    from tests.support import fakenvml
    return fakenvml.build(tmp_path_factory.mktemp("fakenvml"))
