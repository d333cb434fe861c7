"""Test envs: `.duplex/envs/<env>` made by duplex's own `inv setup` code, reused while up to date."""

from __future__ import annotations

from pathlib import Path

from duplex.envs import provision_env
from duplex.stack import load_stack

ROOT = Path(__file__).resolve().parents[2]


def ensure_env(name: str, python: str | None = None) -> Path:
    """Return `.duplex/envs/<name>` for the shipped stack's env, built (or reused) like `inv setup`."""
    stack = load_stack(ROOT / "stack.toml")
    return provision_env(ROOT, name, stack.envs[name], python=python).path
