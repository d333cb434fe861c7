"""Test envs: `.duplex/envs/<env>` made by duplex's own `inv setup` code, reused while up to date."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from duplex.envs import provision_env
from duplex.stack import load_stack

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Spec:
    """An env spec without a stack file: the attributes duplex.stack.EnvSpec has, which are all
    the env code reads (env tests and benchmarks)."""

    python: str = ">=3.10,<3.13"
    requirements: str | None = None
    torch: str = "none"
    fixes: list[str] = field(default_factory=list)
    system_libs: list[str] = field(default_factory=list)


TRANSLATE_STACK = ROOT / "examples" / "translate" / "stack.toml"


def ensure_env(name: str, python: str | None = None) -> Path:
    """Return `.duplex/envs/<name>` for a shipped stack's env (stack.toml's, else the translation
    stack's: mt), built (or reused) like `inv setup`."""
    stack = load_stack(ROOT / "stack.toml")
    if name not in stack.envs:
        stack = load_stack(TRANSLATE_STACK)
    return provision_env(ROOT, name, stack.envs[name], python=python).path
