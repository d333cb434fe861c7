"""Plumbing figures for the translation stack (examples/translate) on CPU with a tiny random Qwen2
(tests/support/tiny_models.py) and the real faster-whisper base: what duplex and the servers add, NOT
what Whisper large + Qwen3 on a GPU will take.

  - start to healthy: `inv run [--native] --detach` of asr + mt + frontend from stopped, until every
    health check passes (images already built; the first build is timed apart);
  - end of speech -> translated text: a flite phrase's WAV (the speech has ended) POSTed to asr's
    /transcribe, its text sent as a `final` over mt's /ws/translate, until the translation arrives;
    p50 over the rounds, with its asr and mt parts. The /translate page adds the browser's WAV
    encoding and the frontend's relay (tests/translate/test_chain.py prints the page's own figure).

Usage: python benchmarks/translate_stack.py [--rounds 5] [--skip-containers]
(container mode uses the shared Docker engine: run it under `flock /tmp/duplex-engine.lock`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from tests.support.speech import PHRASES, synthesize  # noqa: E402
from tests.translate.conftest import prepare  # noqa: E402


def p50(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"


def start(chain, flags: list[str]) -> float:
    chain.inv("stop")
    began = time.perf_counter()
    up = chain.inv("run", "--detach", *flags)
    took = time.perf_counter() - began
    if up.returncode != 0:
        raise SystemExit(f"inv run {' '.join(flags)} failed:\n{up.stdout}\n{up.stderr}")
    return took


def speech_to_text(chain, wavs: list[Path], rounds: int) -> tuple[list[float], list[float], list[float]]:
    ends, asr_parts, mt_parts = [], [], []
    mt_ws = chain.url("mt").replace("http://", "ws://") + "/ws/translate"
    with httpx.Client(timeout=120) as http, connect(mt_ws, open_timeout=10) as ws:
        for i in range(rounds + 1):  # the first round warms both up and is not counted
            wav = wavs[i % len(wavs)]
            began = time.perf_counter()
            heard = http.post(chain.url("asr") + "/transcribe", files={"file": (wav.name, wav.read_bytes())})
            heard.raise_for_status()
            asr_done = time.perf_counter()
            ws.send(json.dumps({"type": "final", "id": i, "text": heard.json()["text"]}))
            answer = json.loads(ws.recv(timeout=120))
            done = time.perf_counter()
            assert answer["type"] == "translation" and answer["id"] == i, answer
            if i:
                ends.append(done - began), asr_parts.append(asr_done - began), mt_parts.append(done - asr_done)
    return ends, asr_parts, mt_parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-containers", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="translate-bench-") as tmp:
        work = Path(tmp)
        chain = prepare(work / "chain", work)
        wavs = [synthesize(p, work / f"{i}.wav") for i, p in enumerate(PHRASES)]
        modes = [("native", ["--native"])] + ([] if args.skip_containers else [("container", [])])
        try:
            for mode, flags in modes:
                if mode == "container":
                    print(f"container images built and stack healthy (first run): {start(chain, flags):.1f} s")
                starts = [start(chain, flags) for _ in range(args.rounds)]
                print(f"{mode}: stack start to healthy (asr + mt + frontend, tiny models, CPU): {p50(starts)}")
                ends, asr, mt = speech_to_text(chain, wavs, args.rounds * 2)
                print(f"{mode}: end of speech -> translated text: p50 {p50(ends)}; asr {p50(asr)}; mt {p50(mt)}")
        finally:
            chain.inv("stop", "--all", timeout=300)


if __name__ == "__main__":
    main()
