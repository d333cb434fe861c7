"""Small stacks to publish, and a copy of the default stack under its own name for real runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from duplex.stack import load_stack
from tests.conftest import ROOT
from tests.support.stacks import write_stack

# Optional dependency, a container-only GPU service, an image-only service, a secret, a `$`.
SMALL = """
[stack]
name = "small"

[envs.web]

[services.api]
env = "web"
app = "app:app"
port = 9100
health = "/health"
start_timeout = 45
dockerfile = "web.Dockerfile"
gpu = "optional"
secrets = ["API_TOKEN"]
[services.api.environment]
PRICE = "$5 and $(HOME)"

[services.gpu-worker]
command = ["python", "-m", "worker", "--port", "{port}"]
port = 9200
health = "ws:/stream"
modes = ["container"]
dockerfile = "worker.Dockerfile"
gpu = "required"
models = ["org/weights@0123456789abcdef0123456789abcdef01234567"]
start_timeout = 600

[services.cache]
command = ["redis-server", "--port", "{port}"]
port = 9300
modes = ["container"]
image = "redis:7"

[services.web]
env = "web"
app = "app:app"
port = 9400
health = "/ready"
dockerfile = "web.Dockerfile"
depends_on = { api = {}, gpu-worker = { required = false }, cache = { required = false } }
[services.web.environment]
API_URL = "{api.url}"
WORKER_WS = "ws://{gpu-worker.host}:{gpu-worker.port}/stream"
"""


@pytest.fixture
def small(tmp_path):
    return load_stack(write_stack(tmp_path / "small", SMALL))


@pytest.fixture
def default_stack():
    return load_stack(ROOT / "stack.toml")


def copy_default(dest: Path, name: str) -> Path:
    """The shipped stack and what its images are built from, under another stack name (so its
    images and volumes never meet a user's own `inv run`)."""
    dest.mkdir(parents=True)
    for item in ("stack.toml", "servers", "envs", "dockerfiles", ".dockerignore"):
        src = ROOT / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=shutil.ignore_patterns("__pycache__", ".duplex"))
        else:
            shutil.copy(src, dest / item)
    text = (dest / "stack.toml").read_text().replace('name = "duplex"', f'name = "{name}"', 1)
    (dest / "stack.toml").write_text(text)
    return dest / "stack.toml"
