"""moshi's latency smoke row: duplex/standalone/moshi_smoke.py, run inside moshi's own container (the
image has the Ogg Opus encoder moshi needs), and its one JSON line read back."""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path

from .inventory import find_container
from .smoke_results import SmokeResult, Target

BEHIND_S = 2.0  # a reply heard this late is not a conversation
PROBE = "/opt/duplex/moshi_smoke.py"  # duplex/standalone/moshi_smoke.py, copied there by dockerfiles/moshi.Dockerfile


def moshi_latency_row(t: Target, sample: Path, timeout: float) -> SmokeResult:
    """The sample streamed at real time to moshi by duplex/standalone/moshi_smoke.py, run inside its container
    (moshi takes Ogg Opus only, and the image has the encoder): how far moshi's output runs behind
    what it was sent, at the end of the speech and over the conversation. Fails when a listener
    would hear it more than BEHIND_S late: moshi is not keeping up with real time."""
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
    if got.get("lag_end_s") is None:
        return result("fail", (f"moshi's output never reached the end of the speech ({got.get('backlog_frames')} "
                               "of its 80 ms frames still owed when the probe closed): it is not keeping up "
                               "with real time (a GPU, or a smaller model; `inv preflight` checks the fit)"), got)
    said = (f"moshi's output {got['lag_end_s']} s behind at the end of speech (p50 {got['lag_p50_s']} s, max "
            f"{got['lag_max_s']} s over the conversation; at worst {got['backlog_max_frames']} frames owed, "
            f"{got['backlog_frames']} at the end)")
    if got["lag_end_s"] > BEHIND_S:
        return result("fail", f"{said}: it is not keeping up with real time (a GPU, or a smaller model)", got)
    return result("pass", said, got)
