"""The ASR server for real: uvicorn processes from the asr env, flite speech, a real Whisper model."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.asr_server import asr_server
from tests.support.speech import PHRASES, word_error_rate
from tests.support.tools import tool
from tests.support.whisper_model import whisper_base_dir

ROOT = Path(__file__).resolve().parents[2]
MAX_SECONDS, MAX_BYTES = 60, 3_000_000  # small limits on the pocketsphinx server, cheap to exceed

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sphinx(asr_python):
    env = {"ASR_BACKEND": "pocketsphinx", "ASR_WORKERS": "2",
           "ASR_MAX_SECONDS": str(MAX_SECONDS), "ASR_MAX_BYTES": str(MAX_BYTES)}
    with asr_server(asr_python, env, name="test-asr-pocketsphinx", ready=False) as server:
        server.wait_ready()
        yield server


def transcript(server, path: Path) -> dict:
    response = server.transcribe(path)
    assert response.status_code == 200, response.text
    return response.json()


def test_settings_from_env_defaults_and_refusals():
    from servers.asr.settings import SettingsError, settings_from_env

    s = settings_from_env({})
    assert (s.backend, s.model_spec, s.device, s.max_seconds, s.max_bytes) == \
        ("pocketsphinx", "", "auto", 600.0, 50 * 1024 * 1024)
    assert s.workers == min(2, os.cpu_count() or 1)
    w = settings_from_env({"ASR_BACKEND": "Whisper", "ASR_MODEL_REVISION": "v1", "ASR_WORKERS": "3"})
    assert (w.backend, w.model_spec, w.model_revision, w.workers) == \
        ("whisper", "Systran/faster-whisper-base", "v1", 3)
    for bad, named in ({"ASR_DEVICE": "tpu"}, "ASR_DEVICE"), ({"ASR_WORKERS": "two"}, "ASR_WORKERS"), \
                      ({"ASR_MAX_SECONDS": "0"}, "ASR_MAX_SECONDS"):
        with pytest.raises(SettingsError, match=named):
            settings_from_env(bad)


# -- pocketsphinx (the default backend) ------------------------------------------------------------

def test_health_answers_at_once_then_reports_ready(sphinx):
    first = sphinx.first_health  # the model loads in the background: /health never waits for it
    assert first.status_code in (200, 503)
    if first.status_code == 503:
        assert first.json()["status"] == "loading" and first.json()["error"] is None
    health = sphinx.health().json()
    assert health["status"] == "ready" and health["ready"] is True and health["error"] is None
    assert health["backend"] == "pocketsphinx" and health["model"] == "en-us (built-in)"
    assert health["workers"] == 2 and health["device"] == "cpu"
    assert health["max_seconds"] == MAX_SECONDS and health["max_bytes"] == MAX_BYTES
    assert Path(health["model_path"]).is_dir()


@pytest.mark.parametrize("index", range(len(PHRASES)))
def test_pocketsphinx_transcribes_flite_speech(sphinx, speech, index):
    body = transcript(sphinx, speech[f"phrase{index}"])
    assert word_error_rate(PHRASES[index], body["text"]) <= 0.25, body["text"]
    assert body["backend"] == "pocketsphinx" and body["processing_s"] > 0
    assert 1.5 < body["duration_s"] < 6


@pytest.mark.parametrize("fmt", ["flac", "ogg", "mp3"])
def test_every_format(sphinx, speech, fmt):
    body = transcript(sphinx, speech[fmt])
    assert body["source"]["format"] == fmt.upper()
    assert word_error_rate(PHRASES[0], body["text"]) <= 0.25, body["text"]


def test_resamples_and_downmixes(sphinx, speech):
    wide = transcript(sphinx, speech["44k-stereo"])
    assert wide["source"] == {"format": "FLAC", "sample_rate": 44100, "channels": 2}
    assert word_error_rate(PHRASES[2], wide["text"]) <= 0.25, wide["text"]
    # 8 kHz audio has nothing above 4 kHz, which the 16 kHz acoustic model expects: looser bound.
    narrow = transcript(sphinx, speech["8k-stereo"])
    assert narrow["source"] == {"format": "WAV", "sample_rate": 8000, "channels": 2}
    assert abs(narrow["duration_s"] - transcript(sphinx, speech["phrase1"])["duration_s"]) < 0.05
    assert word_error_rate(PHRASES[1], narrow["text"]) <= 0.5, narrow["text"]


def test_long_audio_is_cut_at_pauses_and_decoded_whole(sphinx, speech):
    body = transcript(sphinx, speech["long"])
    assert body["duration_s"] > 20  # past the 20 s chunk size: cut at pauses, decoded on both workers
    reference = " ".join(PHRASES[i] for i in (0, 1, 2, 3, 0, 1, 2, 3))
    assert word_error_rate(reference, body["text"]) <= 0.2, body["text"]


def decoder_workers(server) -> list[int]:
    """The batch pool's workers (the live-streaming workers are named asr-stream)."""
    return [pid for pid in server.workers() if Path(f"/proc/{pid}/comm").read_text().strip() == "asr-batch"]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_concurrent_requests_use_both_workers_without_blocking(sphinx, speech):
    workers = decoder_workers(sphinx)
    assert len(workers) == 2
    before = [cpu_seconds(pid) for pid in workers]
    clips = [speech[f"phrase{i}"] for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(transcript, sphinx, clip) for clip in clips]
        time.sleep(0.2)
        probe = time.monotonic()
        assert sphinx.health().status_code == 200  # the event loop answers while all four decode
        health_s = time.monotonic() - probe
        bodies = [f.result() for f in futures]
    for index, body in enumerate(bodies):
        assert word_error_rate(PHRASES[index], body["text"]) <= 0.25, body["text"]
    assert health_s < 1.0
    # Both decoder processes did a fair share of the work (CPU time, so a busy machine can't fool it).
    used = [cpu_seconds(pid) - b for pid, b in zip(workers, before, strict=True)]
    assert min(used) > 0.25 * sum(used), used


BAD = {  # name: (bytes or a builder, status, error code)
    "empty": (b"", 400, "empty_file"),
    "not-audio": (b"hello, this is not audio at all\n" * 10, 415, "unsupported_audio"),
    "wav-header-cut": (lambda s: s["phrase0"].read_bytes()[:30], 415, "unsupported_audio"),
    "wav-truncated": (lambda s: s["phrase0"].read_bytes()[:20000], 422, "truncated_audio"),
    "flac-truncated": (lambda s: s["flac"].read_bytes()[:9000], 422, "corrupt_audio"),
    "ogg-truncated": (lambda s: s["ogg"].read_bytes()[:4000], 422, "truncated_audio"),
    "too-large": (b"\0" * (MAX_BYTES + 1), 413, "file_too_large"),  # read, then refused
    "far-too-large": (b"\0" * 20_000_000, 413, "file_too_large"),  # refused by Content-Length
    "too-long": ("too-long", 413, "audio_too_long"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_audio_is_refused_and_the_server_stays_up(sphinx, speech, tmp_path, case):
    data, status, code = BAD[case]
    path = tmp_path / f"{case}.bin"
    if data == "too-long":  # silence just past the limit
        path = tmp_path / "long-silence.wav"
        subprocess.run([tool("sox"), "-n", "-r", "8000", "-c", "1", "-b", "16", str(path),
                        "trim", "0", str(MAX_SECONDS + 5)], check=True)
    else:
        path.write_bytes(data(speech) if callable(data) else data)
    response = sphinx.transcribe(path)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and body["detail"]
    assert sphinx.alive() and sphinx.health().status_code == 200


def test_requests_without_a_file_field_are_refused(sphinx, speech):
    missing = httpx.post(f"{sphinx.url}/transcribe", files={"audio": speech["phrase0"].read_bytes()})
    assert missing.status_code == 400 and missing.json()["error"] == "missing_file"
    raw = httpx.post(f"{sphinx.url}/transcribe", content=b"RIFF....", headers={"content-type": "audio/wav"})
    assert raw.status_code == 400 and raw.json()["error"] == "bad_request"


def metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(r"^(\w+)\{([^}]*)\} (\S+)$", line)
        if m and m.group(1) == name and ",".join(sorted(m.group(2).split(","))) == want:
            return float(m.group(3))
    return 0.0


def test_metrics_count_requests_errors_audio_and_latency(sphinx, speech, tmp_path):
    before = httpx.get(f"{sphinx.url}/metrics").text
    good = transcript(sphinx, speech["phrase3"])
    (tmp_path / "x.txt").write_text("not audio")
    assert sphinx.transcribe(tmp_path / "x.txt").status_code == 415
    after = httpx.get(f"{sphinx.url}/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    b, a, pb = before, after.text, {"backend": "pocketsphinx"}

    def delta(name, **labels):
        return metric(a, name, **pb, **labels) - metric(b, name, **pb, **labels)

    assert delta("asr_requests_total", status="200") == 1
    assert delta("asr_requests_total", status="415") == 1
    assert delta("asr_errors_total", error="unsupported_audio") == 1
    assert delta("asr_audio_seconds_total") == pytest.approx(good["duration_s"], abs=0.01)
    assert delta("asr_request_duration_seconds_count") == 1
    assert delta("asr_request_duration_seconds_bucket", le="+Inf") == 1
    assert metric(a, "asr_model_ready", **pb) == 1


def test_a_killed_worker_is_replaced_and_the_request_retried(sphinx, speech):
    old = decoder_workers(sphinx)
    os.kill(old[0], signal.SIGKILL)  # as the kernel's OOM killer would
    body = transcript(sphinx, speech["phrase2"])
    assert word_error_rate(PHRASES[2], body["text"]) <= 0.25, body["text"]
    new = decoder_workers(sphinx)
    assert len(new) == 2 and not set(new) & set(old)  # a fresh pool: both workers replaced
    assert sphinx.health().status_code == 200


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_stopping_the_server_stops_its_worker_processes(asr_python, sig):
    with asr_server(asr_python, {"ASR_WORKERS": "2"}, name=f"test-asr-{sig.name}") as server:
        workers = server.workers()
        assert len(workers) >= 2  # two decoder processes (plus multiprocessing's resource tracker)
        server.proc.send_signal(sig)  # SIGKILL: no shutdown code runs, the workers notice alone
        server.proc.wait(15)
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]


# -- whisper (faster-whisper, CPU int8) ------------------------------------------------------------

@pytest.fixture(scope="module")
def whisper(asr_python):
    env = {"ASR_BACKEND": "whisper", "ASR_MODEL": str(whisper_base_dir())}
    with asr_server(asr_python, env, name="test-asr-whisper") as server:
        yield server


def test_whisper_transcribes_from_a_model_dir(whisper, speech, asr_python):
    health = whisper.health().json()
    assert health["backend"] == "whisper" and health["model_path"] == str(whisper_base_dir())
    # ASR_DEVICE=auto (the default) is what CTranslate2 in the env sees: cpu here, cuda on a GPU box.
    cuda = subprocess.run([str(asr_python), "-c", "import ctranslate2; print(ctranslate2.get_cuda_device_count())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert health["device"] == ("cuda" if int(cuda) else "cpu")
    assert health["max_seconds"] == 600 and health["max_bytes"] == 50 * 1024 * 1024  # the defaults
    for key, text in (("phrase0", PHRASES[0]), ("mp3", PHRASES[0]), ("8k-stereo", PHRASES[1])):
        body = transcript(whisper, speech[key])
        assert body["backend"] == "whisper"
        assert word_error_rate(text, body["text"]) <= 0.15, body["text"]


def fake_hf_cache(hub: Path, repo: str, files: Path, commit: str = "0" * 40) -> None:
    """The layout huggingface_hub writes: models--ORG--NAME/{refs/main, snapshots/<commit>/...}."""
    root = hub / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in files.iterdir():
        (snapshot / f.name).symlink_to(f)


def test_whisper_resolves_a_repo_id_offline_from_the_hf_cache(asr_python, tmp_path):
    fake_hf_cache(tmp_path / "hf" / "hub", "duplex-test/whisper-base", whisper_base_dir())
    env = {"ASR_BACKEND": "whisper", "ASR_MODEL": "duplex-test/whisper-base", "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_OFFLINE": "1"}
    with asr_server(asr_python, env, name="test-asr-whisper-hf") as server:
        health = server.health().json()
    assert health["model"] == "duplex-test/whisper-base"
    assert health["model_path"].startswith(str(tmp_path / "hf" / "hub" / "models--duplex-test--whisper-base"))


def unavailable(asr_python, env: dict[str, str], name: str) -> dict:
    """Start a server expected to fail loading; return its /health body (503, status error)."""
    with asr_server(asr_python, env, name=name, ready=False) as server:
        deadline = time.monotonic() + 60
        while (health := server.health()).json()["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert health.status_code == 503
        refused = server.transcribe(ROOT / "pyproject.toml")
        assert refused.status_code == 503 and refused.json()["error"] == "not_ready"
        assert server.alive()
        return {**health.json(), "log": server.output()}


def test_whisper_with_an_uncached_repo_names_inv_prefetch(asr_python, tmp_path):
    env = {"ASR_BACKEND": "whisper", "ASR_MODEL": "nobody/not-cached", "HF_HOME": str(tmp_path / "hf")}
    health = unavailable(asr_python, env, "test-asr-uncached")
    assert health["status"] == "error" and health["ready"] is False
    assert "inv prefetch --repo nobody/not-cached" in health["error"]
    assert str(tmp_path / "hf" / "hub") in health["error"]  # honours HF_HOME
    assert "inv prefetch" in health["log"]  # and says so in the log at startup


def test_nemo_reports_the_missing_package(asr_python):
    health = unavailable(asr_python, {"ASR_BACKEND": "nemo"}, "test-asr-nemo")
    assert health["backend"] == "nemo" and health["status"] == "error"
    assert "NeMo is not installed" in health["error"] and "nemo_toolkit[asr]" in health["error"]


def test_a_bad_setting_is_reported_not_crashed_on(asr_python):
    health = unavailable(asr_python, {"ASR_BACKEND": "kaldi"}, "test-asr-bad-setting")
    assert "ASR_BACKEND='kaldi'" in health["error"] and "pocketsphinx" in health["error"]
