"""What the frontend's relay adds to a session's connect, with one replica behind it and with two.

    python benchmarks/front_replicas.py [--repeat 300]

WebSocket echo servers stand in for moshi (its handshake byte first, tests/support/frontend.py),
each in its own process; the frontend runs as `inv run` runs it (uvicorn, its env from `inv setup`).
One connect = open the WebSocket and receive the backend's first frame, then close; sessions one
after another, so each finds every replica free, the cases interleaved (a round = one connect
to each) so a shared machine's load falls on all alike. Cases: straight to an echo server (no relay), the
relay with MOSHI_WS_URL naming one echo server, two (sessions alternate), two entries that are the
same server (the pool's own cost, without a second backend process to wake), and two behind a dead
first entry (refused, marked down, tried again every 5 s); last the first case again in a frontend
process of its own, started last: the spread between two like processes, the noise floor (on a
shared 2-core box it is as large as any difference between the cases).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.envs import ensure_env  # noqa: E402
from tests.support.frontend import echo_servers, frontend  # noqa: E402
from tests.support.net import free_port  # noqa: E402


async def connect_once(url: str) -> float:
    """Seconds from opening `url` to its first frame."""
    started = time.perf_counter()
    async with websockets.connect(url) as ws:
        first = await ws.recv()
        took = time.perf_counter() - started
    assert first == b"\x00", first  # a handshake, never a refusal
    return took


async def rounds(urls: dict[str, str], repeat: int) -> dict[str, list[float]]:
    """One connect to each case per round, the cases interleaved so the machine's load (other work
    on a shared box) falls on all alike; 20 warm-up rounds not counted."""
    times: dict[str, list[float]] = {what: [] for what in urls}
    cases = list(urls.items())
    for i in range(repeat + 20):
        for what, url in cases[i % len(cases):] + cases[:i % len(cases)]:  # each case first in turn
            took = await connect_once(url)
            if i >= 20:
                times[what].append(took)
    return times


def figures(times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    return f"median {statistics.median(ms):5.2f} ms   p95 {ms[int(len(ms) * 0.95)]:5.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    python = ensure_env("frontend") / "bin" / "python"
    dead = f"ws://127.0.0.1:{free_port()}/api/chat"
    cases = (("relay, 1 replica", "{one}"), ("relay, 2 replicas", "{one},{two}"),
             ("relay, 2 on 1 server", "{one},{one}?replica=2"),  # the pool's own cost: one backend process
             ("relay, 2 + 1 dead", f"{dead},{{one}},{{two}}"),
             ("relay, 1 replica again", "{one}"))  # the control: how far two like frontends differ
    with echo_servers(python, 2) as (one, two), ExitStack() as stack:
        urls = {"direct (no relay)": one}
        for what, pattern in cases:
            # 4 slots each: a session that just closed may not have left its slot yet (sequential runs)
            base = stack.enter_context(frontend(python, f"bench-front-replicas-{len(urls)}",
                                                MOSHI_WS_URL=pattern.format(one=one, two=two), MOSHI_SESSIONS="4"))
            urls[what] = base.replace("http://", "ws://") + "/api/chat"
        results = asyncio.run(rounds(urls, args.repeat))
    base_ms = statistics.median(results["direct (no relay)"]) * 1000
    print(f"session connect (open + first frame), {args.repeat} sessions each, one after another, interleaved")
    for what, times in results.items():
        added = statistics.median(times) * 1000 - base_ms
        print(f"  {what:<22} {figures(times)}   relay adds {added:+5.2f} ms")


if __name__ == "__main__":
    main()
