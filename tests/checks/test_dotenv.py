"""`.env` the way other tools write it (issue 18, family 5): quoted values, `export` lines and
comments are read as dotenv and Compose read them, `inv setup --hf-token` replaces every line that
sets the token (exported or not), atomically and 0600, and refuses a token with a newline. Through
the real `inv` against a hub-like server that checks the Authorization header it gets."""

from __future__ import annotations

import json

import pytest

from duplex.envfile import read_env, read_secret, write_secret
from tests.conftest import run_inv

TOKEN, OLD = "hf_goodgoodgoodgoodgoodgood", "hf_oldoldoldoldoldoldold"
STACK = """
[services.api]
command = ["serve"]
port = 9300
modes = ["container"]
image = "org/api:1"
models = ["org/public"]
"""


def inv(project, hub, *args):
    return run_inv(*args, cwd=project, env={"DUPLEX_STACK": str(project / "stack.toml"), "HF_ENDPOINT": hub.url,
                                            "HF_TOKEN": "", "HF_HOME": str(project / "hf"),
                                            "HF_TOKEN_PATH": str(project / "no-token")})


@pytest.fixture
def project(tmp_path, hub_server):
    hub_server.tokens[TOKEN] = "alice"
    hub_server.add_model("org/public")
    (tmp_path / "stack.toml").write_text(STACK)
    return tmp_path


@pytest.mark.parametrize("line", [f'HF_TOKEN="{TOKEN}"', f"HF_TOKEN='{TOKEN}'", f"export HF_TOKEN={TOKEN}",
                                  f'export HF_TOKEN="{TOKEN}"  # from the team wiki', f"HF_TOKEN = {TOKEN}"])
def test_a_token_written_by_other_tools_is_read_as_dotenv_reads_it(project, hub_server, line):
    (project / ".env").write_text(f"# tools write comments\nOTHER=1\n{line}\n")
    proc = inv(project, hub_server, "preflight", "--json")
    token = next(r for r in json.loads(proc.stdout) if r["name"] == "token")
    assert token["status"] == "pass" and "valid for user alice" in token["detail"], token
    assert "from .env" in token["detail"]
    assert ("/api/whoami-v2", True) in hub_server.seen  # sent as `Bearer hf_...`, no quotes: accepted


def test_setup_replaces_every_line_that_sets_the_token_and_keeps_the_rest(project, hub_server):
    (project / ".env").write_text(f"# mine\nexport HF_TOKEN={OLD}\nOTHER='keep me'\nHF_TOKEN=\"{OLD}\"\nLAST=1")
    (project / ".env").chmod(0o644)
    proc = inv(project, hub_server, "setup", "--hf-token", TOKEN)
    assert proc.returncode == 0, proc.stderr
    text = (project / ".env").read_text()
    assert text == f"# mine\nHF_TOKEN={TOKEN}\nOTHER='keep me'\nLAST=1\n"  # was: the export line kept the old one
    assert (project / ".env").stat().st_mode & 0o777 == 0o600
    assert not [p for p in project.iterdir() if p.name.endswith(".tmp")]
    assert TOKEN not in proc.stdout + proc.stderr
    token = next(r for r in json.loads(inv(project, hub_server, "preflight", "--json").stdout) if r["name"] == "token")
    assert token["status"] == "pass"


@pytest.mark.parametrize("bad", [f"{TOKEN}\nEVIL=1", f" {TOKEN}", f"{TOKEN}\r", ""])
def test_a_token_that_would_write_another_line_is_refused(project, hub_server, bad):
    (project / ".env").write_text("OTHER=1\n")
    proc = inv(project, hub_server, "setup", "--hf-token", bad)
    assert proc.returncode == 2 and "--hf-token: it " in proc.stderr, proc.stderr
    assert (project / ".env").read_text() == "OTHER=1\n"
    assert "EVIL" not in read_env(project)


def test_values_round_trip_through_the_parser_whatever_they_hold(tmp_path):
    for value in ("plain_token-1.2", "with space", "it's", 'say "hi"', "a\\b", "$HOME", "#not-a-comment"):
        write_secret(tmp_path, "KEY", value)
        assert read_secret(tmp_path, "KEY") == value, (value, (tmp_path / ".env").read_text())


@pytest.mark.parametrize(("line", "words"), [
    (f'HF_TOKEN="{TOKEN[:10]}\n{TOKEN[10:]}"', "it holds a control character ('\\n')"),  # a quoted line break
    (f"HF_TOKEN={TOKEN}\u20ac", "it holds '\u20ac', a character no HTTP header can carry"),
])
def test_a_malformed_token_in_dotenv_is_named_malformed_not_a_network_problem(project, hub_server, line, words):
    """Before: the header could not be built, and preflight said it "could not reach" the hub with a
    network fix. Nothing is sent: the hub never sees the broken token."""
    (project / ".env").write_text(f"OTHER=1\n{line}\n")
    proc = inv(project, hub_server, "preflight", "--json")
    results = {r["name"]: r for r in json.loads(proc.stdout)}
    token = results["token"]
    assert token["status"] == "fail", token
    assert "the token from .env (saved by `inv setup --hf-token`) is malformed: " + words in token["detail"], token
    assert "inv setup --hf-token" in token["fix"] and "proxy" not in token["fix"], token
    assert results["token.org/public"]["status"] == "skip"
    assert ("/api/whoami-v2", True) not in hub_server.seen
    assert TOKEN[10:] not in proc.stdout + proc.stderr


@pytest.mark.parametrize("line", [f'HF_TOKEN="{TOKEN[:10]}\n{TOKEN[10:]}"', f"HF_TOKEN={TOKEN}\u20ac"])
def test_prefetch_names_a_malformed_dotenv_token_before_asking_the_hub(project, hub_server, line):
    """Before: `UnicodeEncodeError: 'ascii' codec can't encode …` (outside Latin-1), or the request
    went out with a broken header."""
    (project / ".env").write_text(f"{line}\n")
    proc = inv(project, hub_server, "prefetch", "--repo", "org/public")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "duplex: the token from .env (saved by `inv setup --hf-token`) is malformed: it holds" in proc.stderr
    assert "inv setup --hf-token" in proc.stderr and "UnicodeEncodeError" not in proc.stderr
    assert not hub_server.seen
