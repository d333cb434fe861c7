"""Pinned virtualenvs for a stack's envs: `inv setup` (provision_env) and `inv lock` (lock_env)."""

from .layout import env_path
from .lock import lock_path, lock_state, requirements_path
from .provision import EnvResult, env_status, lock_env, provision_env, torch_choice
from .secrets import write_secret
from .torch import Gpu, TorchChoice, TorchProbe, choose, probe_nvml

__all__ = ["EnvResult", "Gpu", "TorchChoice", "TorchProbe", "choose", "env_path", "env_status", "lock_env",
           "lock_path", "lock_state", "probe_nvml", "provision_env", "requirements_path", "torch_choice",
           "write_secret"]
