"""`inv run --native` with reload = "warm": duplex starts the reloader, edits are served warm, stop cleans up."""

from __future__ import annotations

import time

from tests.run.conftest import group_pids, wait_gone


def test_inv_run_native_serves_edits_warm_and_stop_leaves_nothing(toy):
    path = toy.root / "stack.toml"
    path.write_text(path.read_text().replace('app = "app:app"\nport = 18501',
                                             'app = "app:app"\nport = 18501\nreload = "warm"\nwatch = ["."]', 1))
    proc = toy.inv("run", "--native", "--detach", "--services", "api")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert toy.get("api", "/version") == {"version": "v1"}
    app = toy.root / "app.py"
    began = time.monotonic()
    app.write_text(app.read_text().replace('VERSION = "v1"', 'VERSION = "v2"'))
    while (answer := toy.get("api", "/version")) != {"version": "v2"}:
        assert answer == {"version": "v1"}, answer  # until the edit is served, only the old answer
        assert time.monotonic() - began < 30, toy.inv("logs", "--service", "api").stdout
        time.sleep(0.02)
    assert [toy.get("api", "/version") for _ in range(5)] == [{"version": "v2"}] * 5  # never stale again
    logs = toy.inv("logs", "--service", "api").stdout
    assert "Warm reload: app.py changed; re-imported app:app" in logs
    pgid = toy.state()["services"]["api"]["pid"]
    pids = group_pids(pgid)
    assert len(pids) == 3  # detached: the log pump (duplex/standalone/logpump.py), the supervisor, the server process
    assert toy.inv("stop").returncode == 0
    assert wait_gone(pids, timeout=5) == []
