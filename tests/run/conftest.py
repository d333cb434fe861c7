"""A copy of the toy stack per test, its env linked to the real frontend venv, on free ports."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support.net import free_port, free_ports

TOY = Path(__file__).parent / "toy"


class Toy:
    def __init__(self, root: Path):
        self.root = root
        self.ports = dict(zip(("api", "web", "crash"), free_ports(3), strict=True))
        self.env = {**os.environ, "DUPLEX_STACK": str(root / "stack.toml"),
                    **{f"DUPLEX_PORT_{n.upper()}": str(p) for n, p in self.ports.items()}}

    def url(self, name: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[name]}{path}"

    def inv(self, *args: str, timeout: float = 120, extra: dict | None = None):
        return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args],
                              cwd=self.root, env={**self.env, **(extra or {})}, capture_output=True,
                              text=True, timeout=timeout)

    def popen(self, *args: str, extra: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args],
                                cwd=self.root, env={**self.env, **(extra or {})}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    def edit(self, old: str, new: str) -> None:
        path = self.root / "stack.toml"
        text = path.read_text()
        assert old in text, old
        path.write_text(text.replace(old, new, 1))

    def state(self) -> dict:
        path = self.root / ".duplex" / "run" / "state.json"
        return json.loads(path.read_text()) if path.exists() else {"services": {}}

    def get(self, name: str, path: str) -> dict:
        with urllib.request.urlopen(self.url(name, path), timeout=5) as resp:
            return json.loads(resp.read())

    def wait_healthy(self, *names: str, timeout: float = 60, proc: subprocess.Popen | None = None) -> None:
        """Poll until each service answers; fail at once (with its output) if the run `proc` died."""
        deadline = time.monotonic() + timeout
        for name in names:
            while True:
                try:
                    self.get(name, "/health")
                    break
                except OSError as err:
                    if proc is not None and proc.poll() is not None:
                        raise AssertionError(f"inv run exited with {proc.returncode}:\n{proc.stdout.read()}") from None
                    if time.monotonic() > deadline:
                        raise AssertionError(f"{name} never became healthy") from err
                    time.sleep(0.1)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def group_pids(pgid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def wait_gone(pids, timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if pid_alive(p)]
        if not left:
            return []
        time.sleep(0.1)
    return [p for p in pids if pid_alive(p)]


def lines_of(proc) -> queue.Queue:
    """The process's output lines as they come, without blocking the test on a read."""
    out: queue.Queue[str] = queue.Queue()

    def read():
        for line in proc.stdout:
            out.put(line.rstrip("\n"))
    threading.Thread(target=read, daemon=True).start()
    return out


def ctrl_c(run: subprocess.Popen, out: queue.Queue, seen: list[str]) -> str:
    """Ctrl-C to a foreground `inv run`: it must exit 130; returns everything it printed."""
    run.send_signal(signal.SIGINT)
    assert run.wait(timeout=30) == 130
    time.sleep(0.2)  # the reader thread drains what was printed last
    while not out.empty():
        seen.append(out.get())
    return "\n".join(seen)


def wait_for(out: queue.Queue, needle: str, seen: list[str], timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = out.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"{needle!r} not seen in:\n" + "\n".join(seen))


def _toy_tree(root: Path) -> None:
    shutil.copytree(TOY, root)
    (root / "envs" / "web").mkdir(parents=True)
    for name in ("requirements.in", "requirements.lock"):  # the frontend's pins: fastapi + uvicorn
        shutil.copy(ROOT / "envs" / "frontend" / name, root / "envs" / "web" / name)


@pytest.fixture(scope="session")
def toy_env(tmp_path_factory) -> Path:
    """The toy's env, built once by duplex's own setup code and shared by every toy copy."""
    from duplex.envs import provision_env
    from duplex.stack import load_stack
    root = tmp_path_factory.mktemp("toy-template")
    _toy_tree(root / "toy")
    stack = load_stack(root / "toy" / "stack.toml")
    return provision_env(stack.root, "web", stack.envs["web"]).path.resolve()


@pytest.fixture
def toy(tmp_path, toy_env) -> Toy:
    root = tmp_path / "toy"
    _toy_tree(root)
    (root / ".duplex" / "envs").mkdir(parents=True)
    (root / ".duplex" / "envs" / "web").symlink_to(toy_env)
    t = Toy(root)
    yield t
    t.inv("stop", "--all", timeout=60)


__all__ = ["Toy", "free_port", "group_pids", "lines_of", "pid_alive", "wait_for", "wait_gone", "signal"]


@pytest.fixture(scope="module")
def engine():
    """The real Docker engine: CI starts one, and a missing engine fails here, it does not skip."""
    import docker
    client = docker.from_env()
    client.ping()
    return client


def labelled(engine, toy) -> list:
    """The containers runs of this toy checkout made (by the root label)."""
    return engine.containers.list(all=True, filters={"label": f"dev.duplex.root={toy.root}"})
