"""Stack files written for a test: a small two-service stack (an app service and a container-only
command service) with its ports, GPU needs and models filled in, or any stack text given."""

from __future__ import annotations

import textwrap
from pathlib import Path

STACK = """
[stack]
name = "pf"

[envs.small]
python = ">=3.10,<3.13"

[services.api]
env = "small"
app = "app:app"
port = {api_port}
dockerfile = "api.Dockerfile"
gpu = "{api_gpu}"
models = {api_models}

[services.voice]
env = "small"
command = ["python", "-m", "voice", "--port", "{{port}}"]
port = {voice_port}
modes = ["container"]
dockerfile = "voice.Dockerfile"
gpu = "{voice_gpu}"
models = {voice_models}
persistent = true
"""


def write_stack(folder: Path, text: str | None = None, **values) -> Path:
    """`folder/stack.toml`: `text` (dedented) if given, else STACK with `values` over its defaults."""
    defaults = dict(api_port=18400, voice_port=18401, api_gpu="none", voice_gpu="none",
                    api_models="[]", voice_models="[]")
    defaults.update(values)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stack.toml").write_text(textwrap.dedent(text) if text else STACK.format(**defaults))
    return folder / "stack.toml"
