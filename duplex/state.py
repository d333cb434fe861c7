"""The run's state file: what was started, so `inv status`/`inv stop` work after duplex is gone."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from .layout import Layout


def write_last_run(root: Path, stack: str, order: list[str]) -> None:
    path = Layout(root).last_run
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"stack": stack, "services": list(order)}, indent=2))
    os.replace(tmp, path)


def last_run(root: Path) -> list[str]:
    try:
        return list(json.loads(Layout(root).last_run.read_text())["services"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


class RunState:
    """Written after every start, atomically, so even a SIGKILLed run leaves a usable record."""

    def __init__(self, root: Path, stack: str, mode: str):
        self.path = Layout(root).state
        self.data = {"stack": stack, "mode": mode, "supervisor_pid": os.getpid(), "services": {}}
        self.lock = threading.Lock()

    def add(self, record: dict) -> None:
        with self.lock:
            self.data["services"][record["name"]] = record
            self._write()

    def remove(self, name: str) -> None:
        with self.lock:
            self.data["services"].pop(name, None)
            self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        os.replace(tmp, self.path)


def read_state(root: Path) -> dict:
    try:
        return json.loads(Layout(root).state.read_text())
    except (OSError, ValueError):
        return {"services": {}}


def write_state(root: Path, data: dict) -> None:
    path = Layout(root).state
    if not data.get("services"):
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)
