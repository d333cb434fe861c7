"""Sync on save: while `inv run --on` runs, each edit saved in the project here is sent there
(the tar path: only the changed files, two round trips), where the remote run's own reload serves it.
Polling, like the native runner's reload: a stat of the synced set costs a few ms, needs no
platform watcher, and sees an editor's save-by-rename as well as a write in place."""

from __future__ import annotations

import threading
import time
from typing import Callable

from .ssh import Connection, SshError
from .sync import project_files, stats, sync

POLL = 0.1  # seconds between looks at the files' sizes and mtimes
LIST_EVERY = 2.0  # seconds between asking git for the set (a new file joins within this)


class Watcher:
    def __init__(self, conn: Connection, say: Callable[[str], None]):
        self.conn, self.say = conn, say
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)

    def _loop(self) -> None:
        root = self.conn.root
        files, listed = project_files(root), time.monotonic()
        seen = stats(root, files)
        while not self.stopping.wait(POLL):
            if time.monotonic() - listed > LIST_EVERY:
                files, listed = project_files(root), time.monotonic()
            now = stats(root, files)
            if now == seen:
                continue
            changed = sorted(p for p in set(now) | set(seen) if now.get(p) != seen.get(p))
            seen = now
            try:
                result = sync(self.conn, method="tar")
            except (SshError, OSError) as err:
                self.say(f"warning: {', '.join(changed[:3])} not synced: {err}")
                continue
            if result.sent or result.deleted:
                self.say(f"sent {', '.join([*result.sent, *result.deleted][:3])}"
                         f"{' and more' if len(result.sent) + len(result.deleted) > 3 else ''} "
                         f"in {result.seconds:.2f} s")
