"""`inv loadtest`: rising numbers of simulated users against the running stack, level by level,
until the service's budget breaks, sessions are refused or failed, the generator itself is the
limit, or --most is reached. Each level's figures are judged by ramp.py (pure)."""

from __future__ import annotations

import asyncio
import os
import platform
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..asr_stream import stream_url
from ..capacity import ServiceCapacity, document
from ..dashboard import resources
from ..dashboard.feeds import container_pids
from ..errors import DuplexError
from ..project import Project
from ..run.health import client_context
from ..run.inventory import engine_containers_by_id
from ..run.smoke import targets_at
from ..run.smoke_apps import ASR_APP, FRONTEND_APP, MT_APP
from ..run.smoke_results import Target
from ..run.state import read_state
from ..syntax import service_of_instance
from . import moshi, ramp, report, speech, users
from .meters import Meters

STAGGER_S = 1.0     # users of a level start spread over this: people do not start speaking in unison
PAUSE_S = 1.5       # between levels: the last level's sessions close and the servers settle
WARMUP_S = 2.0      # the warm-up session's speech
SESSION_SLACK_S = 60.0
BISECT = 3  # levels tried between the last served and the first not (8 -> 16: 12, then 10 or 14)
CONTAINER_PIDS_S = 5.0  # how often a container's processes are listed again (one engine call)  # a session may run this long past its audio before it counts as failed


class LoadtestError(DuplexError):
    pass


@dataclass(frozen=True)
class Load:
    """One service to measure and the URLs its simulated users open."""

    service: str
    kind: str                 # "asr" (live transcription) | "translate" (asr stream -> mt) | "moshi"
    stream_url: str           # where sessions stream audio: the frontend's relay, or the service itself
    mt_url: str | None        # translate: where finals go
    via: str                  # "frontend" | "direct"
    replicas: int
    sessions: int | None      # slots per replica the stack declares
    budget: dict
    context: ssl.SSLContext | None = None
    image: str | None = None  # moshi: its image, which runs the conversations (it has the Opus encoder)


def plan_loads(project: Project, targets: list[Target], wanted: list[str] | None, direct: bool) -> list[Load]:
    """The services this run can be load-tested on, and how (pure but for the CA file)."""
    running = [t for t in targets if t.state == "running"]
    by_app = {app: [t for t in running if t.app == app] for app in (ASR_APP, MT_APP, FRONTEND_APP)}
    frontend = None if direct else next(iter(by_app[FRONTEND_APP]), None)
    loads = []
    for target in running:
        if wanted and target.name not in wanted or service_of_instance(target.name) != target.name:
            continue  # a replica (asr_1) is measured with its service, through the frontend
        if target.app == ASR_APP:
            kind = "asr"
            url = f"{stream_url(frontend.url)}/api/stream" if frontend else f"{stream_url(target.url)}/stream"
            mt = None
        elif target.app == MT_APP:
            asr = next(iter(by_app[ASR_APP]), None)
            if asr is None:
                raise LoadtestError(f"{target.name} translates what asr hears, but no asr service is running",
                                    fix="run the translation stack whole (examples/translate), then load-test it")
            kind = "translate"
            url = f"{stream_url(frontend.url)}/api/stream" if frontend else f"{stream_url(asr.url)}/stream"
            mt = f"{stream_url(frontend.url)}/api/translate" if frontend else f"{stream_url(target.url)}/ws/translate"
        elif target.health.kind == "websocket" and target.container:  # moshi: container-only, Opus
            kind, mt = "moshi", None
            url = f"{stream_url(frontend.url)}/api/chat" if frontend else target.health.url
        else:
            continue
        spec = project.stack.services.get(target.name)
        # through the frontend every replica serves; directly, the one the sessions are sent to
        replicas = sum(service_of_instance(t.name) == target.name for t in running) if frontend else 1
        ca = (frontend or target).health.ca
        loads.append(Load(target.name, kind, url, mt, "frontend" if frontend else "direct", replicas,
                          spec.sessions if spec else None,
                          spec.budget.model_dump(exclude_none=True) if spec and spec.budget else {},
                          client_context(ca) if ca else None,
                          moshi.image_of(target.container) if kind == "moshi" else None))
    missing = [n for n in wanted or [] if n not in {load.service for load in loads}]
    if missing:
        names = ", ".join(t.name for t in running) or "none"
        raise LoadtestError(f"cannot load-test {', '.join(missing)}: the load test speaks to asr (live "
                            "transcription), mt (the translation chain) and moshi (conversations, in containers) "
                            "of a running stack; running: "
                            f"{names}", fix="name a running asr or mt service, or start the stack: inv run --detach")
    return loads


def service_pids(root: Path, targets: list[Target]) -> Callable[[], dict[str, list[int]]]:
    """Every running service's processes as the host numbers them, asked anew at each call (a
    server starts workers on its first sessions): a native service's process group; a container's
    processes, from the engine at most every CONTAINER_PIDS_S."""
    records = read_state(root)["services"]
    leaders = {t.name: records[t.name]["pid"] for t in targets
               if t.state == "running" and records.get(t.name, {}).get("pid")}
    boxed = [t for t in targets if t.state == "running" and t.container and t.name not in leaders]
    seen: dict = {"at": -CONTAINER_PIDS_S, "pids": {}}

    def pids() -> dict[str, list[int]]:
        if boxed and time.monotonic() - seen["at"] >= CONTAINER_PIDS_S:
            engine = engine_containers_by_id(root) or {}
            seen.update(at=time.monotonic(), pids={t.name: container_pids(engine.get(t.container)) for t in boxed})
        return {**{name: resources.group_pids(pid) for name, pid in leaders.items()}, **seen["pids"]}
    return pids


async def run_level(load: Load, n: int, passages: list[speech.Passage],
                    pids: Callable[[], dict[str, list[int]]]) -> dict:
    """n users at once, each speaking its passage at real time; the level's figures."""
    timeout = max(p.seconds for p in passages) + SESSION_SLACK_S
    async with Meters(pids) as meters:
        started = time.monotonic()
        sidecar = None
        if load.kind == "moshi":
            outcomes, sidecar = await asyncio.to_thread(moshi.conversations, load.image, load.stream_url,
                                                        passages[0], n, STAGGER_S, timeout)
        elif load.kind == "asr":
            outcomes = await asyncio.gather(*(users.asr_user(load.stream_url, p, i * STAGGER_S / n, timeout,
                                                             load.context) for i, p in enumerate(passages)))
        else:
            outcomes = await asyncio.gather(*(users.translate_user(load.stream_url, load.mt_url, p,
                                                                   i * STAGGER_S / n, timeout, load.context)
                                              for i, p in enumerate(passages)))
        wall = time.monotonic() - started
    ok = [o for o in outcomes if o.state == "ok"]
    refused = sum(o.state == "refused" for o in outcomes)
    failed = sum(o.state == "failed" for o in outcomes)
    audio = sum(o.audio_s for o in ok)
    level = {
        "sessions": n, "ok": len(ok), "refused": refused, "errors": failed,
        "error_share": round((refused + failed) / n, 3),
        "final_s": ramp.spread([t for o in ok for t in o.finals_s]),
        "wer": round(sum(o.wer for o in ok) / len(ok), 3) if ok and load.kind != "moshi" else None,
        "audio_s": round(audio, 1), "wall_s": round(wall, 1),
        "services": meters.services(audio), "generator": sidecar or meters.generator(),
        "problems": sorted({o.detail for o in outcomes if o.detail})[:3],
    }
    if load.kind == "translate":
        level["lag_s"] = ramp.spread([t for o in ok for t in o.lags_s])
    if load.kind == "moshi":
        level["turnaround_s"] = ramp.spread([t for o in ok for t in o.turnaround_s])
        backlog = [o.backlog for o in ok if o.backlog is not None]
        level["backlog_frames"] = max(backlog) if backlog else None
    return level


def measure(load: Load, clips: list[speech.Clip], pids: Callable[[], dict[str, list[int]]], *, most: int, seconds: float,
            say: Callable[[str], None]) -> ServiceCapacity:
    """The doubling ramp, then up to BISECT levels between the last served and the first not."""
    judged: list[dict] = []

    def run(n: int) -> dict:
        if judged:
            time.sleep(PAUSE_S)
        # Servers make per-session state the first time they reach a concurrency (pocketsphinx: a
        # decoder per live stream, a worker's first utterance decoded twice): short sessions at the
        # level's concurrency first, not counted, so the level measures the steady state. moshi
        # holds one conversation: one warm-up, before its first level.
        if load.kind != "moshi" or not judged:
            warm = 1 if load.kind == "moshi" else max(n, load.replicas)  # every replica gets at least one
            say(f"  {load.service}: warming up with {warm} short session{'s' * (warm > 1)}, not counted")
            asyncio.run(run_level(load, warm, speech.passages(clips, warm, WARMUP_S), dict))
            time.sleep(PAUSE_S)
        say(f"  {load.service}: {n} session{'s' * (n > 1)} speaking {seconds:.0f} s each ...")
        level = asyncio.run(run_level(load, n, speech.passages(clips, n, seconds), pids))
        level["broken"] = ramp.judge(level, load.budget)
        judged.append(level)
        say(row(load.service, level))
        return level

    limit = None  # why the generator, not the server, bounds the figures
    for n in ramp.levels(1, most):
        level = run(n)
        if (limit := ramp.generator_limit(level)) is not None or level["broken"]:
            break
    if limit is None:
        for _ in range(BISECT):
            if (n := ramp.between(judged)) is None:
                break
            run(n)
    failed = [lv for lv in judged if lv["broken"]]
    first = min(failed, key=lambda lv: lv["sessions"]) if failed else None
    stopped = limit or (f"{'; '.join(first['broken'])} at {first['sessions']} session{'s' * (first['sessions'] > 1)}"
                        if first else f"reached --most {most} within the budget")
    return ServiceCapacity(load.service, load.replicas, load.sessions, load.budget,
                           ramp.capacity(judged), stopped, judged)


def row(service: str, level: dict) -> str:
    final = level.get("turnaround_s") or level["final_s"]
    what = "reply" if "turnaround_s" in level else "final"
    times = "-" if final["p50"] is None else f"{final['p50']:.2f}/{final['p95']:.2f}/{final['p99']:.2f} s"
    cpu = level["services"].get(service, {}).get("cpu_mean")
    lag = level.get("lag_s", {}).get("p95")
    return (f"  {level['sessions']:>5} sessions  ok {level['ok']:<3} refused {level['refused']:<3} "
            f"failed {level['errors']:<3} {what} p50/p95/p99 {times:<20} "
            f"WER {'-' if level['wer'] is None else format(level['wer'], '.2f'):<5} "
            + (f"lag p95 {lag:.2f} s  " if lag is not None else "")
            + (f"backlog {level['backlog_frames']} frames  " if level.get("backlog_frames") is not None else "")
            + f"{service} CPU {'-' if cpu is None else f'{cpu:.0f}%'}  generator {level['generator']['cpu']:.0f}%  "
            + ("ok" if not level["broken"] else "over budget"))


def loadtest(*, services: list[str] | None = None, most: int = 64, seconds: float = 12.0, direct: bool = False,
             speech_dir: Path | None = None, out: Path | None = None,
             say: Callable[[str], None] = print) -> tuple[dict, Path, Path]:
    """Load-test the running stack: the capacity document (duplex.capacity), and where its JSON and
    HTML report were written (`out`, default .duplex/loadtest of the project)."""
    project = Project.load()
    native = read_state(project.root).get("mode") == "native"
    targets = targets_at(project.root, project.plan(project.machine(gpus=0), native=native))
    if not any(t.state == "running" for t in targets):
        raise LoadtestError("nothing is running to load-test",
                            fix="start the stack first: `inv run --detach`, or natively `inv run --native --detach`")
    loads = plan_loads(project, targets, services, direct)
    if not loads:
        raise LoadtestError("no running service takes live sessions the load test speaks (asr's stream, "
                            "the translation chain)", fix="run a stack with asr (inv run --detach)")
    found, source = speech.clips(project.root / ".duplex" / "loadtest" / "speech", speech_dir, say)
    say(f"speech: {source}; {len(found)} clips")
    measured, pids = [], service_pids(project.root, targets)
    for load in loads:
        say(f"{load.service}: {load.kind} sessions via {load.via}, {load.replicas} replica"
            f"{'s' * (load.replicas > 1)}, budget {_budget_words(load.budget)}")
        measured.append(measure(load, found, pids, most=most, seconds=seconds, say=say))
    doc = document(project.stack.name, measured,
                   generator={"speech": source, "seconds_per_session": seconds, "stagger_s": STAGGER_S,
                              "most": most, "via": loads[0].via},
                   machine=_machine())
    return (doc, *report.write(doc, out or project.root / ".duplex" / "loadtest"))


def _budget_words(budget: dict) -> str:
    words = [f"{k} {v:g}" for k, v in budget.items() if k != "errors"]
    words.append(f"errors {budget.get('errors', 0):.0%}")
    return ", ".join(words) + ("" if len(words) > 1 else " (no [services.NAME.budget] declared)")


def _machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "system": platform.platform(terse=True)}
