"""reload = "warm" in the stack file and the plan (pure: no processes)."""

from __future__ import annotations

import pytest

from duplex.errors import StackError
from duplex.machine import Machine
from duplex.plan import plan
from duplex.stack import load_stack
from duplex.warm import RUNNER

STACK = """
[envs.asr]
[services.asr]
env = "asr"
app = "servers.asr.app:app"
port = 8000
dockerfile = "asr.Dockerfile"
{extra}
"""


def write(tmp_path, extra: str):
    path = tmp_path / "stack.toml"
    path.write_text(STACK.format(extra=extra))
    return load_stack(path)


def test_warm_runs_the_reloader_script_natively_with_its_preload(tmp_path):
    stack = write(tmp_path, 'reload = "warm"\npreload = "servers.asr.loaders:preload"')
    svc = plan(stack, Machine(), native=True).services["asr"]
    assert svc.command == ["python", str(RUNNER), "--app", "servers.asr.app:app", "--host", "127.0.0.1",
                           "--port", "8000", "--watch", "servers/asr",
                           "--preload", "servers.asr.loaders:preload"]
    assert RUNNER.is_file()
    assert svc.watch == ["servers/asr"]


def test_warm_does_not_touch_containers_or_the_restart_default(tmp_path):
    stack = write(tmp_path, 'reload = "warm"')
    assert plan(stack, Machine()).services["asr"].command == [
        "python", "-m", "uvicorn", "servers.asr.app:app", "--host", "0.0.0.0", "--port", "8000"]
    default = write(tmp_path, "")
    assert default.services["asr"].reload == "restart"
    assert plan(default, Machine(), native=True).services["asr"].command == [
        "python", "-m", "uvicorn", "servers.asr.app:app", "--host", "127.0.0.1", "--port", "8000",
        "--reload", "--reload-dir", "servers/asr"]


@pytest.mark.parametrize("extra, problem", [
    ('reload = "hot"', "services.asr.reload: input should be 'restart' or 'warm', found 'hot'"),
    ('preload = "servers.asr.loaders:preload"', "services.asr.preload: only used with reload = 'warm'"),
    ('reload = "warm"\npreload = "no colon"', "services.asr.preload: expected 'module:attr'"),
])
def test_bad_reload_settings_are_named(tmp_path, extra, problem):
    with pytest.raises(StackError) as err:
        write(tmp_path, extra)
    assert problem in str(err.value)


def test_warm_needs_an_app(tmp_path):
    path = tmp_path / "stack.toml"
    path.write_text('[envs.e]\n[services.s]\nenv = "e"\ncommand = ["python", "x.py"]\nport = 9\n'
                    'modes = ["native"]\nreload = "warm"\n')
    with pytest.raises(StackError) as err:
        load_stack(path)
    assert "services.s.reload: 'warm' re-imports an ASGI app, so it needs 'app'" in str(err.value)
