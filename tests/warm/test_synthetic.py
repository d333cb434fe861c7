"""Warm reload of a small app around a synthetic numpy model: a scripted series of edits, each checked."""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest

APP = '''"""A toy service around a synthetic model, for warm reload tests."""
import os

from fastapi import FastAPI

from . import helper, model

GREETING = "hello"
W = model.weights()
app = FastAPI()


@app.get("/health")
def health():
    return {"ok": True}


@app.get("/answer")
def answer():
    return {"answer": "v1", "greeting": GREETING, "helper": helper.word(), "pid": os.getpid(),
            "weights": id(W), "sum": int(W.sum())}
'''

MODEL = '''"""The "model": weights loaded from a file, once per process when preloaded."""
import os

import numpy as np

WEIGHTS = None


def load():
    return np.load(os.environ["SYNTH_WEIGHTS"])


def preload():
    global WEIGHTS
    WEIGHTS = load()
    with open(os.environ["SYNTH_LOADS"], "a") as out:
        out.write(f"{os.getpid()}\\n")


def weights():
    return WEIGHTS if WEIGHTS is not None else load()
'''


@pytest.fixture
def synth(tmp_path, asr_python, warm_runs):
    pkg = tmp_path / "synth"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "app.py").write_text(APP)
    (pkg / "model.py").write_text(MODEL)
    (pkg / "helper.py").write_text('def word():\n    return "alpha"\n')
    subprocess.run([str(asr_python), "-c", "import sys, numpy as np; np.save(sys.argv[1], np.arange(1000, dtype=np.int64))",
                    str(tmp_path / "weights.npy")], check=True)  # numpy lives in the env, not the test runner
    env = {"SYNTH_WEIGHTS": str(tmp_path / "weights.npy"), "SYNTH_LOADS": str(tmp_path / "loads")}
    run = warm_runs(asr_python, tmp_path, "synth.app:app", ["synth"], "synth.model:preload", env=env)
    run.wait_up()
    return run


def loads(run) -> list[str]:
    return (run.root / "loads").read_text().split()


def test_scripted_edits_are_served_warm_and_never_stale(synth):
    run = synth
    first = run.get("/answer").json
    assert first["answer"] == "v1" and first["sum"] == 499500
    same = lambda a: a.status == 200 and a.json["pid"] == first["pid"] and a.json["weights"] == first["weights"]  # noqa: E731

    def answer(**want):
        return lambda a: a.status == 200 and all(a.json.get(k) == v for k, v in want.items())

    # 1. a function body
    run.edit("synth/app.py", '"answer": "v1"', '"answer": "v2"')
    run.expect("/answer", answer(answer="v2"), before=answer(answer="v1"))
    # 2. a module constant
    run.edit("synth/app.py", 'GREETING = "hello"', 'GREETING = "bonjour"')
    run.expect("/answer", answer(greeting="bonjour"), before=answer(greeting="hello"))
    # 3. a new route
    run.edit("synth/app.py", '@app.get("/answer")', '@app.get("/extra")\ndef extra():\n    return {"extra": 1}\n\n\n@app.get("/answer")')
    run.expect("/extra", answer(extra=1), before=lambda a: a.status == 404)
    # 4. another module the app imports (not the preload's)
    run.edit("synth/helper.py", '"alpha"', '"beta"')
    run.expect("/answer", answer(helper="beta"), before=answer(helper="alpha"))
    # 4b. the same file again, same size and the same mtime: only its bytes differ (a .pyc, or code
    # kept by size and mtime, would hand back "beta"; the server keeps code by exact content)
    helper = run.root / "synth" / "helper.py"
    stat = helper.stat()
    helper.write_text(helper.read_text().replace('"beta"', '"zeta"'))
    os.utime(helper, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    run.expect("/answer", answer(helper="zeta"), before=answer(helper="beta"))
    # 5. a syntax error: HTTP 500 with the error, never the old code; then its fix
    run.edit("synth/app.py", 'GREETING = "bonjour"', 'GREETING = "bonjour"\ndef broken(:')
    run.expect("/answer", lambda a: a.status == 500 and "syntax error" in a.text and "app.py" in a.text,
               before=answer(greeting="bonjour"))
    run.edit("synth/app.py", '\ndef broken(:', '')
    run.expect("/answer", answer(answer="v2", greeting="bonjour", helper="zeta"),
               before=lambda a: a.status == 500)
    # every step above was warm: same process, same weights object, one preload
    assert same(run.get("/answer")), run.output()
    assert loads(run) == [str(first["pid"])]
    out = run.output()
    assert out.count("re-imported synth.app:app") == 6  # and the syntax error
    assert "synth/app.py line 9 has a syntax error" in out
    assert "restarting fully" not in out
    assert run.refused == 0


def test_an_edit_to_the_preload_restarts_fully_and_says_so(synth):
    run = synth
    first = run.get("/answer").json
    run.edit("synth/model.py", "WEIGHTS = None", "WEIGHTS = None\nSCALE = 2")
    run.expect("/answer", lambda a: a.status == 200 and a.json["pid"] != first["pid"],
               before=lambda a: a.status == 200 and a.json["pid"] == first["pid"])
    out = run.output()
    assert "synth/model.py changed and is loaded by the preload (synth.model:preload); restarting fully" in out
    assert "starting a fresh server process" in out
    assert len(loads(run)) == 2  # the preload ran again, in the fresh process
    # and the fresh process reloads warm again
    second = run.get("/answer").json
    run.edit("synth/app.py", '"answer": "v1"', '"answer": "v3"')
    run.expect("/answer", lambda a: a.status == 200 and a.json["answer"] == "v3" and a.json["pid"] == second["pid"],
               before=lambda a: a.status == 200 and a.json["answer"] == "v1" and a.json["pid"] == second["pid"])
    assert run.refused == 0  # the supervisor held the socket through the restart


def test_an_edit_that_fails_in_place_falls_back_to_a_restart(synth):
    run = synth
    first = run.get("/answer").json
    run.edit("synth/app.py", 'GREETING = "hello"', 'GREETING = UNDEFINED_NAME')
    run.expect("/answer", lambda a: a.status == 500 and "NameError" in a.text,
               before=lambda a: a.status == 200 and a.json["greeting"] == "hello")
    out = run.output()
    assert "the re-import failed (NameError: name 'UNDEFINED_NAME' is not defined); restarting fully" in out
    assert "the app failed to import" in out  # the fresh process showed the same error: a real one
    run.edit("synth/app.py", 'GREETING = UNDEFINED_NAME', 'GREETING = "fixed"')
    run.expect("/answer", lambda a: a.status == 200 and a.json["greeting"] == "fixed",
               before=lambda a: a.status == 500)
    assert run.get("/answer").json["pid"] != first["pid"]
    assert run.output().count("restarting fully") == 1  # the fix itself was warm


def test_full_restarts_under_load_never_reset_a_connection(synth):
    # clients keep asking while the preload's file changes: the old process stops accepting and
    # answers what it accepted (503), the rest waits in the backlog; a reset would be a lost request
    run, stop, problems, seen = synth, threading.Event(), [], set()

    def client():
        while not stop.is_set():
            try:
                answer = run.get("/answer")
                assert answer.status in (200, 503), answer.status
                if answer.status == 200:
                    seen.add(answer.json["pid"])
            except (OSError, AssertionError) as exc:
                problems.append(repr(exc))
    clients = [threading.Thread(target=client) for _ in range(4)]
    for thread in clients:
        thread.start()
    try:
        deadline = time.monotonic() + 30
        while not seen:  # the first process has answered: the snapshot below must hold it
            assert time.monotonic() < deadline and not problems, (problems, run.output())
            time.sleep(0.05)
        for i in range(4):
            pids = set(seen)
            run.edit("synth/model.py", "WEIGHTS = None", f"WEIGHTS = None\nEDIT_{i} = {i}")
            deadline = time.monotonic() + 30
            while not seen - pids:  # served by a fresh process
                assert time.monotonic() < deadline, run.output()
                time.sleep(0.05)
    finally:
        stop.set()
        for thread in clients:
            thread.join()
    assert problems == []
    assert len(loads(run)) == 5 and len(seen) == 5, (loads(run), seen, run.output()[-3000:])


def test_stop_leaves_no_process(synth):
    pids = synth.pids()
    assert len(pids) >= 2  # supervisor and server
    assert synth.stop() == []


def test_the_check_fails_on_an_answer_that_is_neither_old_nor_new(synth):
    # the checker itself: /answer still says v1, and this `before` does not accept v1 (as if the
    # edit had already been served once), so the first answer must fail the test
    with pytest.raises(AssertionError, match="unexpected answer 200"):
        synth.expect("/answer", lambda a: a.json["answer"] == "v2", before=lambda a: a.json["answer"] == "v0",
                     timeout=5)
