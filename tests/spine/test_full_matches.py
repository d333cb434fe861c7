"""A trailing newline is no part of a name (issue 28, family 6): every name, variable, reference and
URL rule is a full match (`re.match` with `$` also matched before a final "\\n"), through the real
`inv` from the stack file, the flags and the variables duplex reads."""

from __future__ import annotations

import pytest

from tests.spine.test_bad_input import NAME_RULE, inv_in, refused
from tests.spine.test_stack_file import GOOD


@pytest.mark.parametrize(("stack", "words"), [
    (GOOD.replace("[services.api]", '[services."web\\n"]'), "services: expected service names of " + NAME_RULE),
    (GOOD.replace("[envs.app]", '[envs."app\\n"]').replace('env = "app"', 'env = "app\\n"'),
     "envs: expected env names of"),
    (GOOD + '[services.api.environment]\n"EXTRA_VAR\\n" = "1"\n', "services.api.environment: expected variable names"),
    (GOOD + 'secrets = ["HF_TOKEN\\n"]\n', "services.api.secrets: expected names of host variables"),
    (GOOD + 'depends_on = ["api\\n"]\n', "services.api.depends_on: expected service names"),
    (GOOD + 'models = ["org/name\\n"]\n', "services.api.models: expected 'ORG/NAME' or 'ORG/NAME@REVISION'"),
    ('[stack]\notlp_endpoint = "http://127.0.0.1:4318\\n"\n' + GOOD, "stack.otlp_endpoint: expected an http(s) URL"),
    ('[stack]\nbase_image = "reg..example.com/team/python:3.11"\n' + GOOD,
     "stack.base_image: expected an image reference such as 'org/name:tag' (its registry 'reg..example.com'"),
])
def test_the_stack_file_refuses_a_name_with_a_trailing_newline(tmp_path, stack, words):
    refused(inv_in(tmp_path, "config", text=stack), 1, words)


@pytest.mark.parametrize(("args", "words"), [
    (("logs", "--service", "api\n"), "--service 'api\\n': service names are " + NAME_RULE),
    (("prefetch", "--repo", "org/name\n"), "--repo 'org/name\\n': expected ORG/NAME"),
    (("config", "--otlp", "http://127.0.0.1:4318\n"), "--otlp 'http://127.0.0.1:4318\\n' is not a collector URL"),
    (("publish", "--k8s", "--argocd", "https://github.com/team/app.git\n"),
     "--argocd 'https://github.com/team/app.git\\n' is not a git repository URL"),
])
def test_a_flag_with_a_trailing_newline_is_refused(tmp_path, args, words):
    proc = inv_in(tmp_path, *args)
    assert proc.returncode in (1, 2), proc.stdout + proc.stderr
    refused(proc, proc.returncode, f"duplex: {words}")


@pytest.mark.parametrize("value", ["python:3.11\n", "reg..example.com/python:3.11", "localhost:99999/python:3.11"])
def test_duplex_base_image_is_checked_as_a_whole(tmp_path, value):
    proc = inv_in(tmp_path, "config", env={"DUPLEX_BASE_IMAGE": value})
    refused(proc, 1, f"duplex: DUPLEX_BASE_IMAGE={value!r} is not an image reference")
