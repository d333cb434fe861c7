"""Input checked where it enters (issue 18, family 4): the stack file's model refuses bad values at
load with its one-line message, names follow one rule everywhere, user files that are not UTF-8
text (or not files) are one clear line, and every CLI flag is validated with a usage error (exit 2).
All through the real `inv`."""

from __future__ import annotations

import json
import os
import textwrap

import pytest

from tests.conftest import run_inv
from tests.spine.test_stack_file import GOOD


def inv_in(folder, *args: str, text: str | None = GOOD, env: dict | None = None):
    if text is not None:
        (folder / "stack.toml").write_text(textwrap.dedent(text))
    return run_inv(*args, env={"DUPLEX_STACK": str(folder / "stack.toml"), **(env or {})}, cwd=folder)


def refused(proc, code: int, *fragments: str) -> None:
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, f"{fragment!r} not in:\n{proc.stderr}"


NAME_RULE = "lower-case letters, digits and '-', starting with a letter, at most 63 characters"


@pytest.mark.parametrize(("stack", "fragments"), [
    # names: one rule (inv publish's), for services, envs and the stack
    (GOOD.replace("[services.api]", '[services."../../x"]'), ["services: expected service names of", "'../../x'"]),
    (GOOD.replace("[services.api]", "[services.Api]"), ["expected service names", "'Api'"]),
    (GOOD.replace("[services.api]", "[services.my_asr]"), ["expected service names", "'my_asr'"]),
    (GOOD.replace("[services.api]", '[services."a.b"]'), ["expected service names", "'a.b'"]),
    (GOOD.replace("[services.api]", '[services."my api"]'), ["expected service names", "'my api'"]),
    (GOOD.replace("[envs.app]", '[envs."../e"]').replace('env = "app"', 'env = "../e"'),
     ["envs: expected env names of", "'../e'"]),
    ('[stack]\nname = "My_Stack"\n' + GOOD, ["stack.name: expected " + NAME_RULE, "'My_Stack'"]),
    # types: strict, so a bool is no port and a string no number
    (GOOD.replace("port = 9100", "port = true"), ["services.api.port: input should be a valid integer, found True"]),
    (GOOD.replace("port = 9100", "port = 9100.5"), ["services.api.port: input should be a valid integer"]),
    (GOOD + "start_timeout = inf\n", ["services.api.start_timeout: input should be a finite number, found inf"]),
    (GOOD + "start_timeout = nan\n", ["services.api.start_timeout: input should be a finite number"]),
    (GOOD + "start_timeout = 1e300\n", ["services.api.start_timeout: input should be less than or equal to 86400"]),
    (GOOD + "start_timeout = true\n", ["services.api.start_timeout: input should be a valid number, found True"]),
    (GOOD + 'start_timeout = "5"\n', ["services.api.start_timeout: input should be a valid number, found '5'"]),
    # commands, variables, secrets
    (GOOD.replace('app = "servers.api:app"', "command = []"), ["services.api.command: expected the program", "found []"]),
    (GOOD.replace('app = "servers.api:app"', 'command = ["", "x"]'), ["services.api.command: expected the program"]),
    (GOOD + '[services.api.environment]\n"A B" = "1"\n', ["services.api.environment: expected variable names", "'A B'"]),
    (GOOD + '[services.api.environment]\n"A=B" = "1"\n', ["services.api.environment: expected variable names", "'A=B'"]),
    (GOOD + '[services.api.environment]\nA = "x\\u0000y"\n', ["services.api.environment.A: expected text without NUL"]),
    (GOOD.replace('app = "servers.api:app"', 'command = ["serve", "--x\\u0000"]'),
     ["services.api.command[1]: expected text without NUL"]),
    (GOOD + 'secrets = ["", "A B"]\n', ["services.api.secrets: expected names of host variables", "'', 'A B'"]),
    (GOOD + 'depends_on = ["../x"]\n', ["services.api.depends_on: expected service names", "'../x'"]),
    # paths: inside the project, and what must exist does
    (GOOD + 'watch = ["nope"]\n', ["services.api.watch[0]: 'nope' does not exist under"]),
    (GOOD.replace('"dockerfiles/api.Dockerfile"', '"/etc/passwd"'), ["services.api.dockerfile: expected a Dockerfile inside the project"]),
    (GOOD.replace('"dockerfiles/api.Dockerfile"', '"../up.Dockerfile"'), ["services.api.dockerfile: expected a Dockerfile inside"]),
    (GOOD.replace("[envs.app]", '[envs.app]\nrequirements = "/etc/req.in"'), ["envs.app.requirements: expected a requirements file inside"]),
    (GOOD.replace("[envs.app]", '[envs.app]\nsystem_libs = ["../opus"]'), ["envs.app.system_libs: expected library names"]),
    (GOOD.replace('dockerfile = "dockerfiles/api.Dockerfile"', 'image = "Not An Image"'),
     ["services.api.image: expected an image reference such as 'org/name:tag', found 'Not An Image'"]),
])
def test_the_stack_file_refuses_it_at_load_in_one_line(tmp_path, stack, fragments):
    proc = inv_in(tmp_path, "config", "--json", text=stack)
    refused(proc, 1, "stack.toml:", *fragments)
    assert "fix: " in proc.stderr


def test_a_good_stack_with_every_kind_of_value_still_loads(tmp_path):
    (tmp_path / "servers").mkdir()
    proc = inv_in(tmp_path, "config", "--json", text=GOOD + 'start_timeout = 86400\nwatch = ["servers"]\n'
                  'secrets = ["OPENAI_API_KEY"]\n[services.api.environment]\nFLAG = true\nRATE = 0.5\nN = 3\n')
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["services"][0]["health"]["timeout"] == 86400


@pytest.mark.parametrize(("data", "what"), [
    (b"# caf\xe9: a Latin-1 comment\n" + GOOD.encode(), "not valid UTF-8: byte 0xe9 at line 1, column 6"),
    (GOOD.encode("utf-16"), "saved as UTF-16"),
    (GOOD.encode() + b"\0\0", "holds a NUL byte"),
])
@pytest.mark.parametrize("task", [("config",), ("preflight", "--json"), ("run", "--native", "--detach"),
                                  ("publish", "--compose"), ("prefetch", "--dry-run"), ("certs",)])
def test_a_stack_file_that_is_not_utf8_text_is_one_line_for_every_task(tmp_path, data, what, task):
    (tmp_path / "stack.toml").write_bytes(data)
    proc = inv_in(tmp_path, *task, text=None)
    refused(proc, 1, f"duplex: {tmp_path / 'stack.toml'}: 1 problem in the stack file", what, "fix: save the stack file as UTF-8"
            if "UTF" in what else "fix: check that this is the stack file you meant")


def test_a_utf8_byte_order_mark_is_fine(tmp_path):
    (tmp_path / "stack.toml").write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    assert inv_in(tmp_path, "config", text=None).returncode == 0


@pytest.mark.parametrize("where", ["/dev/zero", "folder", "fifo"])
def test_duplex_stack_naming_a_device_a_folder_or_a_pipe_is_refused_at_once(tmp_path, where):
    target = {"/dev/zero": "/dev/zero", "folder": str(tmp_path), "fifo": str(tmp_path / "pipe")}[where]
    if where == "fifo":
        os.mkfifo(target)
    proc = run_inv("config", env={"DUPLEX_STACK": target}, timeout=20)  # /dev/zero once grew memory forever
    refused(proc, 1, f"{target}: 1 problem in the stack file", "not a regular file")


@pytest.mark.parametrize(("name", "data", "task", "words"), [
    (".env", b"HF_TOKEN=hf_abc\xff\n", ("config",), ".env: not valid UTF-8: byte 0xff at line 1, column 16"),
    (".env", b"\xff\xfeH\x00", ("preflight",), ".env: saved as UTF-16"),
    ("models.lock", b"# \xe9\n", ("prefetch", "--dry-run", "--repo", "org/name"), "models.lock: cannot read the model lock"),
    ("envs/app/requirements.in", b"six # \xe9\n", ("lock", "--env", "app"), "requirements.in: not valid UTF-8"),
])
def test_other_files_the_user_edits_are_one_clear_line_too(tmp_path, name, data, task, words):
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_bytes(data)
    proc = inv_in(tmp_path, *task)
    refused(proc, 1, words)


@pytest.mark.parametrize(("args", "words"), [
    (("logs", "--lines", "many"), "--lines 'many' is not a whole number"),
    (("logs", "--lines", "-5"), "--lines '-5' is out of range"),
    (("logs", "--lines", "10000000000"), "--lines '10000000000' is out of range"),
    (("logs", "--service", "../../notes"), "--service '../../notes': service names are " + NAME_RULE),
    (("logs", "--service", "Api"), "--service 'Api': service names are"),
    (("config", "--services", ""), "--services needs at least one service name"),
    (("config", "--services", " , "), "--services needs at least one service name"),
    (("preflight", "--services", "a b"), "--services 'a b': service names are"),
    (("run", "--native", "--services", ""), "--services needs at least one service name"),
    (("run", "--native", "--debug", "../x"), "--debug '../x': service names are"),
    (("stop", "--services", ""), "--services needs at least one service name"),
    (("publish", "--services", ""), "--services needs at least one service name"),
    (("publish", "--registry", "HTTPS://ghcr.io/x"), "--registry 'HTTPS://ghcr.io/x' is not a registry prefix"),
    (("publish", "--out", " "), "--out needs a folder"),
    (("prefetch", "--services", ""), "--services needs at least one service name"),
    (("prefetch", "--repo", ""), "--repo '': expected ORG/NAME"),
    (("prefetch", "--repo", "../../etc"), "--repo '../../etc': expected ORG/NAME"),
    (("prefetch", "--repo", "org/name", "--revision", ""), "--repo 'org/name' --revision '': expected ORG/NAME"),
    (("smoke", "--timeout", "inf"), "--timeout 'inf' is out of range"),
    (("smoke", "--timeout", "soon"), "--timeout 'soon' is not a number"),
    (("smoke", "--timeout", "0"), "--timeout '0' is out of range"),
    (("certs", "--name", "*"), "--name '*': a wildcard"),
    (("certs", "--name", "*.lan"), "--name '*.lan': a wildcard"),
    (("certs", "--name", "my host"), "--name 'my host': not a host name"),
    (("certs", "--name", "0.0.0.0"), "--name '0.0.0.0': 0.0.0.0 is not an address"),
    (("certs", "--name", ""), "--name '': an empty name"),
    (("setup", "--torch", "gpu"), "--torch 'gpu': expected one of auto, cpu, none or cuXXX"),
    (("lock", "--env", "../app"), "--env '../app': env names are"),
    (("vendor-moshi", "--tag", "v0.2.13", "--source", "svn"), "--source 'svn': expected one of pypi, git"),
    (("vendor-moshi", "--tag", "v0.2.13", "--from", ""), "--from needs the path"),
    (("vendor-moshi", "--tag", "v0.2.13", "--source", "git", "--url", "--upload-pack=touch /tmp/x"),
     "--url '--upload-pack=touch /tmp/x' is not a git repository URL"),
    (("vendor-moshi", "--tag", "v0.2.13", "--source", "git", "--url", "ext::sh -c id"),
     "--url 'ext::sh -c id' is not a git repository URL"),
    (("config", "--otlp", "collector"), "--otlp 'collector' is not a collector URL"),
])
def test_every_flag_is_validated_with_a_usage_error(tmp_path, args, words):
    proc = inv_in(tmp_path, *args)
    refused(proc, 2, f"duplex: {words}")


def test_publish_out_naming_a_file_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine\n")
    proc = inv_in(tmp_path, "publish", "--compose", "--out", "notes.txt")
    refused(proc, 1, "--out notes.txt:", "is a file, not a folder")
    assert (tmp_path / "notes.txt").read_text() == "mine\n"


def test_logs_never_reads_a_file_outside_the_project_s_logs(tmp_path):
    (tmp_path / "notes.log").write_text("private notes\n")
    (tmp_path / ".duplex" / "logs").mkdir(parents=True)
    proc = inv_in(tmp_path, "logs", "--service", "../../notes")
    refused(proc, 2)
    assert "private notes" not in proc.stdout + proc.stderr


def test_stop_refuses_a_service_nobody_knows(tmp_path):
    proc = inv_in(tmp_path, "stop", "--services", "nosuch")  # was: "nothing was running"
    refused(proc, 1, "duplex: unknown service: nosuch", "choose from: api")
    ok = inv_in(tmp_path, "stop", "--services", "api")  # a known one that is not running: fine
    assert ok.returncode == 0 and "nothing was running" in ok.stdout


def test_stop_works_even_when_the_stack_file_is_broken(tmp_path):
    proc = inv_in(tmp_path, "stop", text="[services\n")
    assert proc.returncode == 0 and "nothing was running" in proc.stdout, proc.stderr


@pytest.mark.parametrize(("variable", "value", "task", "words"), [
    ("DUPLEX_PREFLIGHT_TIMEOUT", "inf", ("preflight",), "DUPLEX_PREFLIGHT_TIMEOUT='inf' is not a number of seconds"),
    ("DUPLEX_PREFLIGHT_TIMEOUT", "-1", ("preflight",), "DUPLEX_PREFLIGHT_TIMEOUT='-1' is not a number of seconds"),
    ("HF_ENDPOINT", "garbage", ("preflight",), "HF_ENDPOINT='garbage' is not an http(s) URL"),
    ("HF_ENDPOINT", "garbage", ("prefetch", "--repo", "org/name"), "HF_ENDPOINT='garbage' is not an http(s) URL"),
    ("HF_ENDPOINT", "ftp://u:pw@mirror", ("config",), "HF_ENDPOINT='ftp://***@mirror' is not an http(s) URL"),
    ("DUPLEX_BASE_IMAGE", "Not An Image", ("config",), "DUPLEX_BASE_IMAGE='Not An Image' is not an image reference"),
    ("DUPLEX_PORT_API", "http", ("config",), "DUPLEX_PORT_API='http' is not a port number"),
])
def test_the_variables_duplex_reads_are_checked_where_they_enter(tmp_path, variable, value, task, words):
    proc = inv_in(tmp_path, *task, text=GOOD + 'models = ["org/name"]\n', env={variable: value})
    refused(proc, 1, f"duplex: {words}")
    assert "pw" not in proc.stdout + proc.stderr
