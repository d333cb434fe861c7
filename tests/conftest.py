"""Shared fixtures: the project root, and running the real `inv` CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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
