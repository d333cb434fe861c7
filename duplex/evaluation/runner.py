"""`inv eval`'s measuring: every utterance of the set to every running asr service, once as an
upload (POST /transcribe: batch WER, real-time factor) and once streamed at real time over
WS /stream as the page streams (streaming WER, end of speech -> final, partial stability); with an
mt service in the run, each stream's finals go on to its /ws/translate as the translation page
sends them (BLEU, chrF, end of speech -> translated text). One utterance at a time: the figures are
one user's, comparable from run to run; `inv loadtest` is the tool for many users at once."""

from __future__ import annotations

import array
import asyncio
import json
import os
import platform
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ..asr_stream import spread as latency_spread
from ..asr_stream import stream_pcm, stream_url
from ..errors import DuplexError
from ..project import Project
from ..run.health import client_context
from ..run.smoke import targets_at
from ..run.smoke_apps import ASR_APP, MT_APP
from ..run.smoke_results import Target
from ..run.state import read_state
from ..syntax import service_of_instance
from . import data, score

MODES = ("batch", "stream")
TAIL_S = 1.0        # silence after each utterance streamed: the endpointer's cue, as a pause is a user's
TIMEOUT_S = 60.0    # one request or one stream past its audio: longer counts as failed
VERSION = 1


class EvalError(DuplexError):
    pass


@dataclass
class Service:
    name: str
    kind: str               # "asr" | "translate"
    url: str
    context: ssl.SSLContext | None
    facts: dict = field(default_factory=dict)   # what /health says made the figures


@dataclass(frozen=True)
class Chosen:
    """What one evaluation speaks to: asr services, the mt service and the asr that feeds it."""

    asrs: list[Service]
    mt: Service | None
    feeder: Service | None


def choose(project: Project, services: list[str] | None, modes: tuple[str, ...]) -> Chosen:
    """The running services to evaluate, each asked what it runs, before any audio is made or sent."""
    targets = _running(project)
    every = _services(project, targets)
    missing = [n for n in services or [] if n not in {s.name for s in every}]
    chosen = [s for s in every if not services or s.name in services]
    if missing or not chosen:
        running = ", ".join(t.name for t in targets)
        raise EvalError(f"cannot evaluate {', '.join(missing) or 'this run'}: `inv eval` measures running asr "
                        f"(recognition) and mt (translation) services; running: {running}",
                        fix="name a running asr or mt service, or start a stack that has one: inv run --detach")
    asrs = [s for s in chosen if s.kind == "asr"]
    mt = next((s for s in chosen if s.kind == "translate"), None)
    feeder = next(iter(asrs or [s for s in every if s.kind == "asr"]), None)
    if mt is not None and feeder is None:
        raise EvalError(f"{mt.name} translates what asr hears, but no asr service is running",
                        fix="run the translation stack whole (examples/translate), then evaluate it")
    if mt is not None and "stream" not in modes:
        raise EvalError(f"{mt.name} is evaluated on what asr streams, and --modes left out stream",
                        fix="add stream to --modes (the default: batch,stream)")
    return Chosen(asrs, mt, feeder)


def measure(dataset: data.Dataset, chosen: Chosen, *, modes: tuple[str, ...] = MODES, project: Project,
            say: Callable[[str], None] = print) -> dict:
    """The evaluation document (docs/eval.md names its keys)."""
    asrs, mt, feeder = chosen.asrs, chosen.mt, chosen.feeder
    audio_s = sum(_seconds(u) for u in dataset.utterances)
    say(f"data: {dataset.source}")
    out: dict[str, dict] = {}
    translated = None
    for svc in asrs:
        measured = {}
        if "batch" in modes:
            measured["batch"] = _batch(svc, dataset, say)
        if "stream" in modes:
            measured["stream"], chain = _stream(svc, dataset, mt if svc is feeder else None, say)
            translated = chain or translated
        out[svc.name] = {"kind": "asr", **svc.facts, "modes": measured}
    if mt is not None:
        out[mt.name] = translated or _stream(feeder, dataset, mt, say, label=mt.name)[1]
    commit, dirty = _commit(project.root)
    return {"version": VERSION, "stack": project.stack.name,
            "made": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "commit": commit, "dirty": dirty,
            "machine": {"cpus": os.cpu_count(), "system": platform.platform(terse=True)},
            "data": {"name": dataset.name, "source": dataset.source, "path": relative_to_project(dataset.path, project.root),
                     "utterances": len(dataset.utterances), "audio_s": round(audio_s, 1),
                     "fingerprint": dataset.fingerprint},
            "services": dict(sorted(out.items())), "baseline": None, "breaches": []}


def _running(project: Project) -> list[Target]:
    native = read_state(project.root).get("mode") == "native"
    targets = [t for t in targets_at(project.root, project.plan(project.machine(gpus=0), native=native))
               if t.state == "running"]
    if not targets:
        raise EvalError("nothing is running to evaluate",
                        fix="start the stack first: `inv run --detach`, or natively `inv run --native --detach`")
    return targets


def _services(project: Project, targets: list[Target]) -> list[Service]:
    """The running asr and mt services, each with what its /health says (a replica answers as its
    service does: the service itself is measured)."""
    found = []
    for t in targets:
        if service_of_instance(t.name) != t.name or t.app not in (ASR_APP, MT_APP):
            continue
        svc = Service(t.name, "asr" if t.app == ASR_APP else "translate", t.url,
                      client_context(t.health.ca) if t.health.ca else None)
        svc.facts = _facts(project, svc)
        found.append(svc)
    return found


def _facts(project: Project, svc: Service) -> dict:
    """Which model, revision and backend answered: from the service's /health and models.lock."""
    try:
        health = json.loads(_get(f"{svc.url}/health", svc.context))
    except (OSError, ValueError) as exc:
        raise EvalError(f"{svc.name} did not answer GET /health ({exc})",
                        fix=f"check it is healthy: inv status; inv logs --service {svc.name}") from exc
    if not health.get("ready"):
        raise EvalError(f"{svc.name} is not ready: {health.get('status')} {health.get('error') or ''}".strip(),
                        fix=f"wait for it (inv status) or read why: inv logs --service {svc.name}")
    spec = project.stack.services.get(svc.name)
    pins = project.pins()
    repos = [m.split("@")[0] for m in (spec.models if spec else [])]
    facts = {"backend": health.get("backend"), "model": health.get("model"),
             "revision": next((pins[r] for r in repos if r in pins), None),
             "device": health.get("device"), "precision": health.get("precision")}
    if svc.kind == "translate":
        facts.update(backend=health.get("architecture"), source=health.get("source"), target=health.get("target"))
    return facts


def _get(url: str, context) -> bytes:
    with urllib.request.urlopen(url, timeout=10, context=context) as resp:
        return resp.read()


def _seconds(utt: data.Utterance) -> float:
    if utt.duration:
        return utt.duration
    pcm, rate = data.pcm_of(utt)
    return len(pcm) / 2 / rate


def _batch(svc: Service, dataset: data.Dataset, say) -> dict:
    rows, n = [], len(dataset.utterances)
    for i, utt in enumerate(dataset.utterances, 1):
        started = time.monotonic()
        try:
            answer = _upload(svc, utt.audio)
            hyp, error = answer.get("text", ""), None
        except EvalError as exc:
            hyp, error = None, str(exc)
        wall = time.monotonic() - started
        row = _row(utt, hyp, error, seconds=round(wall, 3), audio_s=round(_seconds(utt), 3))
        rows.append(row)
        say(f"  {svc.name} batch  {i}/{n} {utt.id}: WER {row['wer']:.2f} in {wall:.2f} s"
            + (f" ({error})" if error else ""))
    audio = sum(r["audio_s"] for r in rows)
    return {**score.totals(rows), "rtf": round(sum(r["seconds"] for r in rows) / audio, 3) if audio else None,
            "utterances": rows}


def _upload(svc: Service, path: Path) -> dict:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes() \
        + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{svc.url}/transcribe", data=body,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=svc.context) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise EvalError(f"POST /transcribe answered {exc.code}: {exc.read()[:200].decode('utf-8', 'replace')}") from exc
    except (OSError, ValueError) as exc:
        raise EvalError(f"POST /transcribe failed: {exc}") from exc


def _row(utt: data.Utterance, hyp: str | None, error: str | None, **extra) -> dict:
    row = {"id": utt.id, "tags": list(utt.tags), "ref": utt.text, "hyp": hyp,
           **score.utterance(utt.text, hyp, utt.lang), **extra}
    if error:
        row["error"] = error
    return row


def _stream(svc: Service, dataset: data.Dataset, mt: Service | None, say,
            label: str | None = None) -> tuple[dict, dict | None]:
    """Each utterance streamed at real time: the asr stream's figures, and the translation chain's
    when `mt` is given (the utterances with a reference translation)."""
    rows, chain_rows, n = [], [], len(dataset.utterances)
    for i, utt in enumerate(dataset.utterances, 1):
        pcm, rate = data.pcm_of(utt)
        onset, end = speech_bounds(pcm, rate)
        translate = mt if mt is not None and utt.translation else None
        try:
            got = asyncio.run(_one_stream(svc, utt, pcm + b"\0\0" * int(TAIL_S * rate), rate, translate))
            error = got.get("error")
        except (OSError, asyncio.TimeoutError, TimeoutError) as exc:
            got, error = {}, f"{type(exc).__name__}: {exc}"[:200]
        except Exception as exc:  # noqa: BLE001 - websockets' handshake and close errors
            got, error = {}, f"{type(exc).__name__}: {exc}"[:200]
        finals, partials = got.get("finals", []), got.get("partials", [])
        hyp = " ".join(t for _, t in finals).strip() if not error else None
        last = max((t for t, _ in finals), default=None)
        row = _row(utt, hyp, error, audio_s=round(len(pcm) / 2 / rate, 3),
                   final_s=round(last - end, 3) if last is not None else None,
                   first_partial_s=round(partials[0][0] - onset, 3) if partials else None,
                   stability=score.stability(_segments(got.get("events", [])), utt.lang))
        rows.append(row)
        words = f"WER {row['wer']:.2f}, final {row['final_s']} s after speech" if not error else error
        if translate is not None:
            hyp_t = " ".join(got.get("translations", [])).strip()
            lag = round(got["translated_at"] - end, 3) if got.get("translated_at") is not None else None
            failed = error or got.get("mt_error")
            chain_rows.append({"id": utt.id, "tags": list(utt.tags), "source": hyp, "ref": utt.translation,
                               "hyp": hyp_t if not failed else None, "lag_s": lag,
                               **({"error": failed} if failed else {})})
            words += f"; translated {lag} s after speech" if lag is not None else "; no translation"
        say(f"  {label or svc.name} stream {i}/{n} {utt.id}: {words}")
    figures = {**score.totals(rows), "final_s": spread([r["final_s"] for r in rows]),
               "first_partial_s": spread([r["first_partial_s"] for r in rows]),
               "stability": _mean([r["stability"] for r in rows]), "rtf": None, "utterances": rows}
    return figures, (_chain(mt, chain_rows) if mt is not None else None)


def _chain(mt: Service, rows: list[dict]) -> dict:
    if not rows:
        return {"kind": "translate", "via": "asr", **mt.facts, "bleu": None, "chrf": None,
                "lag_s": spread([]), "utterances": [],
                "note": "no utterance of the set has a reference translation"}
    scored = score.translation([r["hyp"] or "" for r in rows], [r["ref"] for r in rows])
    for r, chrf in zip(rows, scored["sentence_chrf"], strict=True):
        r["chrf"] = chrf
    return {"kind": "translate", "via": "asr", **mt.facts, "bleu": scored["bleu"], "chrf": scored["chrf"],
            "signature": scored["signature"], "lag_s": spread([r["lag_s"] for r in rows]), "utterances": rows}


async def _one_stream(svc: Service, utt: data.Utterance, pcm: bytes, rate: int, mt: Service | None) -> dict:
    start = {"type": "start", "sample_rate": rate, "encoding": "pcm_s16le", **({"language": utt.lang} if utt.lang else {})}
    if mt is None:
        run = await stream_pcm(f"{stream_url(svc.url)}/stream", pcm, rate, start=start, ssl_context=svc.context,
                               timeout=len(pcm) / 2 / rate + TIMEOUT_S)
        return _events(run)
    from websockets.asyncio.client import connect  # heavy: only streaming opens these
    target = utt.translation_lang or mt.facts.get("target") or ""
    url = f"{stream_url(mt.url)}/ws/translate" + (f"?target={target}" if target else "")
    out: dict = {"translations": [], "translated_at": None}
    pending: dict[int, int] = {}  # id sent -> its slot in out["translations"]
    clock: dict[str, float] = {}  # t0: the stream's clock, which speech_bounds' times are on
    sends: set = set()
    async with connect(url, ssl=mt.context, open_timeout=15, close_timeout=5) as ws:
        def on_event(t: float, event: dict) -> None:
            clock.setdefault("t0", time.monotonic() - t)
            if event.get("type") == "final" and event.get("text", "").strip():
                ident = len(out["translations"]) + 1
                pending[ident] = ident - 1
                out["translations"].append("")
                task = asyncio.ensure_future(ws.send(json.dumps({"type": "final", "text": event["text"],
                                                                 "id": ident})))
                sends.add(task)
                task.add_done_callback(sends.discard)

        async def collect() -> None:
            async for message in ws:
                event = json.loads(message) if isinstance(message, str) else {}
                slot = pending.pop(event.get("id"), None)
                if slot is None:
                    continue
                if event.get("type") == "error":
                    out["mt_error"] = f"mt: {event.get('error')} {event.get('detail') or ''}".strip()[:200]
                    return
                out["translations"][slot] = " ".join(str(event.get("translation", "")).split())  # one line per segment, as sacrebleu reads files
                out["translated_at"] = time.monotonic() - clock["t0"]

        collector = asyncio.create_task(collect())
        try:
            run = await stream_pcm(f"{stream_url(svc.url)}/stream", pcm, rate, start=start,
                                   ssl_context=svc.context, timeout=len(pcm) / 2 / rate + TIMEOUT_S, on_event=on_event)
            deadline = time.monotonic() + TIMEOUT_S
            while pending and not collector.done() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        finally:
            collector.cancel()
        if pending and "mt_error" not in out:
            out["mt_error"] = f"mt: {len(pending)} of {len(out['translations'])} translations never came within {TIMEOUT_S:g} s"
    return {**_events(run), **out}


def _events(run) -> dict:
    got = {"events": run.events, "finals": [(t, e.get("text", "")) for t, e in run.of("final")],
           "partials": [(t, e.get("text", "")) for t, e in run.of("partial")]}
    if run.close_code != 1000:
        got["error"] = f"the stream closed with {run.close_code} {run.close_reason}".strip()[:200]
    return got


def _segments(events: list[tuple[float, dict]]) -> list[tuple[list[str], str]]:
    segments, partials = [], []
    for _, event in events:
        if event.get("type") == "partial":
            partials.append(event.get("text", ""))
        elif event.get("type") == "final":
            segments.append((partials, event.get("text", "")))
            partials = []
    return segments


def speech_bounds(pcm: bytes, rate: int) -> tuple[float, float]:
    """(onset, end) of the speech in `pcm`, in seconds: the first and last 10 ms frame louder than
    10 dB over the recording's noise floor (its quietest fifth), so noisy audio is timed by its
    speech and not by its noise (pure)."""
    samples = array.array("h", pcm)
    win = max(1, rate // 100)
    levels = [max(map(abs, samples[i:i + win])) for i in range(0, len(samples) - win + 1, win)]
    if not levels:
        return 0.0, 0.0
    floor = sorted(levels)[len(levels) // 5]
    threshold = max(3.16 * floor, 300)
    loud = [i for i, level in enumerate(levels) if level > threshold]
    if not loud:
        return 0.0, len(samples) / rate
    return loud[0] * win / rate, (loud[-1] + 1) * win / rate


def spread(values: list[float | None]) -> dict:
    """asr_stream's p50/p95 of the values measured, and the values themselves (the report's histograms)."""
    got = [v for v in values if v is not None]
    return {**latency_spread(got), "values": [round(v, 3) for v in got]}


def _mean(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return round(sum(got) / len(got), 4) if got else None


def _commit(root: Path) -> tuple[str | None, bool | None]:
    """The project's git commit and whether its tree differs from it (None: not a git checkout)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None, None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, timeout=30)
        return head.stdout.strip(), bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None, None


def relative_to_project(path: Path, root: Path) -> str:
    """`path` as the document and the report show it: relative to the project when inside it."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
