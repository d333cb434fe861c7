"""What fills the dashboard: a sampler that looks at the run once a second (the run state, checked
against the processes and the engine as `inv status` does; health; CPU, memory, GPU memory) and one
log follower per service (its log file, or the engine's log of its container)."""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..envfile import secret_values
from ..layout import Layout
from ..plan import Health
from ..redact import Redactor
from ..run.health import client_context, marked, probe_once
from ..run.inventory import alive, engine_containers_by_id, find_container
from ..run.state import read_state
from . import resources
from .logbook import LogBook, Splitter
from .metrics import Series, parse
from .rows import Watch, left_out_row, row, warm_reload

PERIOD = 1.0
EVERY = 5  # a healthy service is probed (and scraped) every 5th sample: its log is not flooded


class Run:
    """The dashboard's view of the run: rows for the page, refreshed by `sample()`."""

    def __init__(self, root: Path, planned: dict, book: LogBook, clock=time.time):
        self.root, self.planned, self.book, self.clock = Path(root), planned, book, clock
        self.watches = {name: Watch() for name in planned["services"]}
        self.rows: list[dict] = []
        self.version = 0  # bumped when the rows change: the event stream sends them then
        self.lock = threading.Lock()
        self.sampling = threading.Lock()
        self.series: dict[str, Series] = {}  # services that answer their declared metrics path
        self.no_metrics: set[str] = set()  # services that answered it with something else
        self.samples = 0
        self.health: dict[str, tuple] = {}  # name -> (healthy, phase, ident) of the last probe
        # what the services answer is masked as their logs are: the stack's declared secrets (the
        # names come in the plan's view, the values from this process's environment and the .env),
        # the HF token, URL credentials
        names = planned.get("secrets", ())
        self.mask = Redactor(secret_values({}, self.root, names), names)

    def sample(self) -> None:
        with self.sampling:  # the sampler's thread, and an action that wants the new pid at once
            self._sample()

    def _sample(self) -> None:
        records = read_state(self.root)["services"]
        containers = None
        if any(r.get("mode") == "container" for r in records.values()):
            containers = engine_containers_by_id(self.root) or {}
        gpus = resources.gpu_processes()
        now = self.clock()
        rows = []
        for name, planned in self.planned["services"].items():
            record = records.get(name)
            seen = self._look(name, planned, record, containers, gpus) if record else {}
            watch = self.watches[name]
            ident = (record.get("pid") or record.get("container")) if record else None
            watch.observe(str(ident) if ident else None, seen.get("healthy") if seen.get("probed") else None, now)
            rows.append(row(name, planned, record, seen, watch, now))
            if seen.get("healthy") and self.samples % EVERY == 0:
                self._scrape(name, planned, now)
            if name in self.series:
                rows[-1]["metrics"] = self.series[name].as_list()
                rows[-1]["sessions"] = self.series[name].sessions  # each replica's own, in its row
        rows += [left_out_row(n, why) for n, why in self.planned.get("left_out", {}).items()]
        self.samples += 1
        with self.lock:
            if _comparable(rows) != _comparable(self.rows):
                self.version += 1
            self.rows = rows

    def _look(self, name: str, planned: dict, record: dict, containers, gpus) -> dict:
        seen: dict = {"alive": alive(record, containers)}
        if not seen["alive"]:
            return seen
        if record.get("mode") == "native":
            pids = resources.group_pids(record["pid"])
        else:
            pids = container_pids(containers.get(record.get("container")) if containers else None)
        seen.update(resources.usage(pids))
        seen["gpu_memory"] = resources.gpu_memory(pids, gpus)
        last = self.health.get(name)
        if last is None or not last[0] or last[2] != record_ident(record) or self.samples % EVERY == 0:
            healthy, phase = check_health(planned.get("health") or {})
            phase = masked_phase(phase, self.mask)
            self.health[name] = last = (healthy, phase, record_ident(record))
            seen["probed"] = True
        seen["healthy"], seen["phase"] = last[0], last[1]
        return seen

    def _scrape(self, name: str, planned: dict, now: float) -> None:
        """The service's Prometheus endpoint, when the stack declares one (`metrics = "/metrics"`):
        a point for its charts. A service without one is never asked (no 404s in its log)."""
        url, path = planned.get("url"), planned.get("metrics")
        if name in self.no_metrics or not path or not url or not url.startswith("http"):
            return
        try:
            ca = (planned.get("health") or {}).get("ca")
            with urllib.request.urlopen(marked(url.rstrip("/") + path), timeout=1.0,
                                        context=client_context(ca) if ca else None) as resp:
                text = resp.read(1 << 20).decode("utf-8", errors="replace")
        except urllib.error.HTTPError:
            self.no_metrics.add(name)  # declared but not served: asked once, not every 5 s
            return
        except (urllib.error.URLError, OSError, ValueError):
            return
        if "# TYPE" not in text:
            self.no_metrics.add(name)
            return
        self.series.setdefault(name, Series()).add(now, parse(text))

    def note_line(self, service: str, text: str) -> None:
        """Log lines the rows care about: a warm reload and its time."""
        if "Warm reload" in text:
            found = warm_reload(text)
            if found and service in self.watches:
                self.watches[service].reloaded({**found, "at": self.clock()})

    def loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            began = time.monotonic()
            try:
                self.sample()
            except Exception as exc:  # noqa: BLE001 - a sample that fails is retried; the page stays up
                # the message can quote what a service answered: masked like everything shown
                print(self.mask(f"dashboard: sampling failed: {type(exc).__name__}: {exc}"), flush=True)
            stop.wait(max(0.1, PERIOD - (time.monotonic() - began)))


def record_ident(record: dict):
    return record.get("pid") or record.get("container")


def _comparable(rows: list[dict]) -> list:
    return [{k: v for k, v in r.items() if k not in ("uptime",)} for r in rows]


def container_pids(container) -> list[int]:
    """A container's processes as the host numbers them (what NVML reports)."""
    if container is None:
        return []
    try:
        top = container.top(ps_args="-eo pid")
        return [int(p[0]) for p in top.get("Processes") or [] if p and str(p[0]).isdigit()]
    except Exception:  # noqa: BLE001 - stopped between the listing and now
        return []


def check_health(health: dict) -> tuple[bool, dict | None]:
    """(healthy, the model-load phase the service reports in its health answer, e.g. asr's
    {"status": "loading" | "ready", "load_s": ...})."""
    if health.get("kind") != "http" or not health.get("url"):
        return probe_once(Health(health.get("kind", "none"), health.get("url"), 3.0, health.get("ca")),
                          1.0, phase="alive"), None
    try:
        context = client_context(health["ca"]) if health.get("ca") else None
        with urllib.request.urlopen(marked(health["url"]), timeout=1.0, context=context) as resp:
            return 200 <= resp.status < 300, _phase(resp.read(4096))
    except urllib.error.HTTPError as err:
        return False, _phase(err.read(4096))
    except (urllib.error.URLError, OSError, ValueError):
        return False, None


PHASE_TEXT = 200  # characters of one phase value shown (a service's error message, say)


def masked_phase(phase: dict | None, mask) -> dict | None:
    """The phase as the page may show it: numbers as they are, anything else as text, masked of
    the run's secrets and cut short (a service's answer is not ours to trust)."""
    if phase is None:
        return None
    out = {}
    for key, value in phase.items():
        if isinstance(value, float) and not math.isfinite(value):
            out[key] = None  # Python's json reads NaN and Infinity; JSON (the page) has no such numbers
        elif value is None or isinstance(value, (bool, int, float)):
            out[key] = value
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            out[key] = mask(text)[:PHASE_TEXT]
    return out


def _phase(body: bytes) -> dict | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or "status" not in data:
        return None
    return {k: data[k] for k in ("status", "load_s", "model", "backend", "device", "error") if k in data}


# -- logs ------------------------------------------------------------------------------------

POLL = 0.03  # how often an idle log file is looked at: a new line reaches the page within ~0.1 s
READ = 256 << 10  # bytes read at a time: memory stays bounded whatever the file holds


def follow_logs(root: Path, name: str, book: LogBook, run: Run, stop: threading.Event) -> None:
    """Forever (until `stop`): the service's lines into the book, across its restarts."""
    first, followed = True, None
    while not stop.is_set():
        record = read_state(root)["services"].get(name) or {}
        if record.get("mode") == "container" and record.get("container"):
            if record["container"] != followed:  # a new container: all of its lines (the last 200 at first)
                followed = record["container"]
                _follow_container(followed, name, book, run, 200 if first else "all")
        else:
            _follow_file(Layout(root).log(name), name, book, run, stop, first,
                         lambda: (read_state(root)["services"].get(name) or {}).get("mode") == "container")
        first = False
        stop.wait(0.2)


def _deliver(name: str, lines: list[str], book: LogBook, run: Run) -> None:
    if lines:
        book.add(name, lines)
        for text in lines:
            run.note_line(name, text)


def _follow_file(path: Path, name: str, book: LogBook, run: Run, stop: threading.Event, first: bool,
                 switch) -> None:
    """Tail the file: from its last 64 KiB the first time; from the start again when a restart
    truncated it or put a new file in its place."""
    try:
        fh = open(path, "rb")
    except OSError:
        stop.wait(0.2)
        return
    with fh:
        ident = _inode(path)
        if first:
            fh.seek(max(0, fh.seek(0, 2) - 64 * 1024))
        else:
            fh.seek(0, 2)
        lines = Splitter(skip_first=fh.tell() > 0)  # landed inside a line: dropped up to its end
        idle = 0
        while not stop.is_set():
            chunk = fh.read(READ)
            if chunk:
                _deliver(name, lines.feed(chunk), book, run)
                continue
            idle += 1
            if idle % 10 == 0:  # ~3 times a second: truncated, replaced, or now a container?
                try:
                    size = path.stat().st_size
                except OSError:
                    return
                if size < fh.tell():
                    fh.seek(0)
                    lines = Splitter()
                    continue
                if _inode(path) != ident or switch():
                    return
            stop.wait(POLL)


def _inode(path: Path):
    try:
        return path.stat().st_ino
    except OSError:
        return None


def _follow_container(ident: str, name: str, book: LogBook, run: Run, tail) -> None:
    """The engine's log, masked as `inv logs` masks it (a native service's file is masked already)."""
    container = find_container(ident)
    if container is None:
        return
    lines = Splitter()
    try:
        stream = container.logs(stream=True, follow=True, tail=tail)
        for chunk in stream:  # ends when the container stops
            _deliver(name, [run.mask(text) for text in lines.feed(chunk)], book, run)
    except Exception:  # noqa: BLE001 - the engine went away: look again
        pass
