"""`inv publish` through the real CLI: both outputs land in --out; failures exit non-zero with a
clear message, no traceback, and leave no half-written output."""

from __future__ import annotations

import json
import sys

from tests.conftest import run_inv
from tests.publish.conftest import copy_default


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_publish_writes_compose_and_manifests_into_out(tmp_path):
    stack = copy_default(tmp_path / "repo", "clipub")
    out = tmp_path / "elsewhere" / "deploy"
    proc = run_inv("publish", "--out", str(out), "--json", env={"DUPLEX_STACK": str(stack)},
                   cwd=tmp_path, timeout=300, check=True)
    report = json.loads(proc.stdout)
    assert report["out"] == str(out) and report["services"] == ["asr", "moshi", "frontend"]
    assert sorted(report["files"]) == sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert {"compose.yaml", "compose.cpu.yaml", "k8s/kustomization.yaml", "k8s/moshi.yaml"} <= set(report["files"])
    assert report["validated"]["compose"].startswith("docker compose 2.")
    assert report["validated"]["kubernetes"].startswith("kubernetes-validate, strict")
    # A relative --out is beside stack.toml, not the working directory; --compose writes only Compose.
    proc = run_inv("publish", "--compose", "--out", "rel", env={"DUPLEX_STACK": str(stack)},
                   cwd=tmp_path, timeout=300, check=True)
    assert sorted(p.name for p in (stack.parent / "rel").iterdir()) == ["compose.cpu.yaml", "compose.yaml"]
    assert "published stack 'clipub'" in proc.stdout and not (tmp_path / "rel").exists()


def test_unknown_service_is_refused_before_anything_is_written(tmp_path):
    stack = copy_default(tmp_path / "repo", "clipub")
    out = tmp_path / "deploy"
    proc = run_inv("publish", "--services", "asr,nope", "--out", str(out), env={"DUPLEX_STACK": str(stack)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "unknown service: nope" in proc.stderr and "choose from: asr, " in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not out.exists()


def test_a_rejected_file_leaves_the_previous_output_untouched(tmp_path):
    stack = copy_default(tmp_path / "repo", "clipub")
    out = tmp_path / "deploy"
    run_inv("publish", "--out", str(out), env={"DUPLEX_STACK": str(stack)}, timeout=300, check=True)
    before = snapshot(out)
    # A Compose v2 that rejects every file: the run fails after staging, before anything moves.
    fake = tmp_path / "compose-rejects"
    fake.write_text(f"#!{sys.executable}\nimport sys\n"
                    "if sys.argv[1:] == ['version']: print('Docker Compose version v2.99.0'); sys.exit(0)\n"
                    "sys.exit('services.asr: rejected by the test')\n")
    fake.chmod(0o755)
    env = {"DUPLEX_STACK": str(stack), "DUPLEX_COMPOSE": str(fake)}
    text = stack.read_text().replace('port = 8000', 'port = 8001', 1)  # so the new output would differ
    stack.write_text(text)
    proc = run_inv("publish", "--out", str(out), env=env, timeout=300)
    assert proc.returncode == 1 and "Compose rejected compose.yaml" in proc.stderr, proc.stderr
    assert "rejected by the test" in proc.stderr and "Traceback" not in proc.stderr
    assert snapshot(out) == before  # old files byte for byte, no staged temp files
    # Into a folder that did not exist: not even an empty one is left behind.
    proc = run_inv("publish", "--out", str(tmp_path / "fresh" / "deploy"), env=env, timeout=300)
    assert proc.returncode == 1 and not (tmp_path / "fresh").exists()
