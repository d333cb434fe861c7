"""The task surface through the real CLI: every task listed, setup/preflight/prefetch wired."""

from __future__ import annotations

import importlib
import json
import re
import sys

from tests.conftest import run_inv


def listed_tasks(out: str) -> dict[str, str]:
    """Task -> help, parsed from `inv --list` (invoke wraps long help onto indented lines)."""
    tasks: dict[str, str] = {}
    name = None
    for line in out.splitlines():
        if found := re.match(r"^  (\S+)(?:\s+(\S.*))?$", line):
            name = found.group(1)
            tasks[name] = found.group(2) or ""
        elif name and line.startswith("   ") and line.strip():
            tasks[name] += " " + line.strip()
    return tasks


def test_every_task_has_one_line_help():
    from invoke import Collection

    from tests.conftest import ROOT
    proc = run_inv("--list", check=True)
    listed = listed_tasks(proc.stdout)
    assert {"config", "setup", "lock", "prefetch", "preflight", "run", "status", "logs", "stop", "vendor-moshi",
            "publish", "smoke", "certs"} <= set(listed), listed
    sys.path.insert(0, str(ROOT))
    try:
        defined = Collection.from_module(importlib.import_module("tasks"))
    finally:
        sys.path.remove(str(ROOT))
    assert set(listed) == set(defined.task_names), "a task is missing from `inv --list`"
    for name, help_text in listed.items():
        assert help_text.strip(), f"{name} has no help in `inv --list`"
        doc = (defined[name].__doc__ or "").strip()
        assert help_text.split() == doc.splitlines()[0].split(), f"{name}: the list shows more than its first line"


def test_inv_caches_duplex_bytecode_unless_told_not_to(tmp_path):
    """invoke turns bytecode writing off for its whole process (its --write-pyc); tasks.py gives it back,
    so duplex's modules compile once, not on every command. -B / PYTHONDONTWRITEBYTECODE still win."""
    cached, plain = tmp_path / "cached", tmp_path / "plain"
    run_inv("--list", env={"PYTHONPYCACHEPREFIX": str(cached), "PYTHONDONTWRITEBYTECODE": ""}, check=True)
    run_inv("--list", env={"PYTHONPYCACHEPREFIX": str(plain), "PYTHONDONTWRITEBYTECODE": "1"}, check=True)
    assert [p.parent.name for p in cached.rglob("flags.cpython-*.pyc")] == ["duplex"]
    assert list(plain.rglob("*.pyc")) == []


def test_setup_json_builds_or_reuses_the_native_envs():
    rows = json.loads(run_inv("setup", "--json", timeout=600, check=True).stdout)
    assert [r["env"] for r in rows] == ["asr", "frontend"]
    assert all(r["python"].startswith(("3.10", "3.11", "3.12")) for r in rows)
    again = json.loads(run_inv("setup", "--json", check=True).stdout)
    assert [r["state"] for r in again] == ["reused", "reused"]


def test_setup_refuses_an_unknown_env_and_an_out_of_range_python():
    proc = run_inv("setup", "--env", "nope")
    assert proc.returncode == 1 and "unknown env 'nope'" in proc.stderr
    proc = run_inv("setup", "--env", "frontend", "--python", "3.13", "--force")
    assert proc.returncode == 1 and "3.13" in proc.stderr and "Traceback" not in proc.stderr


def test_preflight_fails_a_gpu_service_on_this_machine_with_its_fix():
    proc = run_inv("preflight", "--json", "--services", "moshi")
    assert proc.returncode == 1
    results = {r["name"]: r for r in json.loads(proc.stdout)}
    failed = [r for r in results.values() if r["status"] == "fail"]
    assert failed and all(r["fix"] for r in failed)
    assert any(name.startswith("gpu.") for name in (r["name"] for r in failed))


def test_prefetch_with_nothing_to_fetch_says_so():
    proc = run_inv("prefetch", "--services", "asr,frontend", check=True)
    assert "no models to fetch" in proc.stdout
