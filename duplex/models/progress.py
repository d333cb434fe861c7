"""How prefetch shows itself: the plan table, then per-file and total bars (rich), or nothing."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .lock import FileEntry
    from .report import ModelPlan


class Progress(Protocol):
    def plan(self, models: list["ModelPlan"], *, free: int | None) -> None: ...
    def start(self, total_bytes: int, files: int) -> None: ...
    def file_started(self, repo: str, entry: "FileEntry") -> None: ...
    def advance(self, repo: str, entry: "FileEntry", n: int) -> None: ...  # from worker threads
    def file_done(self, repo: str, entry: "FileEntry") -> None: ...
    def note(self, text: str) -> None: ...
    def finish(self) -> None: ...


class NullProgress:
    """Shows nothing (--json, tests); `notes` keeps what would have been said."""

    def __init__(self):
        self.notes: list[str] = []

    def plan(self, models, *, free):
        pass

    def start(self, total_bytes, files):
        pass

    def file_started(self, repo, entry):
        pass

    def advance(self, repo, entry, n):
        pass

    def file_done(self, repo, entry):
        pass

    def note(self, text):
        self.notes.append(text)

    def finish(self):
        pass


def human(size: int | float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size} B"  # pragma: no cover


class RichProgress:
    """The plan as a table, then one bar per file in flight and one for the total."""

    def __init__(self, console=None):
        from rich.console import Console  # heavy: only `inv prefetch` shows progress
        self.console = console or Console(highlight=False)
        self._bars = None
        self._total = None
        self._tasks: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def plan(self, models, *, free):
        from rich.table import Table  # heavy: only `inv prefetch` shows progress
        table = Table(title="models", title_justify="left", show_edge=False)
        table.add_column("model", no_wrap=True)
        for col in ("revision", "commit", "files", "size", "to fetch"):
            table.add_column(col, justify="right" if col in ("files", "size", "to fetch") else "left")
        for m in models:
            fetch = f"{human(m.fetch_bytes)} ({len(m.fetch)})" if m.fetch else "cached"
            table.add_row(m.repo, m.revision, m.commit[:12], str(m.files), human(m.size), fetch)
        self.console.print(table)
        need = sum(m.fetch_bytes for m in models)
        if need:
            self.console.print(f"to download: {human(need)}" + (f" (free: {human(free)})" if free is not None else ""))

    def start(self, total_bytes, files):
        from rich.progress import (  # heavy: only `inv prefetch` shows progress
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        self._bars = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                              TransferSpeedColumn(), TimeRemainingColumn(), console=self.console,
                              transient=False)
        self._bars.start()
        self._total = self._bars.add_task(f"total ({files} files)", total=total_bytes)

    def file_started(self, repo, entry):
        with self._lock:
            self._tasks[(repo, entry.path)] = self._bars.add_task(f"  {repo}/{entry.path}", total=entry.size)

    def advance(self, repo, entry, n):
        task = self._tasks.get((repo, entry.path))
        if task is not None:
            self._bars.advance(task, n)
        self._bars.advance(self._total, n)

    def file_done(self, repo, entry):
        with self._lock:
            task = self._tasks.pop((repo, entry.path), None)
        if task is not None:
            self._bars.remove_task(task)  # finished files leave; the total bar stays

    def note(self, text):
        self.console.print(text)

    def finish(self):
        if self._bars is not None:
            self._bars.stop()
            self._bars = None
