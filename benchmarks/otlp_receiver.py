"""The dashboard's OTLP trace receiver and log filter under hostile input (issue 28's figures): the
real dashboard process (tests/support/receiver.py), a client polling GET /api/services every 20 ms
meanwhile, and the dashboard's RSS sampled as it goes.

  1. a gzip bomb: 1 GiB of zeros gzipped (~1 MiB on the wire) posted to /v1/traces;
  2. a span flood: --exports (200) exports of 2,500 spans each into one trace;
  3. a catastrophic regex filter, `(x+x+)+y`, over one kept line of --line (26) x's, and (not with
     --source: Python's re would take years) of 5,000 x's.

Prints, for each: the answer, the dashboard's peak RSS, and the longest /api/services answer
(the stall). `--source DIR` runs the dashboard of another checkout (e.g. a `git worktree` of the
commit before the fix) for the before figures.

Usage: python benchmarks/otlp_receiver.py [--exports 200] [--line 26] [--source DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.receiver import Board, Stall, gzip_bomb, many_spans  # noqa: E402

MiB = 1 << 20


def report(what: str, answer: str, before: int, stall: Stall, extra: str = "") -> None:
    print(f"{what:<34} {answer:<28} peak RSS {stall.peak / MiB:7.1f} MiB (from {before / MiB:.1f}), "
          f"longest /api/services {stall.longest:6.3f} s over {stall.polls} polls{extra}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exports", type=int, default=200)
    parser.add_argument("--line", type=int, default=26)
    parser.add_argument("--source", type=Path, help="another checkout whose dashboard to measure")
    args = parser.parse_args()
    bomb = gzip_bomb(1 << 30)
    print(f"dashboard of {args.source or ROOT}; bomb {len(bomb) / MiB:.2f} MiB gzipped", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        with Board(Path(tmp) / "bomb", args.source) as board:
            board.post(many_spans(b"\x01" * 16, 10))  # the decoding stack loaded
            before = board.rss()
            with Stall(board) as stall:
                answer = board.post(bomb, content_encoding="gzip", timeout=120)
            report("1 GiB gzip bomb (1 MiB on the wire)", f"HTTP {answer.status_code}", before, stall)
        with Board(Path(tmp) / "flood", args.source) as board:
            board.post(many_spans(b"\x01" * 16, 10))
            before, codes = board.rss(), set()
            began = time.monotonic()
            with Stall(board) as stall:
                for i in range(args.exports):
                    codes.add(board.post(many_spans(b"\x03" * 16, 2500, first=i * 2500)).status_code)
                traces = board.get("/api/traces", timeout=120)
            report(f"{args.exports} x 2,500 spans into one trace", f"HTTP {sorted(codes)} in "
                   f"{time.monotonic() - began:.1f} s", before, stall,
                   f"; /api/traces {len(traces.content) / MiB:.2f} MiB")
        # Python's re doubles its time with each x more: 5,000 only where the filter is bounded
        for length in (args.line,) if args.source else (args.line, 5000):
            with Board(Path(tmp) / f"regex{length}", args.source) as board:
                board.log_lines("x" * length)
                while not board.get("/api/logs").json()["lines"]:
                    time.sleep(0.1)
                before = board.rss()
                with Stall(board) as stall:
                    began = time.monotonic()
                    answer = board.get("/api/logs", params={"q": "(x+x+)+y", "regex": "1"}, timeout=600)
                    took = time.monotonic() - began
                report(f"regex (x+x+)+y over {length:,} x's", f"HTTP {answer.status_code} in {took:.2f} s",
                       before, stall)
    return 0


if __name__ == "__main__":
    sys.exit(main())
