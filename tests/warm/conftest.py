"""Real warm-reloader processes on free ports: edit files, check every answer, stop with no leftovers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from duplex.warm import RUNNER
from tests.run.conftest import group_pids, toy, toy_env, wait_gone  # noqa: F401 - fixtures
from tests.support.envs import ensure_env
from tests.support.net import free_port


@pytest.fixture(scope="session")
def asr_python() -> Path:
    return ensure_env("asr") / "bin" / "python"


class Answer:
    def __init__(self, status: int, body: bytes):
        self.status, self.body = status, body

    @property
    def json(self):
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def multipart(path: Path) -> tuple[bytes, str]:
    """A multipart/form-data body with the file in the field `file`."""
    boundary = "duplexwarmtest"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes() + \
        f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def fetch(url: str, timeout: float = 10, data: bytes | None = None, headers: dict | None = None) -> Answer:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Answer(resp.status, resp.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.read())


class Warm:
    """`runner.py` started the way duplex starts it: its own process group, from the project root."""

    def __init__(self, python: Path, root: Path, app: str, watch: list[str], preload: str | None = None,
                 env: dict | None = None):
        self.root, self.port = root, free_port()
        self.log = root / "warm.log"
        self.refused = 0
        argv = [str(python), str(RUNNER), "--app", app, "--port", str(self.port)]
        for folder in watch:
            argv += ["--watch", folder]
        if preload:
            argv += ["--preload", preload]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(argv, cwd=root, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str, timeout: float = 10) -> Answer:
        return fetch(self.url(path), timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_up(self, path: str = "/health", timeout: float = 60) -> Answer:
        deadline = time.monotonic() + timeout
        while True:
            try:
                answer = self.get(path)
                if answer.status == 200:
                    return answer
            except OSError:
                pass
            assert self.proc.poll() is None, f"the reloader exited:\n{self.output()}"
            assert time.monotonic() < deadline, f"{path} never answered 200:\n{self.output()}"
            time.sleep(0.05)

    def edit(self, rel: str, old: str, new: str) -> None:
        path = self.root / rel
        text = path.read_text()
        assert old in text, f"{old!r} not in {rel}"
        path.write_text(text.replace(old, new, 1))

    def post(self, path: str, data: bytes, content_type: str, timeout: float = 120) -> Answer:
        return fetch(self.url(path), timeout, data=data, headers={"Content-Type": content_type})

    def expect(self, path, check, before, timeout: float = 30, after: int = 5) -> float:
        """Poll until `check(answer)` holds; every answer until then must pass `before` (the answer
        from before the edit: the old code still serving) or be a 503 of a full restart; then `after`
        more answers must all pass `check`. Anything else is a stale or wrong answer and fails the
        test. `before` is required: an edit checked without it could be served stale unnoticed."""
        call = path if callable(path) else (lambda: self.get(path))
        began = time.monotonic()
        while True:
            try:
                answer = call()
            except OSError:
                self.refused += 1  # the supervisor holds the socket: this must never happen
                answer = None
            if answer is not None and check(answer):
                took = time.monotonic() - began
                for _ in range(after):
                    again = call()
                    assert check(again), f"stale answer after the edit was served: {again.status} {again.text}"
                return took  # for the log only: timing is benchmarks/warm_reload.py's job
            if answer is not None and answer.status != 503:
                assert before(answer), f"unexpected answer {answer.status}: {answer.text[:500]}"
            assert time.monotonic() - began < timeout, \
                f"the edit was not served in {timeout} s; last: {answer and answer.text[:300]}\n{self.output()}"
            time.sleep(0.01)

    def pids(self) -> list[int]:
        return group_pids(self.proc.pid)

    def stop(self) -> list[int]:
        """SIGTERM the whole group (what `inv stop` does); returns what is still alive after 15 s."""
        pids = self.pids()
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        self.proc.wait(20)
        return wait_gone(pids, timeout=15)


@pytest.fixture
def warm_runs():
    started: list[Warm] = []

    def start(*args, **kwargs) -> Warm:
        run = Warm(*args, **kwargs)
        started.append(run)
        return run
    yield start
    for run in started:
        if run.proc.poll() is None:
            run.stop()
