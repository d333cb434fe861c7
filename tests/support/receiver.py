"""The real dashboard process (`python -m duplex.dashboard ROOT`, as `inv run` starts it) on a
project with no services running, with its OTLP/HTTP trace receiver: for tests and benchmarks that
feed it hostile exports and log lines and time it from outside. Also real OTLP export bodies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil

from tests.support.net import free_ports, stop_process

TOKEN = "t0ken-of-this-run-0123456789"
PLANNED = {"stack": "demo", "native": True, "order": ["asr"], "left_out": {},
           "services": {"asr": {"mode": "native", "url": "http://127.0.0.1:9", "depends_on": {}, "gpu": None,
                                "health": {"kind": "http", "url": "http://127.0.0.1:9/health"}}}}


class Board:
    """`with Board(tmp_path) as b:` a dashboard listening on b.base (token b.token) and receiving
    traces on b.otlp; b.log_lines(...) writes asr's log file, which the dashboard follows."""

    def __init__(self, root: Path, source: Path | None = None):
        self.root, self.source = Path(root), source  # source: another checkout's duplex (a benchmark's "before")
        self.port, self.otlp_port = free_ports(2)
        self.base, self.otlp = f"http://127.0.0.1:{self.port}", f"http://127.0.0.1:{self.otlp_port}"
        self.token = TOKEN
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Board":
        run = self.root / ".duplex" / "run"
        run.mkdir(parents=True, exist_ok=True)
        (self.root / ".duplex" / "logs").mkdir(parents=True, exist_ok=True)
        (self.root / ".duplex" / "logs" / "asr.log").touch()  # followed from its start
        info = {"port": self.port, "token": TOKEN, "planned": PLANNED, "pid": None, "start_time": None,
                "otlp_port": self.otlp_port, "started": True}
        fd = os.open(run / "dashboard.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(info, fh)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DUPLEX_DASHBOARD_")}
        if self.source is not None:
            env["PYTHONPATH"] = str(self.source)
        self.output = self.root / "dashboard.out"
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "duplex.dashboard", str(self.root)], cwd=self.root,
                                         env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self._wait()
        return self

    def _wait(self) -> None:
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, self.output.read_text(errors="replace")
            try:
                if self.get("/api/services").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, self.output.read_text(errors="replace")
            time.sleep(0.1)

    def __exit__(self, *exc) -> None:
        stop_process(self.proc, 5)

    def get(self, path: str, timeout: float = 30, **kw) -> httpx.Response:
        return httpx.get(self.base + path, headers={"x-duplex-token": TOKEN}, timeout=timeout, **kw)

    def post(self, body: bytes, content_type: str = "application/x-protobuf", timeout: float = 60,
             **headers) -> httpx.Response:
        """An export to the receiver, as an OTLP/HTTP exporter sends it."""
        return httpx.post(f"{self.otlp}/v1/traces", content=body, timeout=timeout,
                          headers={"content-type": content_type, **{k.replace("_", "-"): v for k, v in headers.items()}})

    def rss(self) -> int:
        return psutil.Process(self.proc.pid).memory_info().rss

    def log_lines(self, *lines: str) -> None:
        with open(self.root / ".duplex" / "logs" / "asr.log", "a", encoding="utf-8") as fh:
            fh.write("".join(line + "\n" for line in lines))

    def link(self) -> str:
        return f"{self.base}/?t={TOKEN}"


class Stall:
    """`with Stall(board) as s:` polls GET /api/services meanwhile; s.longest is the slowest answer
    (s), s.peak the dashboard's highest RSS seen (bytes)."""

    def __init__(self, board: Board, every: float = 0.02):
        self.board, self.every = board, every
        self.longest, self.peak, self.polls = 0.0, board.rss(), 0
        self._stop = threading.Event()

    def _poll(self) -> None:
        with httpx.Client(headers={"x-duplex-token": TOKEN}, timeout=600) as client:
            while not self._stop.is_set():
                began = time.monotonic()
                client.get(self.board.base + "/api/services")
                self.longest = max(self.longest, time.monotonic() - began)
                self.polls += 1
                self._stop.wait(self.every)

    def _sample(self) -> None:  # apart from the polls, which wait while the dashboard stalls
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.board.rss())
            except psutil.Error:
                return
            self._stop.wait(0.005)

    def __enter__(self) -> "Stall":
        self._threads = [threading.Thread(target=run, daemon=True) for run in (self._poll, self._sample)]
        for thread in self._threads:
            thread.start()
        time.sleep(0.1)
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.1)
        self._stop.set()
        for thread in self._threads:
            thread.join(600)


def export(trace: bytes, spans: list[tuple[bytes, bytes, str, int, int]], service: str = "asr") -> bytes:
    """A protobuf ExportTraceServiceRequest: one service's spans (span id, parent id, name, start ns,
    end ns) of one trace."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    attr = rs.resource.attributes.add()
    attr.key, attr.value.string_value = "service.name", service
    scope = rs.scope_spans.add()
    for span_id, parent, name, start, end in spans:
        span = scope.spans.add()
        span.trace_id, span.span_id, span.parent_span_id = trace, span_id, parent
        span.name, span.start_time_unix_nano, span.end_time_unix_nano = name, start, end
    return req.SerializeToString()


def many_spans(trace: bytes, count: int, first: int = 0) -> bytes:
    """`count` spans of one trace, children of one root, with distinct ids from `first` on."""
    return export(trace, [((first + i + 1).to_bytes(8, "big"), b"\x00" * 7 + b"\x01", f"GET /item/{first + i}",
                           1_000_000_000 + i, 1_000_500_000 + i) for i in range(count)])


def gzip_bomb(size: int) -> bytes:
    """`size` zero bytes gzipped (about 1/1000 of that on the wire), made without holding them."""
    import zlib
    pack = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block, parts = bytes(1 << 20), []
    for _ in range(size >> 20):
        parts.append(pack.compress(block))
    parts.append(pack.flush())
    return b"".join(parts)
