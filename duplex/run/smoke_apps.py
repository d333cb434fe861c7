"""Smoke checks of duplex's own apps, named by module path: transcribe the sample (asr), translate
its words (mt), load the page and its config (frontend); the sample streamed at real time (asr's latency)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid
import wave
from pathlib import Path

from ..asr_stream import passage, replay, stream_url
from ..scoring import word_error_rate
from .smoke_results import SmokeResult, Target

SAMPLE = Path(__file__).parents[1] / "data" / "hello.wav"  # flite awb, 16 kHz mono, 1.8 s
EXPECTED = "hello world this is a test"
MAX_WER = 0.34  # two words in six may go wrong: pocketsphinx on CPU is not whisper
# duplex names servers only by module path: the check follows the app a service runs.
ASR_APP = "servers.asr.app:app"
FRONTEND_APP = "servers.frontend.app:app"
MT_APP = "servers.mt.app:app"


class Problem(Exception):
    def __init__(self, check: str, message: str):
        super().__init__(message)
        self.check = check


def _fetch(url: str, check: str, timeout: float, context, data: bytes | None = None,
           headers: dict | None = None) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:
            return resp.status, resp.headers.get("content-type", ""), resp.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
        raise Problem(check, f"{request.get_method()} {url} answered {exc.code}: {_said(body)}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise Problem(check, f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from exc


def _said(body: bytes) -> str:
    try:
        data = json.loads(body)
        return " ".join(str(data.get(k)) for k in ("error", "detail") if data.get(k)) or body[:200].decode()
    except (ValueError, AttributeError):
        return body[:200].decode("utf-8", "replace")


def check_asr(url: str, sample: Path, expected: str, timeout: float, context):
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{sample.name}\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode() + sample.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    _, _, raw = _fetch(f"{url}/transcribe", "transcribe", timeout, context, data=body,
                       headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    answer = json.loads(raw)
    text = answer.get("text", "")
    wer = word_error_rate(expected, text)
    detail = {"text": text, "expected": expected, "wer": round(wer, 3), "backend": answer.get("backend"),
              "processing_s": answer.get("processing_s")}
    verdict = "pass" if wer <= MAX_WER else "fail"
    return verdict, f"heard {text!r} (WER {wer:.2f}, bound {MAX_WER}) from {answer.get('backend')}", detail


def check_mt(url: str, text: str, timeout: float, context):
    """The sample's words through POST /translate: an answer of the documented shape passes (what the
    words become is the model's business: a smoke check cannot judge a translation)."""
    _, _, raw = _fetch(f"{url}/translate", "translate", timeout, context, data=json.dumps({"text": text}).encode(),
                       headers={"Content-Type": "application/json"})
    answer = json.loads(raw)
    if not isinstance(answer.get("translation"), str) or not isinstance(answer.get("output_tokens"), int):
        raise Problem("translate", f"POST {url}/translate answered without translation/output_tokens: {answer!r:.200}")
    detail = {k: answer.get(k) for k in ("translation", "source", "target", "model", "output_tokens",
                                         "processing_s", "tokens_per_s")}
    return "pass", (f"{answer.get('source')}->{answer.get('target')} {text!r} -> {answer['translation'][:60]!r} "
                    f"({answer['output_tokens']} tokens in {answer.get('processing_s')} s)"), detail


def check_frontend(url: str, timeout: float, context):
    status, kind, page = _fetch(f"{url}/", "page", timeout, context)
    if "text/html" not in kind or b"<html" not in page[:2000].lower():
        raise Problem("page", f"GET {url}/ gave {kind or 'no content-type'}, not an HTML page")
    _, _, raw = _fetch(f"{url}/api/config", "config", timeout, context)
    try:
        config = json.loads(raw)
    except ValueError as exc:
        raise Problem("config", f"GET {url}/api/config is not JSON: {raw[:120]!r}") from exc
    if not isinstance(config, dict) or "asr_url" not in config:
        raise Problem("config", f"GET {url}/api/config lacks asr_url: {config!r}")
    return "pass", f"/ is HTML ({len(page)} bytes), /api/config names asr_url={config['asr_url']}", config


def asr_latency_row(t: Target, sample: Path, expected: str, timeout: float, context) -> SmokeResult:
    """The sample said three times, with pauses, streamed at real time: how soon finals follow speech."""
    started = time.monotonic()
    with wave.open(str(sample), "rb") as w:
        pcm, rate = w.readframes(w.getnframes()), w.getframerate()
    try:
        got = asyncio.run(replay(stream_url(t.url) + "/stream", passage(pcm, rate), rate, context,
                                 timeout=max(timeout, 60)))
        got["wer"] = round(word_error_rate(" ".join([expected] * 3), got["text"]), 3)
    except Exception as exc:  # noqa: BLE001 - refused, unreachable, a server without WS /stream
        return SmokeResult(t.name, "latency", "fail", round(time.monotonic() - started, 3),
                           f"cannot stream to {t.url}/stream: {type(exc).__name__}: {exc}")
    final, first, gap = got["end_to_final_s"], got["onset_to_partial_s"], got["partial_gap_s"]
    ok = got["close_code"] == 1000 and got["wer"] <= MAX_WER and final["n"] == got["spans"]
    reason = (f"final {final['p50']} s p50 after end of speech (p95 {final['p95']}), first partial "
              f"{first['p50']} s after onset, a partial every {gap['p50']} s (p95 {gap['p95']}), WER "
              f"{got['wer']:.2f} ({got['backend']}, {got['mode']})" if got["close_code"] == 1000 else
              f"the stream closed with {got['close_code']}: {got['close_reason']}")
    return SmokeResult(t.name, "latency", "pass" if ok else "fail", round(time.monotonic() - started, 3),
                       reason, got)
