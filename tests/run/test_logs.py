"""`inv logs`: every service of the run with the run's prefixes, one service plain, --follow for both."""

from __future__ import annotations

import urllib.request

from tests.run.conftest import lines_of, wait_for


def hit(toy, name: str, marker: str) -> None:
    with urllib.request.urlopen(toy.url(name, f"/version?m={marker}"), timeout=5) as resp:
        resp.read()


def test_logs_shows_every_service_of_the_run_prefixed_and_follows_them_interleaved(toy):
    assert toy.inv("run", "--native", "--detach", "--services", "web").returncode == 0

    every = toy.inv("logs")
    assert every.returncode == 0, every.stderr
    text = every.stdout.splitlines()
    api = [l for l in text if l.startswith("api    | ")]  # aligned to the widest name ("duplex")
    web = [l for l in text if l.startswith("web    | ")]
    assert any("Application startup complete" in l for l in api), every.stdout
    assert any("Application startup complete" in l for l in web), every.stdout
    assert text.index(api[0]) < text.index(web[0])  # start order, as the run printed them
    assert len(text) == len(api) + len(web)

    one = toy.inv("logs", "--service", "api").stdout  # one service: its plain lines, as in the file
    assert "Application startup complete" in one and "| " not in one

    follow = toy.popen("logs", "--follow", "--lines", "0")
    out, seen = lines_of(follow), []
    for n in range(100):  # wait until the follower reads: --lines 0 drops what came before it
        hit(toy, "api", f"ready{n}")
        try:
            wait_for(out, f"ready{n}", seen, timeout=0.5)
            break
        except AssertionError:
            continue
    for name, marker in (("api", "alpha"), ("web", "beta"), ("api", "gamma")):
        hit(toy, name, marker)
        assert wait_for(out, marker, seen).startswith(f"{name}    | ")
    order = [next(i for i, l in enumerate(seen) if m in l) for m in ("alpha", "beta", "gamma")]
    assert order == sorted(order)  # interleaved as they arrived

    assert toy.inv("stop").returncode == 0
    assert follow.wait(timeout=15) == 0  # the run is over: --follow ends by itself

    after = toy.inv("logs", "--lines", "500")  # the last run's logs outlive it
    assert after.returncode == 0 and "gamma" in after.stdout and "beta" in after.stdout
    single = toy.popen("logs", "--service", "web", "--follow")
    assert single.wait(timeout=15) == 0 and "beta" in single.stdout.read()


def test_logs_before_any_run_says_how_to_start_one(toy):
    proc = toy.inv("logs")
    assert proc.returncode == 1
    assert "no run of this stack has left logs" in proc.stderr and "inv run" in proc.stderr
    assert "Traceback" not in proc.stderr
    unknown = toy.inv("logs", "--service", "nope")
    assert unknown.returncode == 1 and "no logs for 'nope'" in unknown.stderr
