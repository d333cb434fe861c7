"""moshi's simulated users: conversations as the page holds them (Ogg Opus in, 80 ms a frame, at
real time), run by duplex/standalone/moshi_smoke.py in a container of moshi's own image beside the
stack (it has the Opus encoder duplex does not carry), on the host's network so the frontend's relay
and moshi's published port are at 127.0.0.1. One container per level; removed whatever happens."""

from __future__ import annotations

import io
import json
import tarfile
import wave

from ..engine import connect
from ..run.inventory import find_container
from ..run.smoke_moshi import PROBE
from .speech import RATE, Passage
from .users import REFUSED, Outcome

HANDSHAKE_S = 15.0  # a conversation without moshi's ready byte by then is "busy": moshi holds one at a time
QUEUED_S = 2.0  # waited longer than this for the ready byte: it queued behind another conversation
LABEL = {"duplex.loadtest": "moshi"}  # what a left-over one is recognised by (`docker ps -a --filter label=...`)


def image_of(container_id: str) -> str | None:
    """The image moshi's running container was made from."""
    container = find_container(container_id)
    return container.image.id if container is not None else None


def _wav(passage: Passage) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(passage.pcm)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("duplex-load.wav")
        info.size, info.mode = len(out.getvalue()), 0o644
        tar.addfile(info, io.BytesIO(out.getvalue()))
    return archive.getvalue()


def conversations(image: str, url: str, passage: Passage, n: int, stagger: float,
                  timeout: float) -> tuple[list[Outcome], dict]:
    """n conversations at once: each one's outcome, and the sidecar's own CPU (% of one core)."""
    from docker.errors import DockerException  # heavy: the docker SDK, only for moshi's load
    client = connect()
    command = ["python", PROBE, "--url", url, "--sessions", str(n), "--stagger", f"{stagger:g}",
               "--wav", "/tmp/duplex-load.wav", "--timeout", f"{min(timeout, HANDSHAKE_S):g}"]
    container = client.containers.create(image, command, network_mode="host", labels=LABEL, detach=True)
    try:
        container.put_archive("/tmp", _wav(passage))
        container.start()
        container.wait(timeout=timeout + stagger + passage.seconds + 60)
        text = container.logs(stdout=True, stderr=False).decode("utf-8", errors="replace").strip()
    except DockerException as exc:
        return [Outcome("failed", f"the moshi load container failed: {exc}"[:200]) for _ in range(n)], {}
    finally:
        try:
            container.remove(force=True)
        except DockerException:
            pass  # already gone
    try:
        got = json.loads(text.splitlines()[-1])
    except (ValueError, IndexError):
        return [Outcome("failed", f"the moshi load script said: {text[-200:]}") for _ in range(n)], {}
    outcomes = [_outcome(s, passage) for s in got["sessions"]]
    return outcomes, {"cpu": round(100 * got["cpu_s"] / max(got["wall_s"], 1e-6), 1), "lag_p95": None,
                      "where": "a container of moshi's image"}


def _outcome(session: dict, passage: Passage) -> Outcome:
    if "error" in session:
        refused = session.get("close_code") in REFUSED or "busy" in session["error"]
        return Outcome("refused" if refused else "failed", session["error"][:200], audio_s=passage.seconds)
    if (session.get("ready_s") or 0) > QUEUED_S:  # moshi's lock: it was served only after another ended
        return Outcome("refused", f"queued {session['ready_s']:.1f} s for moshi's turn (one conversation at a time)",
                       audio_s=passage.seconds)
    if session.get("lag_end_s") is None:  # its output never reached the end of the speech
        return Outcome("failed", f"moshi's output fell behind ({session.get('backlog_frames')} frames owed at the end)",
                       audio_s=passage.seconds)
    # turnaround: how late moshi's output for the end of the speech came (its answer cannot come sooner)
    return Outcome(turnaround_s=[session["lag_end_s"]], backlog=session.get("backlog_frames"),
                   audio_s=session.get("audio_s", passage.seconds))
