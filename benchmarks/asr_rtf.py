"""Speed of the ASR server: audio seconds transcribed per wall second, per backend and concurrency.

    python benchmarks/asr_rtf.py [--backends pocketsphinx,whisper] [--concurrency 1,2,4] [--workers N] [--json]

Each backend runs as a real uvicorn process from `.duplex/envs/asr` (built from the lock when
missing); the audio is flite speech (short phrases, and one ~27 s clip cut at pauses). "x realtime"
is audio seconds / wall seconds (higher is faster); "RTF" is the usual inverse (wall / audio).
Whisper uses the faster-whisper base model built from PyPI (tests/support/whisper_model.py),
CPU int8, language fixed to English.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.asr_server import asr_server  # noqa: E402
from tests.support.envs import ensure_env  # noqa: E402
from tests.support.speech import PHRASES, concatenate, synthesize, word_error_rate  # noqa: E402
from tests.support.whisper_model import whisper_base_dir  # noqa: E402


def clips(workdir: Path) -> tuple[list[tuple[Path, str]], tuple[Path, str]]:
    short = [(synthesize(text, workdir / f"p{i}.wav"), text) for i, text in enumerate(PHRASES)]
    order = [0, 1, 2, 3, 0, 1, 2, 3]
    long = concatenate([short[i][0] for i in order], workdir / "long.wav")
    return short, (long, " ".join(PHRASES[i] for i in order))


def run_load(server, work: list[tuple[Path, str]], concurrency: int) -> dict:
    """Send every clip in `work`, `concurrency` in flight at once; return the figures."""
    def one(item):
        path, text = item
        started = time.monotonic()
        response = server.transcribe(path, timeout=600)
        response.raise_for_status()
        body = response.json()
        return body["duration_s"], time.monotonic() - started, word_error_rate(text, body["text"])

    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, work))
    wall = time.monotonic() - started
    audio = sum(r[0] for r in results)
    return {"requests": len(results), "concurrency": concurrency, "audio_s": round(audio, 2),
            "wall_s": round(wall, 2), "x_realtime": round(audio / wall, 2), "rtf": round(wall / audio, 3),
            "latency_median_s": round(statistics.median(r[1] for r in results), 2),
            "wer_mean": round(statistics.mean(r[2] for r in results), 3)}


def bench(backend: str, python: Path, levels: list[int], workdir: Path, workers: str) -> list[dict]:
    env = {"ASR_BACKEND": backend, **({"ASR_WORKERS": workers} if workers else {})}
    if backend == "whisper":
        env.update(ASR_MODEL=str(whisper_base_dir()), ASR_LANGUAGE="en")
    short, long = clips(workdir)
    rows = []
    with asr_server(python, env, name=f"bench-asr-{backend}") as server:
        server.transcribe(short[0][0])  # warm up
        workers = server.health().json()["workers"]
        for level in levels:
            figures = run_load(server, short * 2, level)  # 8 short phrases
            rows.append({"backend": backend, "workers": workers, "clip": "short ~3 s", **figures})
        figures = run_load(server, [long], 1)
        rows.append({"backend": backend, "workers": workers, "clip": "long ~27 s", **figures})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="pocketsphinx,whisper")
    parser.add_argument("--concurrency", default="1,2,4")
    parser.add_argument("--workers", default="", help="ASR_WORKERS (default: the server's, min(2, cores))")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    args = parser.parse_args()
    python = ensure_env("asr") / "bin" / "python"
    levels = [int(x) for x in args.concurrency.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            rows += bench(backend, python, levels, Path(tmp), args.workers)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"ASR server speed, {os.cpu_count()} CPU cores (x realtime = audio s / wall s; higher is faster)")
    head = ("backend", "workers", "clip", "concurrency", "requests", "audio_s", "wall_s", "x_realtime",
            "rtf", "latency_median_s", "wer_mean")
    print("  ".join(f"{h:>12}" for h in head))
    for row in rows:
        print("  ".join(f"{str(row[h]):>12}" for h in head))


if __name__ == "__main__":
    main()
