"""A trailing newline is no part of a name (issue 28, family 6): every name, variable, reference and
URL rule is a full match (`re.match` with `$` also matched before a final "\\n"), through the real
`inv` from the stack file, the flags and the variables duplex reads."""

from __future__ import annotations

import ast
from pathlib import Path

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


def _anchored(node) -> bool:
    """A regex literal that ends with `$` (not `\\Z`): a match on it also takes a trailing newline."""
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith("$") \
        and not node.value.endswith("\\$")


def test_no_rule_anywhere_is_checked_with_match_on_a_dollar_anchored_pattern():
    """The family, kept closed: every `X.match(...)` / `re.match(PATTERN, ...)` in duplex/, checks/,
    servers/ and tasks.py whose pattern ends with `$` is a bug (use fullmatch). Pydantic's `pattern=`
    runs on Rust's regex, whose `$` is the very end, so those stay."""
    root = Path(__file__).resolve().parents[2]
    files = [*(root / "duplex").rglob("*.py"), *(root / "checks").rglob("*.py"), *(root / "servers").rglob("*.py"),
             root / "tasks.py"]
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in files}
    anchored = {target.id for tree in trees.values() for node in ast.walk(tree) if isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Call) and getattr(node.value.func, "attr", "") == "compile"
                and node.value.args and _anchored(node.value.args[0])
                for target in node.targets if isinstance(target, ast.Name)}
    assert {"NAME", "VARIABLE", "REPO", "VERSION_ONLY", "COMMIT"} <= anchored
    bad = []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "match"):
                continue
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id in anchored or \
                    isinstance(owner, ast.Name) and owner.id == "re" and node.args and _anchored(node.args[0]):
                bad.append(f"{path.relative_to(root)}:{node.lineno}")
    assert not bad, f"use fullmatch: {bad}"
