"""Pinned virtualenvs for a stack's envs: `inv setup` (provision_env) and `inv lock` (lock_env).

Names are imported on first use, so light readers (the stack loader checks fix names against
`duplex.envs.fixes`) do not pay for the whole provisioning machinery.
"""

from importlib import import_module

_WHERE = {
    "env_path": "layout", "lock_path": "lock", "lock_state": "lock", "requirements_path": "lock",
    "EnvResult": "provision", "env_status": "provision", "lock_env": "provision", "provision_env": "provision",
    "torch_choice": "torch_choice", "TorchChoice": "torch_builds", "choose": "torch_builds",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
