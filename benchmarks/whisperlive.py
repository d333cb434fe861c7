"""duplex's asr server (faster-whisper) beside WhisperLive (its faster-whisper backend), side by side.

The same audio (four flite phrases with 0.8 s pauses, then `--tail` seconds of silence so that
WhisperLive can complete its last segment), the same model files (whisper base, the CTranslate2
conversion duplex serves, int8 on the CPU), the same CTranslate2 threads (duplex: the CPU count
divided by ASR_WORKERS=1; WhisperLive has no setting for it, so its launcher passes the same
`cpu_threads` to the WhisperModel it builds) and one decode at a time on each (duplex: one worker;
WhisperLive: `single_model`, one model behind a lock). `--streams` clients stream at once, at real
time, sending as a microphone does (each 100 ms frame at its end), `--rounds` times. Per phrase:

  - end of speech -> first text: the first message showing the phrase's last word (a partial);
  - end of speech -> final: the first final (WhisperLive: a segment marked `completed`) with it;
  - WER of the finals (WhisperLive: its completed segments) against what was said;
  - the server's CPU seconds (user + system, from /proc) per second of audio streamed.

WhisperLive 0.10.0 runs from a scratch venv this script makes (.duplex/bench/whisperlive), never
duplex's envs: `pip install --no-deps whisper-live==0.10.0` and the few packages its WebSocket
server and faster-whisper backend import. It imports torch only to ask whether CUDA is there; the
venv gets a stand-in module that says no instead of a multi-GB CUDA build of torch.
Its protocol (whisper_live/client.py and server.py): a JSON options message, "SERVER_READY" back,
binary float32 16 kHz frames, b"END_OF_AUDIO"; the server sends {"segments": [...]} with the last
segments, each {start, end, text, completed}.

Usage: python benchmarks/whisperlive.py [--streams 4] [--rounds 1] [--tail 12]
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from duplex.asr_stream import FRAME_S, read_pcm, speech_spans, stream_pcm  # noqa: E402
from duplex.scoring import word_error_rate, words  # noqa: E402
from tests.support.asr_server import LOGS, asr_server  # noqa: E402
from tests.support.envs import ensure_env  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.speech import PHRASES, concatenate, synthesize  # noqa: E402
from tests.support.whisper_model import whisper_base_dir  # noqa: E402

VENV = ROOT / ".duplex" / "bench" / "whisperlive"
WHISPERLIVE = "whisper-live==0.10.0"
DEPS = ("faster-whisper==1.2.0", "onnxruntime", "websockets", "fastapi", "uvicorn", "requests")
TORCH_STAND_IN = '''"""Stand-in (benchmarks/whisperlive.py): WhisperLive imports torch only to ask for CUDA."""
from types import SimpleNamespace
cuda = SimpleNamespace(is_available=lambda: False, get_device_capability=lambda *a: (0, 0))
'''
LAUNCHER = '''
import functools, sys
import whisper_live.backend.faster_whisper_backend as backend
from whisper_live.server import TranscriptionServer
backend.WhisperModel = functools.partial(backend.WhisperModel, cpu_threads=int(sys.argv[3]))
TranscriptionServer().run("127.0.0.1", int(sys.argv[1]), backend="faster_whisper",
                          faster_whisper_custom_model_path=sys.argv[2], single_model=True, max_clients=16)
'''


def whisperlive_python() -> Path:
    python = VENV / "bin" / "python"
    if (VENV / ".ready").is_file():
        return python
    print(f"making WhisperLive's scratch venv in {VENV} (once, ~30 s)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "--no-deps", WHISPERLIVE], check=True)
    subprocess.run([*pip, *DEPS], check=True)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "torch").mkdir(exist_ok=True)
    (Path(site) / "torch" / "__init__.py").write_text(TORCH_STAND_IN)
    (VENV / ".ready").write_text(f"{WHISPERLIVE} {' '.join(DEPS)}\n")
    return python


class WhisperLiveServer:
    def __init__(self, model: Path, threads: int):
        self.port = free_port()
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log = open(LOGS / "bench-whisperlive.log", "w")
        self.proc = subprocess.Popen([str(whisperlive_python()), "-c", LAUNCHER, str(self.port), str(model), str(threads)],
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=tempfile.gettempdir())
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"WhisperLive did not start: see {self.log.name}") from None
                time.sleep(0.2)
        self.url = f"ws://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


async def whisperlive_stream(url: str, pcm: bytes, rate: int) -> list[tuple[float, dict]]:
    """WhisperLive's client protocol at real time: [(seconds after the first frame, message)]."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed
    uid = str(uuid.uuid4())
    events: list[tuple[float, dict]] = []
    async with connect(url, max_size=2**24, open_timeout=30) as ws:
        await ws.send(json.dumps({"uid": uid, "language": "en", "task": "transcribe", "model": "base",
                                  "use_vad": True, "send_last_n_segments": 10, "no_speech_thresh": 0.45,
                                  "clip_audio": False, "same_output_threshold": 10}))
        while json.loads(await asyncio.wait_for(ws.recv(), 120)).get("message") != "SERVER_READY":
            pass
        audio = array.array("f", (x / 32768 for x in array.array("h", pcm)))  # float32, what it reads by default
        step = int(rate * FRAME_S)
        t0 = time.monotonic()

        async def send() -> None:
            for offset in range(0, len(audio), step):
                frame = audio[offset:offset + step]
                await asyncio.sleep(max(0.0, t0 + (offset + len(frame)) / rate - time.monotonic()))
                await ws.send(frame.tobytes())
            await ws.send(b"END_OF_AUDIO")

        sender = asyncio.create_task(send())
        try:
            async for message in ws:
                events.append((time.monotonic() - t0, json.loads(message)))
        except ConnectionClosed:
            pass
        await sender
    return events


def whisperlive_shown(events, completed_only: bool) -> list[tuple[float, str, float, float]]:
    """(arrival, text, start, end) of every segment shown, or only the completed ones."""
    return [(t, s["text"], float(s["start"]), float(s["end"])) for t, m in events for s in m.get("segments", ())
            if s.get("completed") or not completed_only]


def whisperlive_text(events) -> str:
    completed = {}
    for _t, text, start, _end in whisperlive_shown(events, True):
        completed.setdefault(round(start, 2), text.strip())
    return " ".join(completed[k] for k in sorted(completed))


def duplex_shown(run, finals_only: bool) -> list[tuple[float, str, float, float]]:
    return [(t, e["text"], e["start"], e["end"]) for t, e in run.events
            if e.get("type") == "final" or (e.get("type") == "partial" and not finals_only)]


def waits(shown, spans) -> list[float]:
    """Per phrase: its end of speech -> the first message showing its last word in a segment around it."""
    out = []
    for (start, end), phrase in zip(spans, PHRASES, strict=True):
        last = words(phrase)[-1]
        times = [t for t, text, a, b in shown if last in words(text) and b >= start and a <= end + 0.5 and t >= start]
        if times:
            out.append(min(times) - end)
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime, all threads


def median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s" if values else "n/a"


def report(name: str, first: list[float], final: list[float], wers: list[float], cpu: float, audio_s: float,
           phrases: int) -> dict:
    print(f"\n{name}")
    print(f"  end of speech -> first text   p50 {median(first)}  (max {max(first, default=float('nan')):.2f} s, "
          f"{len(first)}/{phrases} phrases)")
    print(f"  end of speech -> final        p50 {median(final)}  (max {max(final, default=float('nan')):.2f} s, "
          f"{len(final)}/{phrases} phrases)")
    print(f"  WER of the finals             {statistics.mean(wers):.3f}")
    print(f"  server CPU per audio second   {cpu / audio_s:.3f} s ({cpu:.1f} CPU s for {audio_s:.0f} s of audio)")
    return {"first_text_p50": statistics.median(first) if first else None,
            "final_p50": statistics.median(final) if final else None, "final_max": max(final, default=None),
            "wer": statistics.mean(wers), "cpu_per_audio_s": cpu / audio_s,
            "phrases": phrases, "first_n": len(first), "final_n": len(final)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=4, help="clients streaming at once")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--tail", type=float, default=12.0, help="seconds of silence after the phrases")
    parser.add_argument("--only", choices=("duplex", "whisperlive"), help="measure one side only")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    model = whisper_base_dir()
    threads = max(1, os.cpu_count() or 1)  # duplex with ASR_WORKERS=1: cpu_count // 1
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        clips = [synthesize(t, d / f"phrase{i}.wav") for i, t in enumerate(PHRASES)]
        pcm, rate = read_pcm(concatenate(clips, d / "passage.wav", gap_s=0.8))
    spans = speech_spans(pcm, rate)
    pcm += b"\0\0" * int(args.tail * rate)
    audio_s = len(pcm) / 2 / rate * args.streams * args.rounds
    reference = " ".join(PHRASES)
    phrases = len(spans) * args.streams * args.rounds
    print(f"{args.streams} streams at once x {args.rounds} round(s) of {len(pcm) / 2 / rate:.1f} s "
          f"(four phrases, then {args.tail:g} s of silence); whisper base int8 CPU, {threads} threads; "
          f"load average {load:.1f} before")
    results = {}

    if args.only != "whisperlive":
        env = {"ASR_BACKEND": "whisper", "ASR_MODEL": str(model), "ASR_WORKERS": "1", "ASR_LANGUAGE": "en"}
        with asr_server(ensure_env("asr") / "bin" / "python", env, name="bench-whisperlive-duplex", timeout=300) as server:
            url = server.url.replace("http://", "ws://") + "/stream"
            asyncio.run(stream_pcm(url, pcm[:rate * 4], rate, realtime=False, timeout=300))  # warm
            before = cpu_seconds(server.proc.pid)
            runs = []
            for _ in range(args.rounds):
                runs += asyncio.run(_gather(stream_pcm(url, pcm, rate, timeout=600) for _ in range(args.streams)))
            cpu = cpu_seconds(server.proc.pid) - before
        closes = sorted({(r.close_code, r.close_reason) for r in runs})
        if closes != [(1000, "done")]:
            print(f"duplex's streams closed with {closes}")
        results["duplex"] = report("duplex (WS /stream, local-agreement)",
                                   sum((waits(duplex_shown(r, False), spans) for r in runs), []),
                                   sum((waits(duplex_shown(r, True), spans) for r in runs), []),
                                   [word_error_rate(reference, r.text) for r in runs], cpu, audio_s, phrases)

    if args.only != "duplex":
        server = WhisperLiveServer(model, threads)
        try:
            asyncio.run(whisperlive_stream(server.url, pcm[:rate * 4], rate))  # warm: loads the model
            before = cpu_seconds(server.proc.pid)
            runs = []
            for _ in range(args.rounds):
                runs += asyncio.run(_gather(whisperlive_stream(server.url, pcm, rate) for _ in range(args.streams)))
            cpu = cpu_seconds(server.proc.pid) - before
        finally:
            server.stop()
        results["whisperlive"] = report("WhisperLive 0.10.0 (faster_whisper backend, use_vad)",
                                        sum((waits(whisperlive_shown(r, False), spans) for r in runs), []),
                                        sum((waits(whisperlive_shown(r, True), spans) for r in runs), []),
                                        [word_error_rate(reference, whisperlive_text(r)) for r in runs], cpu,
                                        audio_s, phrases)
    if args.json:
        args.json.write_text(json.dumps({"streams": args.streams, "rounds": args.rounds, "tail_s": args.tail,
                                         "threads": threads, "load_before": load, **results}, indent=2))


async def _gather(coros):
    return await asyncio.gather(*coros)


if __name__ == "__main__":
    main()
