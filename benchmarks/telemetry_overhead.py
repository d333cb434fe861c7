"""What telemetry costs a request: the asr server with OpenTelemetry off vs exporting spans.

    python benchmarks/telemetry_overhead.py [--repeat 20]

Runs the real ASR server (pocketsphinx, its env from `inv setup`) twice on free ports, once with
OTEL_SDK_DISABLED=true and once exporting to an OTLP/HTTP receiver on loopback. Each gets the same
warm-up and the same requests: POST /transcribe of the bundled 1.8 s sample, and POST /transcribe
with an empty body (a 400 answered without decoding: the request path alone, where a per-request
cost shows most).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from duplex.run.smoke_apps import SAMPLE  # noqa: E402
from tests.support.asr_server import asr_server  # noqa: E402
from tests.support.envs import ensure_env  # noqa: E402
from tests.support.otlp import Collector  # noqa: E402
from tests.support.timing import timed  # noqa: E402


def measure(python: Path, env: dict, repeat: int) -> dict[str, list[float]]:
    audio = SAMPLE.read_bytes()
    with asr_server(python, env, name="otel-bench") as server, httpx.Client(timeout=60) as client:
        def speech():
            assert client.post(f"{server.url}/transcribe", files={"file": ("a.wav", audio)}).status_code == 200

        def empty():
            assert client.post(f"{server.url}/transcribe", content=b"").status_code == 400
        timed(speech, 3), timed(empty, 10)  # warm-up: first decode, connection
        return {"transcribe 1.8 s": timed(speech, repeat), "rejected request": timed(empty, repeat * 5)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    python = ensure_env("asr") / "bin" / "python"
    with Collector() as collector:
        off = measure(python, {"OTEL_SDK_DISABLED": "true"}, args.repeat)
        on = measure(python, {"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
                              "OTEL_SERVICE_NAME": "asr", "OTEL_BSP_SCHEDULE_DELAY": "500"}, args.repeat)
        time.sleep(1)
        spans = len(collector.spans)
    print(f"asr server, pocketsphinx, {args.repeat} requests each (medians; spans received: {spans})")
    for what in off:
        a, b = statistics.median(off[what]), statistics.median(on[what])
        print(f"  {what:<18} off {a * 1000:7.2f} ms   on {b * 1000:7.2f} ms   "
              f"overhead {(b - a) * 1000:+6.2f} ms ({b / a:.2f}x)")


if __name__ == "__main__":
    main()
