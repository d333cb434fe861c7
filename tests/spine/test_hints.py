"""Every `inv ...` command duplex tells people to type parses against the real task signatures:
the hints and fixes in duplex/, checks/, servers/ and tasks.py (string constants and f-strings, placeholders
filled in), and the code spans and code blocks of docs/ and README.md. An unknown flag, a missing
flag value or a positional the task does not take fails here, as invoke would fail the user
(`inv logs asr` answered "No idea what 'asr' is!" while `inv run --detach` suggested it)."""

from __future__ import annotations

import ast
import importlib
import re
import shlex
import sys

import pytest
from invoke import Collection, Program
from invoke.parser import ParseError, Parser

from tests.conftest import ROOT, run_inv

CODE = [*(p for d in ("duplex", "checks", "servers") for p in sorted((ROOT / d).rglob("*.py"))), ROOT / "tasks.py"]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SPAN = re.compile(r"`([^`\n]*\binv [^`\n]*)`")
# Where a command ends in plain text (a fix that is not in backticks): the end of the string, or
# punctuation and words that are not part of a command line.
PLAIN = re.compile(r"\binv ([a-z][^`\n]*?)(?=$|[)`;,\"'<]| && | and | or | then | to | if |: |\.\s)")
PLACEHOLDER = "x1"  # what an f-string's {value} becomes: a name every flag value accepts


def _text_of(node: ast.AST) -> str | None:
    """A string constant, or an f-string with each {...} as a placeholder value."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else PLACEHOLDER for v in node.values)
    return None


def _code_commands(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parts = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
    for node in ast.walk(tree):
        text = _text_of(node) if id(node) not in parts else None  # an f-string's pieces: read whole
        if text and "inv " in text:
            yield from _commands(text, plain=True)


def _doc_commands(path):
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            found = re.match(r"\s*(?:\$ )?(?:\S+=\S+ )*(inv [^#\n]*)", line)
            if found:
                yield found.group(1).strip()
        else:
            yield from _commands(line, plain=False)


def _commands(text: str, *, plain: bool):
    for span in SPAN.findall(text):
        for part in re.split(r" && | \| |; ", span):
            if re.search(r"(^|\s)inv ", part):
                yield "inv " + part.split("inv ", 1)[1].strip()
    if plain:
        for found in PLAIN.finditer(SPAN.sub("", text)):
            yield "inv " + found.group(1).strip()


def _argv(command: str) -> list[str]:
    """The command as a user would type it: `[...]` optional parts given, the first of `a|b`."""
    command = command.replace("\\|", "|").replace("…", "...")
    command = re.sub(r"\s+\|[^\]]*(?=\])", "", command)  # [--env NAME | --all]: the first way
    command = re.sub(r"(\S+)\|\S+", r"\1", command.replace("[", "").replace("]", ""))  # --code|--model
    command = " ".join(w for w in command.split(" ") if w != "...")  # `inv run ...`: more of the same
    try:
        return shlex.split(command)[1:]
    except ValueError:  # an unbalanced quote in a placeholder (`--tag " + ...`): words will do
        return command.split()[1:]


@pytest.fixture(scope="module")
def parser():
    sys.path.insert(0, str(ROOT))
    try:
        tasks = Collection.from_module(importlib.import_module("tasks"))
    finally:
        sys.path.remove(str(ROOT))
    return tasks, lambda: Parser(initial=Program().initial_context, contexts=tasks.to_contexts())


def _problem(command: str, tasks, make_parser) -> str | None:
    argv = _argv(command)
    if not argv:
        return None
    if argv[0] in ("--help", "-h", "--list", "-l"):
        return None if len(argv) == 1 or argv[1].isupper() or argv[1] in tasks.task_names else "no such task"
    if argv[0] not in tasks.task_names:
        return f"no task {argv[0]!r}"
    try:
        make_parser().parse_argv(argv)
    except ParseError as err:
        if len(argv) == 1 and "did not receive required positional" in str(err):
            return None  # the task named in prose (`inv restart` restarts one service)
        if argv[-1].startswith("-") and "needed value and was not given one" in str(err):
            return None  # a flag named in prose (`inv setup --hf-token` writes .env), or a piece of a
            # string joined with + whose value follows
        return str(err)
    return None


def _all_commands():
    for path in CODE:
        for command in _code_commands(path):
            yield path, command
    for path in DOCS:
        for command in _doc_commands(path):
            yield path, command


def test_every_inv_command_duplex_prints_or_documents_parses(parser):
    tasks, make_parser = parser
    seen = list(_all_commands())
    assert len(seen) > 300, len(seen)  # the collection itself works: hundreds of commands
    assert any(c.startswith("inv logs") for p, c in seen if p.name == "start.py")  # the detached run's hint
    bad = sorted({f"{p.relative_to(ROOT)}: {c!r}: {why}" for p, c in seen
                  if (why := _problem(c, tasks, make_parser))})
    assert not bad, "\n".join(bad)


def test_the_checker_fails_what_invoke_refuses(parser):
    tasks, make_parser = parser
    assert "No idea what 'asr' is" in _problem("inv logs asr --follow", tasks, make_parser)
    assert _problem("inv stop NAME", tasks, make_parser)
    assert _problem("inv run --nope", tasks, make_parser)
    assert _problem("inv restart NAME extra", tasks, make_parser)
    assert _problem("inv nosuch", tasks, make_parser)
    assert _problem("inv restart NAME --code|--model", tasks, make_parser) is None
    assert list(_commands("fix=run inv prefetch --repo x1 --update, then again", plain=True)) == \
        ["inv prefetch --repo x1 --update"]


def test_the_detached_runs_hint_is_a_command_that_works(tmp_path):
    """The hint `inv run --detach` ends with, run for real: the log command answers, not invoke."""
    from duplex.run.start import DETACHED_HINT
    for command in re.findall(r"`(inv [^`]*)`", DETACHED_HINT):
        argv = [a.replace("NAME", "asr") for a in _argv(command) if a != "--follow"]
        proc = run_inv(*argv, cwd=tmp_path)
        assert "No idea what" not in proc.stderr and "did not receive" not in proc.stderr, (command, proc.stderr)
