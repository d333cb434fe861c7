"""`inv loadtest` through the real CLI against the default stack run natively (pocketsphinx asr and
the frontend, real processes and ports), speaking flite's voices."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from duplex.capacity import read_capacity
from tests.conftest import run_inv
from tests.support.net import free_port
from tests.support.stackcopy import copy_stack

SLOTS = 2  # asr refuses a third stream: the ramp's limit is the server's own, whatever this machine's speed


def _set_budget(root: Path, budget: str) -> None:
    path = root / "stack.toml"
    text = path.read_text()
    start = text.index("[services.asr.budget]")
    end = text.index("\n\n", start)
    path.write_text(text[:start] + "[services.asr.budget]\n" + budget + text[end:])


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = copy_stack(tmp_path_factory.mktemp("loadtest") / "stack", "loadtest")
    text = (root / "stack.toml").read_text().replace(
        'ASR_BACKEND = "pocketsphinx"', f'ASR_BACKEND = "pocketsphinx"\nASR_STREAM_MAX_SESSIONS = "{SLOTS}"', 1)
    (root / "stack.toml").write_text(text)
    _set_budget(root, "final_p95 = 10.0\nwer = 0.5")  # generous: on a loaded CI machine only refusals stop it
    env = {"DUPLEX_STACK": str(root / "stack.toml"), "DUPLEX_PORT_ASR": str(free_port()),
           "DUPLEX_PORT_FRONTEND": str(free_port())}
    up = run_inv("run", "--native", "--detach", "--skip-preflight", env=env, cwd=root, timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield root, env
    finally:
        run_inv("stop", "--all", env=env, cwd=root, timeout=120)


def test_the_ramp_finds_the_servers_session_limit_through_the_frontend(stack, tmp_path):
    root, env = stack
    got = run_inv("loadtest", "--most", "4", "--seconds", "4", "--json", "--out", str(tmp_path), env=env,
                  cwd=root, timeout=600)
    assert got.returncode == 0, got.stdout + got.stderr
    doc = json.loads(got.stdout)
    asr = doc["services"]["asr"]
    assert [lv["sessions"] for lv in asr["levels"]] == [1, 2, 4, 3]  # doubled, then bisected
    one, two, four, three = asr["levels"]
    assert (one["ok"], two["ok"], four["ok"], four["refused"]) == (1, 2, SLOTS, 4 - SLOTS), asr["levels"]
    assert (three["ok"], three["refused"]) == (SLOTS, 3 - SLOTS)
    assert asr["capacity"] == SLOTS and asr["per_replica"] == SLOTS
    assert asr["stopped"] == f"{3 - SLOTS} refused of 3 sessions (33% > 0% allowed) at 3 sessions"
    assert doc["generator"]["via"] == "frontend" and doc["generator"]["speech"].startswith("flite")
    for lv in (one, two):  # real speech, really transcribed, really timed
        assert lv["wer"] <= 0.5 and lv["final_s"]["n"] >= lv["sessions"] and 0 < lv["final_s"]["p50"] < 10
        assert lv["services"]["asr"]["cpu_mean"] > 0 and lv["services"]["asr"]["memory_peak"] > 10 * 2**20
        assert "frontend" in lv["services"] and lv["generator"]["cpu"] < 85
    assert json.loads((tmp_path / "loadtest.json").read_text()) == doc
    assert read_capacity(tmp_path / "loadtest.json")["asr"].capacity == SLOTS
    assert "<svg" in (tmp_path / "loadtest.html").read_text()
    assert "asr: 2 sessions speaking 4 s each" in got.stderr and "asr: capacity 2 sessions" in got.stderr


def test_own_recordings_directly_and_a_budget_no_level_meets(stack, tmp_path):
    root, env = stack
    mine = tmp_path / "mine"
    mine.mkdir()
    shutil.copy(Path(__file__).parents[2] / "duplex" / "data" / "hello.wav", mine / "hello.wav")
    (mine / "hello.txt").write_text("hello world this is a test\n")
    _set_budget(root, "final_p95 = 0.001")  # read at each load test: no restart
    try:
        got = run_inv("loadtest", "--direct", "--most", "1", "--seconds", "3", "--speech", str(mine),
                      "--out", str(tmp_path / "out"), env=env, cwd=root, timeout=300)
    finally:
        _set_budget(root, "final_p95 = 10.0\nwer = 0.5")
    assert got.returncode == 1, got.stdout + got.stderr  # the budget was not met: CI sees it
    assert "via direct" in got.stdout and f"{mine} (your recordings); 1 clips" in got.stdout
    assert "asr: capacity none: not even one session met the budget" in got.stdout
    assert "end of speech -> final p95" in got.stdout and "> 0.001 s at 1 session" in got.stdout
    level = json.loads((tmp_path / "out" / "loadtest.json").read_text())["services"]["asr"]["levels"][0]
    assert level["ok"] == 1 and level["wer"] <= 0.34  # "hello world this is a test", as smoke expects


@pytest.mark.parametrize("args, words", [
    (("--services", "frontend"), "cannot load-test frontend"),
    (("--speech", "NOTXT"), "has no hello.txt beside it"),
    (("--speech", "MISSING"), "is not a folder"),
    (("--most", "0"), "--most '0' is out of range"),
])
def test_mistakes_are_one_clear_message(stack, tmp_path, args, words):
    root, env = stack
    (tmp_path / "NOTXT").mkdir()
    shutil.copy(Path(__file__).parents[2] / "duplex" / "data" / "hello.wav", tmp_path / "NOTXT" / "hello.wav")
    args = tuple(str(tmp_path / a) if a in ("NOTXT", "MISSING") else a for a in args)
    got = run_inv("loadtest", *args, "--out", str(tmp_path / "out"), env=env, cwd=root, timeout=120)
    assert got.returncode != 0 and words in got.stdout + got.stderr, got.stdout + got.stderr
    assert "Traceback" not in got.stdout + got.stderr and not (tmp_path / "out").exists()


def test_nothing_running_says_how_to_start(tmp_path):
    root = copy_stack(tmp_path / "idle", "loadidle")
    got = run_inv("loadtest", env={"DUPLEX_STACK": str(root / "stack.toml")}, cwd=root, timeout=60)
    assert got.returncode == 1 and "nothing is running to load-test" in got.stdout + got.stderr
    assert "inv run --detach" in got.stdout + got.stderr and "Traceback" not in got.stderr
    assert os.listdir(root / ".duplex") == ["envs"]  # nothing written


def test_a_report_folder_that_cannot_be_written_is_one_line(stack, tmp_path):
    root, env = stack
    (tmp_path / "taken").write_text("a file where the report folder would go\n")
    got = run_inv("loadtest", "--most", "1", "--seconds", "2", "--out", str(tmp_path / "taken"), env=env,
                  cwd=root, timeout=300)
    said = got.stdout + got.stderr
    assert got.returncode == 1 and f"cannot write {tmp_path / 'taken' / 'loadtest.json'}" in said, said
    assert "Traceback" not in said and (tmp_path / "taken").read_text().startswith("a file")
