"""Bad stack files: one clear message per problem through the real CLI, never a traceback."""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.conftest import run_inv

GOOD = """
[envs.app]
[services.api]
env = "app"
app = "servers.api:app"
port = 9100
dockerfile = "dockerfiles/api.Dockerfile"
"""


def inv_config(tmp_path, text: str, *args: str):
    stack = tmp_path / "stack.toml"
    stack.write_text(textwrap.dedent(text))
    return run_inv("config", "--json", *args, env={"DUPLEX_STACK": str(stack)})


def assert_user_error(proc, *fragments: str):
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, f"{fragment!r} not in:\n{proc.stderr}"


def test_good_minimal_stack_plans(tmp_path):
    proc = inv_config(tmp_path, GOOD)
    assert proc.returncode == 0, proc.stderr
    assert [s["name"] for s in json.loads(proc.stdout)["services"]] == ["api"]


def test_toml_syntax_error_names_the_line(tmp_path):
    proc = inv_config(tmp_path, GOOD + "\n[services.broken\nport = 1\n")
    assert_user_error(proc, "stack.toml", "TOML syntax error", "line 9", "9 | [services.broken")


def test_bad_health_spec(tmp_path):
    proc = inv_config(tmp_path, GOOD + 'health = "health"\n')
    assert_user_error(proc, "services.api.health", "'/health' or 'ws:/api/chat'")


def test_missing_file(tmp_path):
    proc = run_inv("config", env={"DUPLEX_STACK": str(tmp_path / "nope.toml")})
    assert_user_error(proc, "nope.toml", "file not found", "DUPLEX_STACK")


@pytest.mark.parametrize(("extra", "fragments"), [
    ("prot = 80", ["services.api.prot: unknown key"]),
    ('gpu = "maybe"', ["services.api.gpu", "'none', 'optional' or 'required'", "'maybe'"]),
    ('modes = ["native", "kubernetes"]', ["services.api.modes[1]", "'native' or 'container'", "'kubernetes'"]),
    ('start_timeout = -1', ["services.api.start_timeout", "greater than 0", "-1"]),
    ('models = ["whisper"]', ["services.api.models", "ORG/NAME"]),
])
def test_wrong_keys_and_types(tmp_path, extra, fragments):
    proc = inv_config(tmp_path, GOOD + extra + "\n")
    assert_user_error(proc, *fragments)


def test_wrong_type_says_expected_and_found(tmp_path):
    proc = inv_config(tmp_path, GOOD.replace("port = 9100", 'port = "ninety"'))
    assert_user_error(proc, "services.api.port", "integer", "'ninety'")


def test_unknown_env_and_unknown_dependency_and_template(tmp_path):
    proc = inv_config(tmp_path, GOOD.replace('env = "app"', 'env = "nope"') + """
depends_on = ["db"]
[services.api.environment]
DB_URL = "{cache.url}"
""")
    assert_user_error(proc, "services.api.env: unknown env 'nope'",
                      "services.api.depends_on: unknown service 'db'",
                      "services.api.environment.DB_URL: template names unknown service 'cache'",
                      "3 problems")


def test_dependency_cycle(tmp_path):
    proc = inv_config(tmp_path, GOOD + """depends_on = ["worker"]
[services.worker]
env = "app"
command = ["python", "-m", "worker"]
port = 9101
dockerfile = "dockerfiles/api.Dockerfile"
depends_on = { api = {} }
""")
    assert_user_error(proc, "dependency cycle api -> worker -> api")


def test_two_services_on_one_port(tmp_path):
    proc = inv_config(tmp_path, GOOD + """
[services.other]
env = "app"
app = "servers.other:app"
port = 9100
dockerfile = "dockerfiles/other.Dockerfile"
""")
    assert_user_error(proc, "services.other.port: 9100 is already used by services.api")


def test_app_and_command_are_exclusive_and_container_needs_a_recipe(tmp_path):
    proc = inv_config(tmp_path, GOOD.replace('dockerfile = "dockerfiles/api.Dockerfile"',
                                            'command = ["x"]'))
    assert_user_error(proc, "exactly one of 'app'", "needs 'dockerfile' or 'image'")


def test_unknown_service_on_the_command_line(tmp_path):
    proc = inv_config(tmp_path, GOOD, "--services", "api,nope")
    assert_user_error(proc, "unknown service: nope", "choose from: api")


def test_bad_port_override(tmp_path):
    stack = tmp_path / "stack.toml"
    stack.write_text(GOOD)
    proc = run_inv("config", env={"DUPLEX_STACK": str(stack), "DUPLEX_PORT_API": "http"})
    assert_user_error(proc, "DUPLEX_PORT_API='http' is not a port number")


def with_env(*lines: str) -> str:
    return GOOD.replace("[envs.app]\n", "[envs.app]\n" + "".join(line + "\n" for line in lines))


@pytest.mark.parametrize(("value", "expected"), [
    ("3.13", "a version or range that admits a Python in 3.10-3.12"),
    (">=3.13", "a version or range that admits a Python in 3.10-3.12"),
    ("<3.10", "a version or range that admits a Python in 3.10-3.12"),
    ("three", "a version like '3.11' or a range like '>=3.10,<3.13'"),
    ("", "a version like '3.11' or a range like '>=3.10,<3.13'"),
])
def test_env_python_outside_3_10_to_3_12_is_rejected_at_load(tmp_path, value, expected):
    proc = inv_config(tmp_path, with_env(f'python = "{value}"'))
    assert_user_error(proc, "stack.toml", f"envs.app.python: expected {expected}", f"found {value!r}", "1 problem")


@pytest.mark.parametrize("value", ["3.10", "3.12.4", ">=3.11", ">=3.12,<3.14", "~=3.11.0"])
def test_env_python_that_admits_a_supported_version_loads(tmp_path, value):
    proc = inv_config(tmp_path, with_env(f'python = "{value}"'))
    assert proc.returncode == 0, proc.stderr


def test_setup_fails_on_a_bad_env_the_same_way_before_any_work(tmp_path):
    stack = tmp_path / "stack.toml"
    stack.write_text(with_env('python = "3.13"', 'fixes = ["nemo"]'))
    proc = run_inv("setup", "--env", "app", env={"DUPLEX_STACK": str(stack)})
    assert_user_error(proc, "envs.app.python: expected", "found '3.13'",
                      "envs.app.fixes: unknown fix 'nemo'; expected names of known fixes (lhotse)", "2 problems")
    assert not (tmp_path / ".duplex").exists()


def test_unknown_fix_is_rejected_at_load_and_known_ones_load(tmp_path):
    proc = inv_config(tmp_path, with_env('fixes = ["lhotse", "nemo", "sox"]'))
    assert_user_error(proc, "envs.app.fixes: unknown fix 'nemo', 'sox'; expected names of known fixes (lhotse)",
                      "found ['lhotse', 'nemo', 'sox']")
    assert inv_config(tmp_path, with_env('fixes = ["lhotse"]')).returncode == 0


def test_system_libs_is_the_name_and_system_its_older_alias(tmp_path):
    from duplex.stack import load_stack
    for key in ("system_libs", "system"):
        proc = inv_config(tmp_path, with_env(f'{key} = ["opus"]'))
        assert proc.returncode == 0, proc.stderr
        env = load_stack(tmp_path / "stack.toml").envs["app"]
        assert env.system_libs == env.system == ["opus"], key
    proc = inv_config(tmp_path, with_env('system_libs = ["opus"]', 'system = ["opus"]'))
    assert_user_error(proc, "envs.app.system: expected `system_libs` or its older name `system`, found both")
    proc = inv_config(tmp_path, with_env('system_libs = "opus"'))
    assert_user_error(proc, "envs.app.system_libs", "valid list", "'opus'")


def test_the_shipped_stack_uses_system_libs():
    from duplex.stack import load_stack
    from tests.conftest import ROOT
    assert load_stack(ROOT / "stack.toml").envs["moshi"].system_libs == ["opus"]
    assert 'system_libs = ["opus"]' in (ROOT / "stack.toml").read_text()
