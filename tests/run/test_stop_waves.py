"""`inv stop` in-process (duplex.run.stop): real service processes, a fake engine, no `inv`.

The run each test stops is one whose `inv` is gone (its supervisor pid is dead): only the run state,
the last-run file, the process groups and the engine's containers are left, as after a detached run
or a killed one. Milliseconds each, apart from the drains and grace periods a test asks for.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Callable

import pytest

from duplex.errors import PlanError, RunError
from duplex.layout import Layout
from duplex.run.locks import ActionBusy, action
from duplex.run.state import changing, read_state
from duplex.run.stop import stop, stop_waves
from duplex.standalone import HERE
from tests.run.inprocess import (
    FakeEngine,
    Services,
    Timeline,
    end_group,
    no_real_engine,  # noqa: F401 - an autouse fixture: no real engine here
    running,
    write_run,
)

VOICE = [["asr", "moshi"], ["frontend"]]  # the shipped stack's start waves: the frontend needs both


@pytest.fixture
def timeline(tmp_path) -> Timeline:
    return Timeline(tmp_path / "timeline")


@pytest.fixture
def services(timeline):
    started = Services(timeline)
    yield started
    started.close()


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "project"
    path.mkdir()
    return path


def said() -> tuple[list[str], Callable[[str], None]]:
    lines: list[str] = []
    return lines, lines.append


def test_dependents_stop_first_and_a_wave_stops_together(root, timeline, services):
    procs = {n: services.start(n, drain=0.05) for n in ("asr", "moshi", "frontend")}
    write_run(root, {n: services.record(p, n) for n, p in procs.items()}, VOICE)
    stopped = stop(root, engine=FakeEngine())
    assert sorted(stopped) == ["asr", "frontend", "moshi"]
    at = timeline.at
    assert at("gone frontend") < at("term asr") and at("gone frontend") < at("term moshi")  # dependents first
    assert max(at("term asr"), at("term moshi")) < min(at("gone asr"), at("gone moshi"))  # one wave, together
    assert not any(running(p.pid) for p in procs.values())
    assert read_state(root)["services"] == {}


def test_containers_and_native_services_stop_together_in_the_run_s_order(root, timeline, services):
    engine = FakeEngine(timeline)
    asr = services.start("asr", drain=0.05)
    moshi = engine.add("moshi", root, drain=0.05)
    frontend = engine.add("frontend", root)
    write_run(root, {"asr": services.record(asr, "asr"), "moshi": moshi.record(),
                     "frontend": frontend.record()}, VOICE)
    lines, say = said()
    assert sorted(stop(root, say=say, engine=engine)) == ["asr", "frontend", "moshi"]
    at = timeline.at
    assert at("gone frontend") < min(at("term asr"), at("term moshi"))
    assert max(at("term asr"), at("term moshi")) < min(at("gone asr"), at("gone moshi"))
    assert f"frontend: stopping container {frontend.short_id}" in lines
    assert "network duplex-unit: removed" in lines  # no container uses it any more
    assert engine.items == [] and not running(asr.pid)


def test_native_services_never_wait_for_the_engine_to_list_containers(root, timeline, services):
    """The engine is asked in the background: a wave of native services stops at once."""
    engine = FakeEngine(timeline)
    engine.slow = 0.5
    moshi = engine.add("moshi", root)
    asr = services.start("asr")
    write_run(root, {"asr": services.record(asr, "asr"), "moshi": moshi.record()}, [["moshi"], ["asr"]])
    assert stop(root, engine=engine) == ["asr", "moshi"]
    assert timeline.at("gone asr") < timeline.at("listed containers") < timeline.at("term moshi")


def test_a_service_that_ignores_sigterm_is_killed_after_the_grace_period(root, services):
    stubborn = services.start("asr", how="ignore")
    write_run(root, {"asr": services.record(stubborn, "asr")}, [["asr"]])
    lines, say = said()
    began = time.monotonic()
    assert stop(root, grace=0.2, say=say, engine=FakeEngine()) == ["asr"]
    assert time.monotonic() - began >= 0.2
    assert any(line.startswith("asr: killed after 0.") for line in lines), lines
    assert stubborn.wait(timeout=5) == -9


def test_a_slow_drain_is_said_while_it_lasts(root, services):
    slow = services.start("asr", drain=1.3)
    write_run(root, {"asr": services.record(slow, "asr")}, [["asr"]])
    lines, say = said()
    stop(root, grace=5, say=say, engine=FakeEngine())
    assert "asr: still stopping after 1s (a graceful drain; SIGKILL after 5s)" in lines
    assert any(line.startswith("asr: stopped after 1.") for line in lines), lines


def test_a_group_whose_leader_died_is_stopped_through_what_it_left(root, services):
    """A killed run's shell, a reloader killed before its worker: the group outlives its leader."""
    leader = services.start("asr", how="orphan")
    record = services.record(leader, "asr")
    leader.wait(timeout=5)  # the leader is gone; its child still serves in the group
    assert running(leader.pid)
    lines, say = said()
    write_run(root, {"asr": record}, [["asr"]])
    assert stop(root, grace=2, say=say, engine=FakeEngine()) == ["asr"]
    assert f"asr: stopping pid {leader.pid}" in lines
    assert not running(leader.pid)


def test_records_of_what_is_gone_are_cleared_and_said(root, services):
    engine = FakeEngine()
    gone = engine.add("moshi", root)
    record = gone.record()
    engine.items.clear()  # removed behind duplex's back
    dead = services.dead_record("asr")
    write_run(root, {"asr": dead, "moshi": record}, [["asr", "moshi"]])
    lines, say = said()
    assert stop(root, say=say, engine=engine) == []
    assert f"asr: cleared its record (pid {dead['pid']} is no longer running)" in lines
    assert any(line.startswith("moshi: cleared its record (its container is gone") for line in lines)
    assert read_state(root)["services"] == {}


def test_a_persistent_container_is_kept_warm_unless_everything_is_stopped(root, timeline):
    engine = FakeEngine(timeline)
    warm = engine.add("moshi", root, persistent=True)
    write_run(root, {"moshi": warm.record(persistent=True)}, [["moshi"]])
    lines, say = said()
    assert stop(root, say=say, engine=engine) == []
    assert "moshi: kept warm (persistent); `inv stop --all` stops it" in lines
    assert engine.items == [warm]
    assert stop(root, everything=True, engine=engine) == ["moshi"]
    assert engine.items == []


def test_containers_of_a_run_the_state_lost_are_stopped_too(root, timeline):
    engine = FakeEngine(timeline)
    engine.add("moshi", root)
    engine.add("moshi", root.parent / "another-checkout")  # another project's: never touched
    assert stop(root, engine=engine) == ["moshi"]
    assert [c.labels["dev.duplex.root"] for c in engine.items] == [str(root.parent / "another-checkout")]


def test_a_container_only_the_engine_knows_can_be_stopped_by_name(root, timeline):
    engine = FakeEngine(timeline)
    engine.add("moshi", root)  # no run state, no last run: only the engine's labels name it
    assert stop(root, services=["moshi"], engine=engine) == ["moshi"]
    assert engine.items == []


def test_a_log_pump_whose_record_the_state_lost_is_found_and_stopped(root):
    """A detached native service is its log pump's group (duplex.standalone.logpump): found by its
    command line under this project's log folder, though the state lost its record."""
    log = Layout(root).log("asr")
    log.parent.mkdir(parents=True)
    pump = subprocess.Popen([sys.executable, "-I", str(HERE / "logpump.py"), str(log), "--",
                             "sh", "-c", "echo serving; exec sleep 60"],
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while not (log.exists() and "serving" in log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.005)
        lines, say = said()
        assert stop(root, say=say, engine=FakeEngine()) == ["asr"]
        assert f"asr: stopping pid {pump.pid} (not in the run state)" in lines
        assert pump.wait(timeout=5) == 128 + 15  # the pump outlived its service's SIGTERM, as it should
    finally:
        end_group(pump)


def test_one_service_stops_alone_and_the_rest_keeps_its_records(root, timeline, services):
    procs = {n: services.start(n) for n in ("asr", "frontend")}
    write_run(root, {n: services.record(p, n) for n, p in procs.items()}, [["asr"], ["frontend"]])
    assert stop(root, services=["frontend"], engine=FakeEngine()) == ["frontend"]
    assert running(procs["asr"].pid) and not running(procs["frontend"].pid)
    assert list(read_state(root)["services"]) == ["asr"]


def test_an_unknown_service_is_refused_naming_the_known_ones(root, services):
    asr = services.start("asr")
    write_run(root, {"asr": services.record(asr, "asr")}, [["asr"]])
    with pytest.raises(PlanError) as err:
        stop(root, services=["nope"], known=lambda: {"web"}, engine=FakeEngine())
    assert "unknown service: nope" in str(err.value) and err.value.fix == "choose from: asr, web"
    assert running(asr.pid)


def test_what_still_runs_after_the_stop_is_an_error_not_a_stopped(root, timeline):
    engine = FakeEngine(timeline)
    stuck = engine.add("moshi", root)
    engine.keep.add("moshi")  # the engine says it stopped it; it did not
    write_run(root, {"moshi": stuck.record()}, [["moshi"]])
    with pytest.raises(RunError, match=rf"still running after the stop: moshi \(container {stuck.short_id}\)"):
        stop(root, engine=engine)


def test_a_service_stopped_by_name_is_marked_stopping_before_its_signal(root, timeline):
    """An attached `inv run` watching it reads the mark and takes its exit for no crash."""
    engine = FakeEngine(timeline)
    moshi = engine.add("moshi", root)
    write_run(root, {"moshi": moshi.record()}, [["moshi"]])
    seen = []
    engine.on_remove = lambda _container: seen.append(read_state(root)["services"]["moshi"].get("stopping"))
    assert stop(root, services=["moshi"], engine=engine) == ["moshi"]
    assert seen == [True]


def test_a_record_written_while_the_stop_runs_is_kept(root, timeline):
    """Only the records the stop saw and ended are cleared: a run starting meanwhile keeps its own."""
    engine = FakeEngine(timeline)
    old = engine.add("moshi", root)
    write_run(root, {"moshi": old.record()}, [["moshi"]])
    new = {"name": "moshi", "mode": "container", "container": "f" * 64, "url": None}

    def a_run_starts_meanwhile(_container):
        with changing(root) as state:
            state["services"]["moshi"] = new
    engine.on_remove = a_run_starts_meanwhile
    assert stop(root, services=["moshi"], engine=engine) == ["moshi"]
    assert read_state(root)["services"] == {"moshi": new}


def test_a_container_the_engine_cannot_stop_is_said_and_named_as_still_running(root):
    engine = FakeEngine()
    stuck = engine.add("moshi", root)
    write_run(root, {"moshi": stuck.record()}, [["moshi"]])

    def refuse(_container):
        raise OSError("the engine said no")
    engine.on_remove = refuse
    lines, say = said()
    with pytest.raises(RunError, match="still running after the stop: moshi"):
        stop(root, say=say, engine=engine)
    assert "moshi: could not be stopped (OSError: the engine said no)" in lines


def test_native_services_stop_with_the_engine_unreachable(root, services):
    asr = services.start("asr")
    write_run(root, {"asr": services.record(asr, "asr")}, [["asr"]])
    assert stop(root, engine=FakeEngine(up=False)) == ["asr"]
    assert not running(asr.pid)


def test_a_stop_waits_for_the_action_in_progress_or_is_refused(root, services):
    asr = services.start("asr")
    write_run(root, {"asr": services.record(asr, "asr")}, [["asr"]])
    holding, release = threading.Event(), threading.Event()

    def restart_in_progress():
        with action(root, "`inv restart asr`"):
            holding.set()
            release.wait(5)
    holder = threading.Thread(target=restart_in_progress)
    holder.start()
    assert holding.wait(5)
    try:
        with pytest.raises(ActionBusy, match=r"`inv restart asr` \(pid \d+, for \d+s\) is in progress"):
            stop(root, wait=False, engine=FakeEngine())
        assert running(asr.pid)
        lines, say = said()
        threading.Timer(0.05, release.set).start()
        assert stop(root, say=say, engine=FakeEngine()) == ["asr"]
        assert any(line.startswith("waiting for `inv restart asr`") for line in lines)
    finally:
        release.set()
        holder.join()


def test_the_waves_come_from_the_state_else_the_last_run_and_unknown_names_go_first(root):
    write_run(root, {}, [["a"], ["b", "c"], ["d"]])
    assert stop_waves(root, ["a", "c", "d", "x"]) == [["x"], ["d"], ["c"], ["a"]]
    assert stop_waves(root, ["a", "b"], {"waves": [["b"], ["a"]]}) == [["a"], ["b"]]


def test_a_service_stops_with_its_replicas_and_one_replica_alone_when_exact(root, timeline, services):
    waves = [["asr", "asr_1"], ["frontend"]]  # a run of `--replicas asr=2`
    procs = {n: services.start(n) for n in ("asr", "asr_1", "frontend")}
    write_run(root, {n: services.record(p, n) for n, p in procs.items()}, waves)
    engine = FakeEngine(timeline)
    engine.add("moshi_1", root)  # a replica's container the state lost: found by its label
    assert stop(root, services=["asr_1"], engine=engine) == ["asr_1"]  # a replica by its own name
    assert running(procs["asr"].pid) and not running(procs["asr_1"].pid)
    procs["asr_1"] = services.start("asr_1")
    write_run(root, {n: services.record(p, n) for n, p in procs.items()}, waves)
    assert stop(root, services=["asr"], engine=engine, exact=True) == ["asr"]  # the dashboard's row of replica 0
    assert running(procs["asr_1"].pid)
    procs["asr"] = services.start("asr")
    write_run(root, {n: services.record(p, n) for n, p in procs.items()}, waves)
    assert sorted(stop(root, services=["asr", "moshi"], engine=engine)) == ["asr", "asr_1", "moshi_1"]  # every replica
    assert running(procs["frontend"].pid) and not running(procs["asr"].pid) and not running(procs["asr_1"].pid)
    assert list(read_state(root)["services"]) == ["frontend"]
    with pytest.raises(PlanError, match="unknown service: asr_2"):
        stop(root, services=["asr_2"], engine=engine)
