"""A stack file in a subfolder that shares the repo's code (`[stack] root`), and the keys the
translation stack added (gpu_sharing, metrics, websocket): good values plan, bad ones get one line."""

from __future__ import annotations

import json
import textwrap

import pytest

from duplex.stack import project_root
from tests.conftest import run_inv

STACK = """
[stack]
name = "sub"
root = "../.."
{extra}
[envs.app]
[services.api]
env = "app"
app = "servers.api:app"
port = 9100
health = "/health"
watch = ["servers"]
dockerfile = "dockerfiles/api.Dockerfile"
{service}
"""


def write(tmp_path, extra: str = "", service: str = ""):
    (tmp_path / "servers").mkdir(exist_ok=True)
    stack = tmp_path / "examples" / "sub" / "stack.toml"
    stack.parent.mkdir(parents=True, exist_ok=True)
    stack.write_text(textwrap.dedent(STACK.format(extra=extra, service=service)))
    return stack


def test_paths_and_state_are_the_root_folders(tmp_path, monkeypatch):
    stack = write(tmp_path, service='metrics = "/metrics"\nwebsocket = true')
    proc = run_inv("config", "--json", "--native", env={"DUPLEX_STACK": str(stack)}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "servers" in json.dumps(json.loads(proc.stdout)["services"][0])  # watch found under the root
    monkeypatch.setenv("DUPLEX_STACK", str(stack))
    assert project_root() == tmp_path.resolve()  # stop, status and logs read <root>/.duplex
    stopped = run_inv("stop", env={"DUPLEX_STACK": str(stack)}, cwd=tmp_path)
    assert stopped.returncode == 0 and "nothing was running" in stopped.stdout


@pytest.mark.parametrize("extra, service, fragments", [
    ('', '', None),
    ('', '', ["services.api.watch[0]", "'servers' does not exist under"]),
    ('root = "lib"', '', ["stack.root", "expected '.' or a folder above the stack file", "'lib'"]),
    ('gpu_sharing = "mig"', '', ["stack.gpu_sharing", "'none', 'mps' or 'time-slicing'"]),
    ('', 'metrics = "metrics"', ["services.api.metrics"]),
    ('', 'websocket = "yes"', ["services.api.websocket"]),
])
def test_bad_values_get_one_line(tmp_path, extra, service, fragments):
    stack = write(tmp_path, service=service)
    text = stack.read_text()
    if fragments and fragments[0].startswith("services.api.watch"):
        (tmp_path / "servers").rmdir()
    if extra.startswith("root"):
        text = text.replace('root = "../.."', extra)
    elif extra:
        text = text.replace('root = "../.."', 'root = "../.."\n' + extra)
    stack.write_text(text)
    proc = run_inv("config", "--json", env={"DUPLEX_STACK": str(stack)}, cwd=tmp_path)
    if fragments is None:
        assert proc.returncode == 0, proc.stderr
        return
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, (fragment, proc.stderr)
