"""Fixtures for env tests: a throwaway project root with a tiny real requirements.in, locked for real."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from duplex.envs import lock_env
from tests.support.envs import Spec


def make_project(root: Path, name: str = "small", requirements: str = "six\nidna\n") -> Path:
    (root / "envs" / name).mkdir(parents=True, exist_ok=True)
    (root / "envs" / name / "requirements.in").write_text(requirements)
    return root


@pytest.fixture(scope="session")
def locked_small(tmp_path_factory) -> Path:
    """A project whose env 'small' (six, idna) is locked with hashes once per session."""
    root = make_project(tmp_path_factory.mktemp("locked"))
    lock_env(root, "small", Spec())
    return root


@pytest.fixture
def project(locked_small, tmp_path) -> Path:
    """A fresh copy of the locked project (no envs built yet)."""
    root = tmp_path / "proj"
    shutil.copytree(locked_small, root, ignore=shutil.ignore_patterns(".duplex"))
    return root
