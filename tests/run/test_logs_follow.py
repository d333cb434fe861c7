"""`inv logs` in-process (duplex.run.logs): past lines and following, from log files a test writes
and from a fake engine's container logs; a real service process decides when a followed native
service is gone. The follower polls every few milliseconds here (`Pace`); no Docker, no `inv`."""

from __future__ import annotations

import os
import queue
import threading

import pytest

from duplex.errors import RunError
from duplex.run.logs import PAST_END, Pace, file_lines, logs
from tests.run.inprocess import (
    WAIT,
    FakeEngine,
    Services,
    Timeline,
    log,
    no_real_engine,  # noqa: F401 - an autouse fixture: no real engine here
    write_run,
)

FAST = Pace(poll=0.002, settle=0.02)
END = object()


class Reader:
    """Reads an iterator in a thread, so a test can write between the lines it takes."""

    def __init__(self, lines):
        self.queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, args=(lines,), daemon=True).start()

    def _read(self, lines) -> None:
        try:
            for line in lines:
                self.queue.put(line)
        finally:
            self.queue.put(END)

    def take(self, count: int) -> list:
        return [self.queue.get(timeout=WAIT) for _ in range(count)]

    def rest(self) -> list:
        """Everything up to the end (fails when the iterator does not end)."""
        got = []
        while (line := self.queue.get(timeout=WAIT)) is not END:
            got.append(line)
        return got


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "project"
    path.mkdir()
    return path


@pytest.fixture
def services(tmp_path):
    started = Services(Timeline(tmp_path / "timeline"))
    yield started
    started.close()


def append(path, text: str) -> None:
    with open(path, "a") as fh:
        fh.write(text)


class Flag:
    """`alive` for a followed file: whether its service still runs, as the test says."""

    def __init__(self):
        self.up = True

    def __call__(self) -> bool:
        return self.up


def test_the_past_is_the_last_lines_including_an_unfinished_one(tmp_path):
    path = tmp_path / "a.log"
    path.write_text("one\ntwo\nthree\nfour, unfinished")
    assert list(file_lines(path, 2, False, Flag())) == ["three", "four, unfinished", PAST_END]
    assert list(file_lines(path, 0, False, Flag())) == [PAST_END]
    assert list(file_lines(tmp_path / "none.log", 5, True, Flag())) == [PAST_END]  # no file: no lines


def test_the_past_of_a_big_file_starts_at_a_whole_line(tmp_path):
    path = tmp_path / "a.log"
    path.write_text("".join(f"line {i:06d}\n" for i in range(20_000)))  # 240 kB, read from its last 64 KiB
    past = list(file_lines(path, 1_000_000, False, Flag()))[:-1]
    assert past[-1] == "line 019999" and all(len(line) == 11 for line in past)


def test_following_gives_new_lines_as_they_come_and_ends_when_the_service_is_gone(tmp_path):
    path = tmp_path / "a.log"
    path.write_text("past\nhalf")
    alive = Flag()
    reader = Reader(file_lines(path, 10, True, alive, FAST))
    assert reader.take(2) == ["past", PAST_END]  # the unfinished line waits for its end
    append(path, " a line\nnext\n")
    assert reader.take(2) == ["half a line", "next"]
    append(path, "last words, no newline")
    alive.up = False
    assert reader.rest() == ["last words, no newline"]  # drained before it ends


def test_a_truncated_log_is_followed_from_its_new_start(tmp_path):
    """A restarted service's log starts empty again (the native runner truncates it)."""
    path = tmp_path / "a.log"
    path.write_text("old one\nold two\n")
    alive = Flag()
    reader = Reader(file_lines(path, 10, True, alive, FAST))
    assert reader.take(3) == ["old one", "old two", PAST_END]
    path.write_text("")  # truncated in place, as `log.write_text("")` does
    append(path, "new\n")
    assert reader.take(1) == ["new"]
    alive.up = False
    assert reader.rest() == []


def test_a_replaced_log_is_followed_into_the_new_file(tmp_path):
    path = tmp_path / "a.log"
    path.write_text("old\n")
    alive = Flag()
    reader = Reader(file_lines(path, 10, True, alive, FAST))
    assert reader.take(2) == ["old", PAST_END]
    fresh = tmp_path / "a.log.new"
    fresh.write_text("first of the new file\n")
    os.replace(fresh, path)
    assert reader.take(1) == ["first of the new file"]
    append(path, "second\n")
    assert reader.take(1) == ["second"]
    alive.up = False
    assert reader.rest() == []


def test_logs_follows_a_native_service_until_its_process_is_gone(root, services):
    asr = services.start("asr")
    path = log(root, "asr")
    path.write_text("started\n")
    write_run(root, {"asr": services.record(asr, "asr")}, [["asr"]])
    reader = Reader(logs(root, "asr", follow=True, engine=FakeEngine(), pace=FAST))
    assert reader.take(1) == [("asr", "started")]
    append(path, "serving\n")
    assert reader.take(1) == [("asr", "serving")]
    os.killpg(asr.pid, 9)
    asr.wait()
    assert reader.rest() == []


def test_a_container_s_log_comes_from_the_engine_past_then_followed(root):
    engine = FakeEngine()
    moshi = engine.add("moshi", root, past="one\ntwo\nthree\n")
    write_run(root, {"moshi": moshi.record()}, [["moshi"]])
    log(root, "moshi").write_text("the log file of a detached container stays empty\n")
    reader = Reader(logs(root, "moshi", follow=True, lines=2, engine=engine))
    assert reader.take(2) == [("moshi", "two"), ("moshi", "three")]
    moshi.stream.put(b"four\nfi")
    moshi.stream.put(b"ve\nsix, unfinished")
    assert reader.take(2) == [("moshi", "four"), ("moshi", "five")]
    moshi.stream.put(None)  # the container stopped: its stream ends
    assert reader.rest() == [("moshi", "six, unfinished")]
    past, followed = moshi.asked
    assert past["tail"] == 2 and past["until"] is not None and not past["stream"]
    assert followed["stream"] and followed["follow"] and followed["since"] == past["until"]  # no gap, no double


def test_without_follow_a_container_gives_its_past_only(root):
    engine = FakeEngine()
    moshi = engine.add("moshi", root, past="a\nb\n")
    write_run(root, {"moshi": moshi.record()}, [["moshi"]])
    assert list(logs(root, "moshi", engine=engine)) == [("moshi", "a"), ("moshi", "b")]
    assert moshi.asked == [{"tail": 200, "until": None, "stream": False, "follow": False, "since": None}]


def test_every_service_past_in_start_order_then_followed_together(root, services):
    engine = FakeEngine()
    moshi = engine.add("moshi", root, past="moshi past\n")
    asr = services.start("asr")
    log(root, "asr").write_text("asr past\n")
    log(root, "frontend").write_text("frontend past, its service gone\n")
    write_run(root, {"asr": services.record(asr, "asr"), "moshi": moshi.record()}, [["asr", "moshi"], ["frontend"]])
    reader = Reader(logs(root, follow=True, engine=engine, pace=FAST))
    assert reader.take(3) == [("asr", "asr past"), ("moshi", "moshi past"),
                              ("frontend", "frontend past, its service gone")]
    append(log(root, "asr"), "asr new\n")
    moshi.stream.put(b"moshi new\n")
    assert sorted(reader.take(2)) == [("asr", "asr new"), ("moshi", "moshi new")]
    moshi.stream.put(None)
    os.killpg(asr.pid, 9)
    asr.wait()
    assert reader.rest() == []


def test_with_the_engine_unreachable_a_container_s_log_file_is_read(root):
    engine = FakeEngine()
    moshi = engine.add("moshi", root, past="from the engine\n")
    write_run(root, {"moshi": moshi.record()}, [["moshi"]])
    log(root, "moshi").write_text("from the file\n")
    engine.up = False
    assert list(logs(root, "moshi", follow=True, engine=engine, pace=FAST)) == [("moshi", "from the file")]


def test_no_run_no_logs_and_an_unknown_service_say_what_to_do(root):
    with pytest.raises(RunError, match="no run of this stack has left logs") as err:
        list(logs(root, engine=FakeEngine()))
    assert "inv run" in err.value.fix
    write_run(root, {}, [["asr"]])
    with pytest.raises(RunError, match="no logs for 'web'"):
        list(logs(root, "web", engine=FakeEngine()))
