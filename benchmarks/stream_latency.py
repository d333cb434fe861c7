"""Live transcription latency: flite speech replayed at real time through the asr server's WS /stream.

Per backend (the asr server run natively from the asr env, as `inv run --native` does):
  - end of speech -> final text (p50/p95), speech onset -> first partial, partial cadence (gaps
    between partials while speaking), over a passage of four phrases with 0.8 s pauses, `--rounds` times;
  - WER of the finals against the reference, beside the batch endpoint's WER on the same phrases;
  - `--streams N` real-time streams at once (pocketsphinx): the same figures, and how far the last
    final of each stream came after its audio ended (kept up or fell behind);
  - the batch endpoint's time for one phrase before any stream and after the stream workers are up
    and idle (what streaming costs it when nobody streams).
"End of speech" is where the audio stops being loud (duplex.asr_stream.speech_spans), so the
figures include the endpointer's wait for silence. The whisper backend uses the faster-whisper
base model (int8, CPU) built from PyPI wheels (tests/support/whisper_model.py).

Usage: python benchmarks/stream_latency.py [--backends pocketsphinx,whisper] [--rounds 3] [--streams 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from duplex.asr_stream import latency_figures, read_pcm, speech_spans, stream_pcm  # noqa: E402
from duplex.scoring import word_error_rate  # noqa: E402
from tests.support.asr_server import asr_server  # noqa: E402
from tests.support.envs import ensure_env  # noqa: E402
from tests.support.speech import PHRASES, concatenate, synthesize  # noqa: E402


def fmt(spread: dict) -> str:
    return "n/a" if spread["p50"] is None else f"p50 {spread['p50']:.2f} s, p95 {spread['p95']:.2f} s (n={spread['n']})"


def batch_seconds(server, clip: Path, n: int = 5) -> float:
    times = []
    for _ in range(n):
        started = time.monotonic()
        assert server.transcribe(clip).status_code == 200
        times.append(time.monotonic() - started)
    return statistics.median(times)


def measure(backend: str, env: dict, clips: dict, rounds: int, streams: int) -> None:
    python = ensure_env("asr") / "bin" / "python"
    pcm, rate = read_pcm(clips["passage"])
    spans = speech_spans(pcm, rate)
    url_of = lambda s: s.url.replace("http://", "ws://") + "/stream"  # noqa: E731
    start = {"type": "start", "sample_rate": rate, "encoding": "pcm_s16le", "language": "en"}
    with asr_server(python, {"ASR_BACKEND": backend, **env}, name=f"bench-stream-{backend}", timeout=300) as server:
        idle_before = batch_seconds(server, clips["phrase0"])
        warm = asyncio.run(stream_pcm(url_of(server), pcm[:rate * 2], rate, realtime=False, start=start, timeout=300))
        assert warm.close_code == 1000, warm.close_reason
        idle_after = batch_seconds(server, clips["phrase0"])
        runs = []
        for _ in range(rounds):
            run = asyncio.run(stream_pcm(url_of(server), pcm, rate, start=start, timeout=600))
            assert run.close_code == 1000, (run.close_code, run.close_reason)
            runs.append(run)
        batch = " ".join(server.transcribe(clips[f"phrase{i}"]).json()["text"] for i in range(4))
        reference = " ".join(PHRASES)
        figures = latency_figures([(run, spans) for run in runs])
        wers = [word_error_rate(reference, run.text) for run in runs]
        print(f"\n{backend} ({run.events[0][1]['mode']}), {rounds} x {len(pcm) / 2 / rate:.1f} s passage at real time")
        print(f"  end of speech -> final     {fmt(figures['end_to_final_s'])}")
        print(f"  onset -> first partial     {fmt(figures['onset_to_partial_s'])}")
        print(f"  partial cadence (gaps)     {fmt(figures['partial_gap_s'])}")
        print(f"  WER of finals              {statistics.mean(wers):.3f} (batch on the same phrases: "
              f"{word_error_rate(reference, batch):.3f})")
        print(f"  batch, one phrase          {idle_before:.2f} s before any stream, {idle_after:.2f} s "
              "with the stream workers up and idle")
        if streams > 1:
            async def together():
                return await asyncio.gather(*(stream_pcm(url_of(server), pcm, rate, start=start, timeout=600)
                                              for _ in range(streams)))
            many = asyncio.run(together())
            closed = [r.close_code for r in many]
            figures = latency_figures([(r, spans) for r in many])
            behind = [r.of("final")[-1][0] - r.audio_s for r in many if r.of("final")]
            print(f"  {streams} streams at once     closes {sorted(set(closed))}; end of speech -> final "
                  f"{fmt(figures['end_to_final_s'])}")
            print(f"  {'':20}     last final after the audio ended: max {max(behind):.2f} s; WER "
                  f"{statistics.mean(word_error_rate(reference, r.text) for r in many):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="pocketsphinx,whisper")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", type=int, default=8, help="concurrent streams (pocketsphinx only)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        clips = {f"phrase{i}": synthesize(t, d / f"phrase{i}.wav") for i, t in enumerate(PHRASES)}
        clips["passage"] = concatenate([clips[f"phrase{i}"] for i in range(4)], d / "passage.wav", gap_s=0.8)
        for backend in args.backends.split(","):
            if backend == "pocketsphinx":
                measure(backend, {"ASR_WORKERS": "2"}, clips, args.rounds, args.streams)
            elif backend == "whisper":
                from tests.support.whisper_model import whisper_base_dir
                measure(backend, {"ASR_MODEL": str(whisper_base_dir()), "ASR_WORKERS": "1"}, clips, args.rounds, 1)
            else:
                raise SystemExit(f"unknown backend {backend!r}: pocketsphinx or whisper")


if __name__ == "__main__":
    main()
