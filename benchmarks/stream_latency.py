"""Live transcription latency: flite speech replayed at real time through the asr server's WS /stream.

Per backend (the asr server run natively from the asr env, as `inv run --native` does), audio sent
as a microphone sends it (duplex.asr_stream: each 50 ms frame once its audio has passed):
  - the first stream after the server says ready: end of speech -> its first final (nothing
    streamed before it: what the first user after a start or a deploy waits);
  - end of speech -> final text (p50/p95), speech onset -> first partial, partial cadence (gaps
    between partials while speaking), over a passage of four phrases with 0.8 s pauses, spoken by
    two voices (flite's awb and rms), `--rounds` times each;
  - WER of the finals against the reference, beside the batch endpoint's WER on the same phrases;
  - `--streams N` real-time streams at once (pocketsphinx): the same figures, how far each stream's
    last final came after its speech ended (kept up: within 1 s), and the server's CPU seconds
    (its process and workers) per second of audio per stream.
"End of speech" is where the audio stops being loud (duplex.asr_stream.speech_spans), so the
figures include the endpointer's wait for silence. The whisper backend uses the faster-whisper
base model (int8, CPU) built from PyPI wheels (tests/support/whisper_model.py).

Usage: python benchmarks/stream_latency.py [--backends pocketsphinx,whisper] [--rounds 3] [--streams 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from duplex.asr_stream import finals_after_speech, latency_figures, read_pcm, speech_spans, stream_pcm  # noqa: E402
from duplex.scoring import word_error_rate  # noqa: E402
from tests.support.asr_server import asr_server  # noqa: E402
from tests.support.envs import ensure_env  # noqa: E402
from tests.support.speech import PHRASES, concatenate, synthesize  # noqa: E402

VOICES = ("awb", "rms")  # flite's two male 16 kHz voices: pocketsphinx and whisper transcribe both well


def fmt(spread: dict) -> str:
    return "n/a" if spread["p50"] is None else f"p50 {spread['p50']:.2f} s, p95 {spread['p95']:.2f} s (n={spread['n']})"


def batch_seconds(server, clip: Path, n: int = 5) -> float:
    times = []
    for _ in range(n):
        started = time.monotonic()
        assert server.transcribe(clip).status_code == 200
        times.append(time.monotonic() - started)
    return statistics.median(times)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (/proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def measure(backend: str, env: dict, clips: dict, rounds: int, streams: int) -> None:
    python = ensure_env("asr") / "bin" / "python"
    url_of = lambda s: s.url.replace("http://", "ws://") + "/stream"  # noqa: E731
    passages = [read_pcm(clips[f"passage-{voice}"]) for voice in VOICES]
    rate = passages[0][1]
    start = {"type": "start", "sample_rate": rate, "encoding": "pcm_s16le", "language": "en"}
    reference = " ".join(PHRASES)
    with asr_server(python, {"ASR_BACKEND": backend, **env}, name=f"bench-stream-{backend}", timeout=300) as server:
        first_pcm = read_pcm(clips["phrase0"])[0] + b"\0\0" * rate  # a phrase, then a second of silence
        first = asyncio.run(stream_pcm(url_of(server), first_pcm, rate, start=start, timeout=300))
        first_wait = finals_after_speech(first, speech_spans(first_pcm, rate))
        idle = batch_seconds(server, clips["phrase0"])
        runs = []
        for pcm, _ in passages:
            for _ in range(rounds):
                run = asyncio.run(stream_pcm(url_of(server), pcm, rate, start=start, timeout=600))
                assert run.close_code == 1000, (run.close_code, run.close_reason)
                runs.append((run, speech_spans(pcm, rate)))
        batch = " ".join(server.transcribe(clips[f"phrase{i}"]).json()["text"] for i in range(4))
        figures = latency_figures(runs)
        wers = [word_error_rate(reference, run.text) for run, _ in runs]
        print(f"\n{backend} ({runs[0][0].events[0][1]['mode']}), {rounds} x {len(VOICES)} voices x "
              f"{len(passages[0][0]) / 2 / rate:.1f} s passage at real time")
        print(f"  first stream after start   end of speech -> final {first_wait[0]:.2f} s" if first_wait
              else "  first stream after start   no final")
        print(f"  end of speech -> final     {fmt(figures['end_to_final_s'])}")
        print(f"  onset -> first partial     {fmt(figures['onset_to_partial_s'])}")
        print(f"  partial cadence (gaps)     {fmt(figures['partial_gap_s'])}")
        print(f"  WER of finals              {statistics.mean(wers):.3f} (batch on the same phrases: "
              f"{word_error_rate(reference, batch):.3f})")
        print(f"  batch, one phrase          {idle:.2f} s (the stream workers up and idle)")
        if streams > 1:
            pcm, _ = passages[0]
            spans = speech_spans(pcm, rate)

            async def together():
                return await asyncio.gather(*(stream_pcm(url_of(server), pcm, rate, start=start, timeout=600)
                                              for _ in range(streams)))
            pids = [server.proc.pid, *server.workers()]
            cpu_before = cpu_seconds(pids)
            many = asyncio.run(together())
            cpu = (cpu_seconds(pids) - cpu_before) / (streams * len(pcm) / 2 / rate)
            closed = [r.close_code for r in many]
            figures = latency_figures([(r, spans) for r in many])
            behind = [r.of("final")[-1][0] - spans[-1][1] for r in many if r.of("final")]
            kept = sum(b <= 1.0 for b in behind)
            print(f"  {streams} streams at once     closes {sorted(set(closed))}; end of speech -> final "
                  f"{fmt(figures['end_to_final_s'])}")
            print(f"  {'':20}     last final after the speech ended: max {max(behind):.2f} s, {kept} of "
                  f"{streams} within 1 s; WER {statistics.mean(word_error_rate(reference, r.text) for r in many):.3f}; "
                  f"server CPU {cpu:.3f} s per audio s per stream")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="pocketsphinx,whisper")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", type=int, default=16, help="concurrent streams (pocketsphinx only)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        clips = {f"phrase{i}": synthesize(t, d / f"phrase{i}.wav") for i, t in enumerate(PHRASES)}
        for voice in VOICES:
            said = [synthesize(t, d / f"{voice}{i}.wav", voice=voice) for i, t in enumerate(PHRASES)]
            clips[f"passage-{voice}"] = concatenate(said, d / f"passage-{voice}.wav", gap_s=0.8)
        for backend in args.backends.split(","):
            if backend == "pocketsphinx":
                measure(backend, {"ASR_WORKERS": "2", "ASR_STREAM_MAX_SESSIONS": str(max(8, args.streams))},
                        clips, args.rounds, args.streams)
            elif backend == "whisper":
                from tests.support.whisper_model import whisper_base_dir
                measure(backend, {"ASR_MODEL": str(whisper_base_dir()), "ASR_WORKERS": "1"}, clips, args.rounds, 1)
            else:
                raise SystemExit(f"unknown backend {backend!r}: pocketsphinx or whisper")


if __name__ == "__main__":
    main()
