"""`inv prefetch` errors through the real CLI (`python -m invoke`): one clear line, a fix, an exit
code, never a traceback; the token advice names where the token really came from."""

from __future__ import annotations

import json
import re

import pytest

from duplex.envfile import write_secret
from tests.conftest import run_inv
from tests.models.conftest import TINY
from tests.support.hub import GATED, GOOD_TOKEN, FakeHub
from tests.support.stacks import write_stack


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run `inv prefetch ARGS` in a small project of its own, against `endpoint`, no HF_TOKEN."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    root = tmp_path / "project"
    write_stack(root, api_port=18080, api_models=f'["{TINY}"]')

    def run(*args: str, endpoint: str, hf_home=None, env: dict | None = None):
        proc = run_inv("prefetch", *args, cwd=root, env={
            "DUPLEX_STACK": str(root / "stack.toml"), "HF_ENDPOINT": endpoint,
            "HF_HOME": str(hf_home or tmp_path / "hf"), **(env or {})})
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
        return proc

    run.root = root
    return run


def test_unknown_repo_on_the_mirror(cli, hub):
    proc = cli("--repo", "acme/nope", endpoint=hub.endpoint)
    assert proc.returncode == 1
    assert f"duplex: acme/nope: no such model on {hub.endpoint}" in proc.stderr
    assert "fix: check the name" in proc.stderr and "inv setup --hf-token" in proc.stderr
    assert not (cli.root / "models.lock").exists()


def test_hub_down(cli, dead_endpoint):
    proc = cli("--repo", TINY, endpoint=dead_endpoint)
    assert proc.returncode == 1
    assert f"duplex: the hub at {dead_endpoint} did not answer" in proc.stderr
    assert "fix: check the network or HF_ENDPOINT" in proc.stderr


def test_usage_errors_are_refused_before_anything_runs(cli, dead_endpoint):
    proc = cli("--revision", "v1", endpoint=dead_endpoint)  # once silently ignored
    assert proc.returncode == 2 and "--revision needs --repo ORG/NAME" in proc.stderr
    proc = cli("--repo", TINY, "--services", "api", endpoint=dead_endpoint)
    assert proc.returncode == 2 and "either --repo or --services" in proc.stderr


def test_the_stack_models_with_a_pinned_revision_through_the_cli(cli, hub, tmp_path):
    proc = cli("--json", endpoint=hub.endpoint)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [(m["repo"], m["commit"], m["status"]) for m in report["models"]] == [(TINY, hub.tiny, "downloaded")]
    proc = cli("--repo", TINY, "--revision", hub.tiny, "--json", endpoint=hub.endpoint)
    assert proc.returncode == 0 and json.loads(proc.stdout)["models"][0]["status"] == "cached"


def test_disk_full_mid_download_through_the_cli(cli, hub, small_disk):
    """40 files of 10 bytes on a 64 kB disk: 400 bytes pass the up-front check, but each file
    takes a 4 kB page, so the kernel says ENOSPC after 16 of them, in the middle of the download."""
    hub.mirror.repo("acme/many").commit({f"part{i:02}.txt": b"part %02d.\n" % i for i in range(40)})
    disk = small_disk("64k")
    proc = cli("--repo", "acme/many", endpoint=hub.endpoint, hf_home=disk / "hf")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "duplex: the disk filled up while downloading acme/many/part" in proc.stderr
    assert "point HF_HOME (or HF_HUB_CACHE) at a larger disk" in proc.stderr
    # What is left counted in whole 4 kB pages, as the disk stores it, not as 10-byte files:
    assert float(re.search(r"free at least ([\d.]+) kB there", proc.stderr)[1]) >= 4.0
    assert "UserWarning" not in proc.stderr
    assert not list(disk.rglob("*.incomplete")) and not (cli.root / "models.lock").exists()


def test_token_advice_names_the_token_saved_in_dotenv(cli):
    """`inv setup --hf-token` saves to .env (write_secret); tasks.py loads it into HF_TOKEN."""
    write_secret(cli.root, "HF_TOKEN", "hf_revoked_token_123")
    with FakeHub() as fake:
        proc = cli("--repo", GATED, endpoint=fake.endpoint)
        assert proc.returncode == 1
        assert "rejected the token from .env (saved by `inv setup --hf-token`)" in proc.stderr
        assert "save it with `inv setup --hf-token hf_...` (it replaces the one in .env)" in proc.stderr
        assert "hf_revoked_token_123" not in proc.stdout + proc.stderr

        exported = cli("--repo", GATED, endpoint=fake.endpoint, env={"HF_TOKEN": "hf_other_bad_token"})
        assert "rejected the token from HF_TOKEN" in exported.stderr  # HF_TOKEN wins over .env
        assert "set HF_TOKEN to it (HF_TOKEN wins over .env)" in exported.stderr

        write_secret(cli.root, "HF_TOKEN", GOOD_TOKEN)  # valid, but the licence is not accepted
        gated = cli("--repo", GATED, endpoint=fake.endpoint)
        assert gated.returncode == 1 and "is gated" in gated.stderr
        assert "token from .env (saved by `inv setup --hf-token`)" in gated.stderr
        assert "accept the licence" in gated.stderr and GOOD_TOKEN not in gated.stdout + gated.stderr


def test_a_pin_the_hub_lost_through_the_cli(cli, hub, tmp_path):
    """models.lock (committed by a teammate) pins a commit the hub no longer serves: `inv prefetch`
    on a fresh cache says exactly that with the fix, and the fix it names works."""
    assert cli("--repo", TINY, endpoint=hub.endpoint, hf_home=tmp_path / "first").returncode == 0
    lock = cli.root / "models.lock"
    good = re.search(r'commit = "([0-9a-f]{40})"', lock.read_text()).group(1)
    lock.write_text(lock.read_text().replace(good, "f" * 40))
    proc = cli("--repo", TINY, endpoint=hub.endpoint)
    assert proc.returncode == 1
    assert f"duplex: models.lock pins {TINY} at ffffffffffff, a commit {hub.endpoint} no longer has" in proc.stderr
    assert f"fix: `inv prefetch --repo {TINY} --update`" in proc.stderr
    assert "local cache" not in proc.stderr
    assert cli("--repo", TINY, "--update", endpoint=hub.endpoint).returncode == 0
    assert good in lock.read_text()
