"""The README's first command, `inv setup run --native`, as one invoke call (detached so it returns)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT
from tests.support.net import free_port
from tests.support.stackcopy import copy_stack


def test_setup_then_run_native_in_one_call_serves_the_default_stack(tmp_path):
    root = copy_stack(tmp_path / "stack", "quickstart")
    ports = {"asr": free_port(), "frontend": free_port()}
    env = {**os.environ, "DUPLEX_STACK": str(root / "stack.toml"),
           **{f"DUPLEX_PORT_{n.upper()}": str(p) for n, p in ports.items()}}
    inv = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]
    try:
        done = subprocess.run([*inv, "setup", "run", "--native", "--detach"], cwd=root, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "asr" in done.stderr and "frontend" in done.stderr  # setup's lines, then the run's
        status = json.loads(subprocess.run([*inv, "status", "--json"], cwd=root, env=env, capture_output=True,
                                           text=True, timeout=60).stdout)
        assert {r["name"]: (r["mode"], r["healthy"]) for r in status} == {
            "asr": ("native", True), "frontend": ("native", True)}
    finally:
        subprocess.run([*inv, "stop", "--all"], cwd=root, env=env, capture_output=True, timeout=120)
