"""Smoke checks: speak to each running service once (transcribe, translate, page, handshake) and time it."""

from __future__ import annotations

import json
import re
import ssl
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ..asr_stream import passage, replay, stream_url
from ..engine import connect
from ..errors import DuplexError, EngineError
from ..layout import Layout
from ..plan import Health, Plan, base_image
from ..project import Project
from .containers import device_request, find_container
from .control import status
from .health import client_context, probe_once, websocket_problem
from .state import read_state

SAMPLE = Path(__file__).parents[1] / "data" / "hello.wav"  # flite awb, 16 kHz mono, 1.8 s
EXPECTED = "hello world this is a test"
MAX_WER = 0.34  # two words in six may go wrong: pocketsphinx on CPU is not whisper
# duplex names servers only by module path: the check follows the app a service runs.
ASR_APP = "servers.asr.app:app"
FRONTEND_APP = "servers.frontend.app:app"
MT_APP = "servers.mt.app:app"


@dataclass(frozen=True)
class Target:
    """One service to smoke: where it answers and which app it runs (from the plan's command)."""

    name: str
    mode: str
    url: str
    health: Health
    app: str | None = None
    state: str = "running"  # from `inv status`; anything else fails without being spoken to
    container: str | None = None  # its container's id, for checks that run inside it


@dataclass
class SmokeResult:
    name: str
    check: str
    status: str  # "pass" | "fail" | "skip"
    seconds: float
    reason: str
    detail: dict = field(default_factory=dict)


@dataclass
class SmokeReport:
    results: list[SmokeResult]

    @property
    def ok(self) -> bool:
        return not any(r.status == "fail" for r in self.results)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def as_dict(self) -> dict:
        return {"ok": self.ok, "results": [asdict(r) for r in self.results]}

    def lines(self) -> list[str]:
        out = [f"{r.status.upper():<4} {r.name:<10} {r.check:<11} {r.seconds:6.2f}s  {r.reason}"
               for r in self.results]
        passed = sum(r.status == "pass" for r in self.results)
        failed = sum(r.status == "fail" for r in self.results)
        out.append(f"smoke: {passed} passed, {failed} failed, {len(self.results) - passed - failed} skipped")
        return out


def app_of(command: list[str]) -> str | None:
    """The ASGI app a command serves: `-m uvicorn MODULE:APP ...` or the warm runner's `--app`."""
    for i, part in enumerate(command):
        if part == "--app" and i + 1 < len(command):
            return command[i + 1]
    if "uvicorn" in command:
        for part in command[command.index("uvicorn") + 1:]:
            if not part.startswith("-"):
                return part if ":" in part else None
    return None


def plan_targets(plan: Plan) -> list[Target]:
    """Every service of a plan, as just started (`inv run --smoke`)."""
    return [Target(s.name, s.mode, s.url, s.health, app_of(s.command))
            for s in (plan.services[n] for n in plan.start_order)]


def running_targets(plan: Plan, rows: list[dict], records: dict[str, dict]) -> list[Target]:
    """What `inv status` shows (rows) with the URLs it was started on (state records)."""
    targets = []
    for row in rows:
        record = records.get(row["name"], {})
        svc = plan.services.get(row["name"])
        raw = record.get("health") or ({"kind": svc.health.kind, "url": svc.health.url} if svc else None)
        ca = {"ca": raw["ca"]} if raw and raw.get("ca") else {}  # recorded by tls runs
        health = Health(raw["kind"], raw["url"], 5.0, **ca) if raw else Health("none", None, 5.0)
        url = row.get("url") or record.get("url") or (svc.url if svc else "")
        targets.append(Target(row["name"], row["mode"], url, health,
                              app_of(svc.command) if svc else None, row.get("state", "running"),
                              record.get("container")))
    return targets


def targets_at(root: Path, plan: Plan) -> list[Target]:
    """The services a run of this stack (at `root`) left running or crashed, as `inv status` sees them."""
    return running_targets(plan, status(root), read_state(root)["services"])


def smoke(what: Plan | list[Target], *, sample: Path = SAMPLE, expected: str = EXPECTED,
          timeout: float = 30.0, services: list[str] | None = None,
          gpu: Callable[[], SmokeResult] | None = None, ca: Path | None = None,
          latency: bool = False) -> SmokeReport:
    """Run each target's check in parallel; `gpu` (see `gpu_check`) adds the GPU container row;
    `latency` adds a `latency` row per asr service (speech replayed at real time through WS /stream)."""
    targets = plan_targets(what) if isinstance(what, Plan) else list(what)
    if services:
        missing = [n for n in services if n != "gpu" and n not in {t.name for t in targets}]
        targets = [t for t in targets if t.name in services]
        targets += [Target(n, "-", "", Health("none", None, 0), state="not running") for n in missing]
    try:
        context = client_context(str(ca)) if ca else None
    except (OSError, ssl.SSLError) as exc:
        raise SmokeError(f"the local CA {ca} cannot be read ({exc})",
                         fix="run `inv certs` again (it remakes a missing or broken CA file)") from exc
    jobs: list[Callable[[], SmokeResult]] = [
        (lambda t=t: _timed(t, sample, expected, timeout, context)) for t in targets]
    if gpu is not None and (not services or "gpu" in services):
        jobs.append(gpu)
    if latency:
        jobs += [(lambda t=t: _latency_row(t, sample, expected, timeout, context))
                 for t in targets if t.app == ASR_APP and t.state == "running"]
        jobs += [(lambda t=t: _moshi_latency_row(t, sample, timeout))
                 for t in targets if t.health.kind == "websocket" and t.container and t.state == "running"]
    with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        return SmokeReport(list(pool.map(lambda job: job(), jobs)))


def _timed(target: Target, sample: Path, expected: str, timeout: float, context) -> SmokeResult:
    started = time.monotonic()
    check, status, reason, detail = _check(target, sample, expected, timeout, context)
    return SmokeResult(target.name, check, status, round(time.monotonic() - started, 3), reason, detail)


def _check(t: Target, sample: Path, expected: str, timeout: float, context):
    if t.state != "running":
        return "state", "fail", f"{t.name} is {t.state} (`inv status`; `inv logs --service {t.name}` says why)", {}
    try:
        if t.app == ASR_APP:
            return ("transcribe", *_asr(t.url, sample, expected, timeout, context))
        if t.app == FRONTEND_APP:
            return ("page", *_frontend(t.url, timeout, context))
        if t.app == MT_APP:
            return ("translate", *_mt(t.url, expected, timeout, context))
    except Problem as exc:
        hint = f" (is {t.name} up? `inv status`, `inv logs --service {t.name}`)" if str(exc).startswith("cannot") else ""
        return exc.check, "fail", str(exc) + hint, {}
    except Exception as exc:  # noqa: BLE001 - an answer of the wrong shape (not JSON...): a failed check, not a crash
        return "answer", "fail", f"{t.url} answered something unexpected ({type(exc).__name__}: {exc})", {}
    kind = "handshake" if t.health.kind == "websocket" else "health"
    if t.health.kind == "none":
        return kind, "skip", "no health check declared and no smoke check for its app", {}
    if kind == "handshake":  # the real handshake; a moshi busy with a conversation is told apart
        problem = websocket_problem(t.health.url, timeout, context)
        if problem is None:
            return kind, "pass", f"{t.health.url}: WebSocket handshake done, ready byte 0x00 received", {}
        if problem.startswith("upgraded") and websocket_problem(t.health.url, timeout, context, "alive") is None:
            return kind, "pass", (f"{t.health.url}: upgraded and answering, but busy: moshi serves one "
                                  "conversation at a time and one is running"), {"busy": True}
        return kind, "fail", f"{t.health.url}: {problem}", {}
    if probe_once(t.health, timeout=timeout):
        return kind, "pass", f"{t.health.url}: answered 2xx", {}
    return kind, "fail", f"{t.health.url} did not answer healthy within {timeout:g}s", {}


class SmokeError(DuplexError):
    """The smoke checks cannot run at all."""


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


def _asr(url: str, sample: Path, expected: str, timeout: float, context):
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


def _mt(url: str, text: str, timeout: float, context):
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


def _latency_row(t: Target, sample: Path, expected: str, timeout: float, context) -> SmokeResult:
    """The sample said three times, with pauses, streamed at real time: how soon finals follow speech."""
    import asyncio
    import wave
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


PROBE = "/opt/duplex/moshi_smoke.py"  # duplex/standalone/moshi_smoke.py, copied there by dockerfiles/moshi.Dockerfile


def _moshi_latency_row(t: Target, sample: Path, timeout: float) -> SmokeResult:
    """The sample streamed at real time to moshi by duplex/standalone/moshi_smoke.py, run inside its container
    (moshi takes Ogg Opus only, and the image has the encoder): the user's end of speech -> moshi's
    first audio frame after it."""
    import io
    import tarfile
    started = time.monotonic()

    def result(status: str, reason: str, detail: dict | None = None) -> SmokeResult:
        return SmokeResult(t.name, "latency", status, round(time.monotonic() - started, 3), reason, detail or {})
    try:
        container = find_container(t.container)
        if container is None:
            return result("fail", f"its container {t.container[:12]} is gone (`inv status`)")
        port = next(iter(container.attrs["HostConfig"].get("PortBindings") or {"8998/tcp": None})).split("/")[0]
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            tar.add(str(sample), arcname="duplex-speech.wav")
        container.put_archive("/tmp", archive.getvalue())
        command = ["python", PROBE, "--port", port, "--wav", "/tmp/duplex-speech.wav", "--timeout", f"{timeout:g}"]
        if (t.health.url or "").startswith("wss://"):
            command.append("--tls")
        _code, out = container.exec_run(command)
    except Exception as exc:  # noqa: BLE001 - no engine, a container that went away: a failed row
        return result("fail", f"cannot run the latency probe in {t.name}'s container ({type(exc).__name__}: {exc})")
    text = out.decode("utf-8", errors="replace").strip()
    try:
        got = json.loads(text.splitlines()[-1])
    except (ValueError, IndexError):
        if PROBE in text and ("No such file" in text or "can't open file" in text):
            return result("skip", f"its image has no {PROBE} (images built from duplex's "
                                  "dockerfiles/moshi.Dockerfile carry it)")
        return result("fail", f"the latency probe said: {text[-300:]}")
    if "error" in got:
        return result("skip" if "busy" in got["error"] else "fail", got["error"], got)
    if got.get("end_to_audio_s") is None:
        return result("fail", "no audio frame came back after the speech ended", got)
    return result("pass", (f"end of speech -> moshi's first audio frame {got['end_to_audio_s']} s; first audio "
                           f"{got['first_audio_s']} s after the stream began ({got['audio_frames']} audio, "
                           f"{got['text_frames']} text frames back)"), got)


def _frontend(url: str, timeout: float, context):
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


def words(text: str) -> list[str]:
    """Lower-case words, punctuation dropped ("Hello, world." -> ["hello", "world"])."""
    return re.findall(r"[a-z0-9']+", text.lower().replace("’", "'"))


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words (word-level Levenshtein)."""
    ref, hyp = words(reference), words(hypothesis)
    if not ref:
        return float(bool(hyp))
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / len(ref)


def gpu_check(nvidia_runtime: bool, image: str, connect: Callable | None = None,
              timeout: float = 60.0, form: str = "nvidia") -> Callable[[], SmokeResult]:
    """`nvidia-smi` in a container given every GPU, asked the way the runner asks this engine
    (`form`: the machine's gpu_request, "nvidia" or "cdi"); the NVIDIA runtime, or the CDI spec,
    mounts the tool in."""
    def run() -> SmokeResult:
        started = time.monotonic()

        def result(status: str, reason: str, detail: dict | None = None) -> SmokeResult:
            return SmokeResult("gpu", "nvidia-smi", status, round(time.monotonic() - started, 3), reason,
                               detail or {})
        if not nvidia_runtime:
            return result("skip", "no NVIDIA container runtime here (no GPU seen by NVML, or Docker "
                                  "without nvidia-container-toolkit): nothing to hand a GPU to")
        try:
            from docker.errors import DockerException
            client = (connect or _default_connect)()
            out = _run_removed(client, image, device_request(form), timeout)
        except EngineError as exc:
            return result("fail", str(exc))
        except DockerException as exc:
            return result("fail", f"nvidia-smi in {image} failed: {str(exc)[:300]}")
        gpus = [line.strip() for line in out.decode("utf-8", "replace").splitlines() if line.strip()]
        return result("pass", f"{len(gpus)} GPU(s) in a container from {image}: " + "; ".join(gpus),
                      {"gpus": gpus, "image": image})
    return run


def _run_removed(client, image: str, request, timeout: float) -> bytes:
    """Create, start, wait, read, and always remove: `containers.run(remove=True)` keeps the container
    when the engine refuses the start (an unknown device driver), one more with every smoke."""
    from docker.errors import ContainerError
    container = client.containers.create(
        image, ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
        device_requests=[request], environment={"NVIDIA_DRIVER_CAPABILITIES": "compute,utility"})
    try:
        container.start()
        code = (container.wait(timeout=timeout) or {}).get("StatusCode")
        out = container.logs(stdout=True, stderr=True)
        if code != 0:
            raise ContainerError(container, code, "nvidia-smi", image, out.decode("utf-8", "replace")[-300:])
        return out
    finally:
        try:
            container.remove(force=True)
        except Exception:  # noqa: BLE001 - the row says what failed; a leftover is the engine's to report
            pass


def _default_connect():
    return connect()


def smoke_project(stack, machine, targets: list[Target], *, services: list[str] | None = None,
                  timeout: float = 30.0, latency: bool = False) -> SmokeReport:
    """`inv smoke` for a project: its targets, the GPU container check from the stack's base image,
    and https health verified with the project's local CA when `inv certs` made one."""
    ca = Layout(stack.root).ca
    return smoke(targets, services=services, timeout=timeout,
                 gpu=gpu_check(machine.nvidia_runtime, base_image(stack, machine), form=machine.gpu_request),
                 ca=ca if ca.exists() else None, latency=latency)


def smoke_running(*, services: list[str] | None = None, timeout: float = 30.0,
                  latency: bool = False) -> SmokeReport:
    """`inv smoke`: the services the project's current run left running (or crashed), checked once."""
    project = Project.load()
    machine = project.machine()
    native = read_state(project.root).get("mode") == "native"
    targets = targets_at(project.root, project.plan(machine, native=native))
    if not targets:
        raise SmokeError("nothing is running to smoke",
                         fix="`inv run --detach` or `inv run --native --detach` first")
    return smoke_project(project.stack, machine, targets, services=services, timeout=timeout, latency=latency)
