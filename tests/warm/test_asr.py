"""Warm reload of the shipped ASR server (a copy of servers/) on pocketsphinx and on faster-whisper."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.speech import PHRASES, synthesize, word_error_rate
from tests.support.whisper_model import whisper_base_dir
from tests.warm.conftest import multipart

ROOT = Path(__file__).resolve().parents[2]
PRELOAD = "servers.asr.loaders:preload"


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    return synthesize(PHRASES[1], tmp_path_factory.mktemp("speech") / "lights.wav")


def asr_copy(dest: Path) -> Path:
    shutil.copytree(ROOT / "servers", dest / "servers", ignore=shutil.ignore_patterns("__pycache__", "frontend"))
    return dest


def decoder_workers(run) -> list[int]:
    return sorted(pid for pid in run.pids() if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text())


def transcribe(run, speech: Path):
    body, kind = multipart(speech)
    return lambda: run.post("/transcribe", body, kind)


def test_pocketsphinx_edits_are_served_warm_with_the_same_decoder_pool(tmp_path, asr_python, warm_runs, speech):
    root = asr_copy(tmp_path)
    run = warm_runs(asr_python, root, "servers.asr.app:app", ["servers/asr"], PRELOAD,
                    env={"ASR_BACKEND": "pocketsphinx", "ASR_WORKERS": "2"})
    assert run.wait_up().json["ready"]
    workers = decoder_workers(run)
    assert len(workers) == 4  # the batch pool's two and the two live-streaming workers, all preloaded
    said = transcribe(run, speech)
    assert word_error_rate(PHRASES[1], said().json["text"]) <= 0.25

    # a function body in backends.py: the transcript comes back upper-cased
    run.edit("servers/asr/backends.py", 'return " ".join(t for t in texts if t)',
             'return " ".join(t for t in texts if t).upper()')
    run.expect(said, lambda a: a.status == 200 and a.json["text"].isupper(),
               before=lambda a: a.status == 200 and a.json["text"].islower())
    assert run.get("/health").json["ready"]  # ready at once: the preloaded pool, no loading phase
    # a new route in app.py
    run.edit("servers/asr/app.py", '    @app.get("/metrics")',
             '    @app.get("/warm")\n    async def warm_route() -> dict:\n        return {"warm": True}\n\n'
             '    @app.get("/metrics")')
    run.expect("/warm", lambda a: a.status == 200 and a.json == {"warm": True}, before=lambda a: a.status == 404)
    assert decoder_workers(run) == workers  # the same workers: none was started or leaked
    assert said().json["text"].isupper()
    out = run.output()
    assert out.count("preloaded the pocketsphinx model") == 1 and "restarting fully" not in out

    # loaders.py holds the workers' code: an edit there restarts fully, with fresh workers
    run.edit("servers/asr/loaders.py", 'return hyp.hypstr.strip() if hyp else ""',
             'return hyp.hypstr.strip().replace(" ", "_") if hyp else ""')
    run.expect(said, lambda a: a.status == 200 and "_" in a.json["text"],
               before=lambda a: a.status == 200 and "_" not in a.json["text"], timeout=60)
    assert "servers/asr/loaders.py changed and is loaded by the preload" in run.output()
    fresh = decoder_workers(run)
    assert len(fresh) == 4 and not set(fresh) & set(workers)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    assert run.refused == 0
    assert run.stop() == []


def test_whisper_edits_are_served_warm_with_the_same_model(tmp_path, asr_python, warm_runs, speech):
    root = asr_copy(tmp_path)
    run = warm_runs(asr_python, root, "servers.asr.app:app", ["servers/asr"], PRELOAD,
                    env={"ASR_BACKEND": "whisper", "ASR_MODEL": str(whisper_base_dir()),
                         "ASR_LANGUAGE": "en", "ASR_WORKERS": "1"})
    assert run.wait_up(timeout=120).json["ready"]
    said = transcribe(run, speech)
    assert word_error_rate(PHRASES[1], said().json["text"]) <= 0.25
    server = [p for p in run.pids() if p != run.proc.pid]

    run.edit("servers/asr/backends.py", 'return " ".join(seg.text.strip() for seg in segments).strip()',
             'return "[" + " ".join(seg.text.strip() for seg in segments).strip() + "]"')
    run.expect(said, lambda a: a.status == 200 and a.json["text"].startswith("["),
               before=lambda a: a.status == 200 and not a.json["text"].startswith("["))
    run.edit("servers/asr/app.py", '    @app.get("/metrics")',
             '    @app.get("/warm")\n    async def warm_route() -> dict:\n        return {"model": state.backend.model_path}\n\n'
             '    @app.get("/metrics")')
    run.expect("/warm", lambda a: a.status == 200 and a.json["model"] == str(whisper_base_dir()),
               before=lambda a: a.status == 404)
    assert [p for p in run.pids() if p != run.proc.pid] == server  # no new process
    out = run.output()
    assert out.count("preloaded the whisper model") == 1 and "restarting fully" not in out
    assert out.count("preloaded models kept") == 2
    assert run.refused == 0
    assert run.stop() == []


def test_nemo_edits_are_served_warm_with_the_same_model(tmp_path, tmp_path_factory, warm_runs, speech):
    """ASR_BACKEND=nemo in the asr-nemo env: the NeMo model (a tiny FastConformer-CTC .nemo) is
    restored once by the preload and kept while edits to the server are served."""
    from tests.support.envs import ensure_env
    from tests.support.tiny_models import NEMO_FILES, tiny_nemo
    checkpoint = tiny_nemo(tmp_path_factory.getbasetemp() / "tiny-nemo") / NEMO_FILES[0]
    root = asr_copy(tmp_path)
    run = warm_runs(ensure_env("asr-nemo") / "bin" / "python", root, "servers.asr.app:app", ["servers/asr"],
                    PRELOAD, env={"ASR_BACKEND": "nemo", "ASR_MODEL": str(checkpoint), "ASR_DEVICE": "cpu"})
    health = run.wait_up(timeout=180).json
    assert health["ready"] and health["architecture"] == "EncDecCTCModel" and health["precision"] == "float32"
    said = transcribe(run, speech)
    assert said().status == 200
    run.edit("servers/asr/backends.py", 'return str(getattr(first, "text", first)).strip()',
             'return "<" + str(getattr(first, "text", first)).strip() + ">"')
    run.expect(said, lambda a: a.status == 200 and a.json["text"].startswith("<"),
               before=lambda a: a.status == 200 and not a.json["text"].startswith("<"), timeout=60)
    assert run.get("/health").json["load_s"] < 1.0  # the preloaded model: nothing restored again
    out = run.output()
    assert out.count("preloaded the nemo model") == 1 and "restarting fully" not in out
    assert out.count("Model EncDecCTCModel was successfully restored") == 1
    assert run.refused == 0
    assert run.stop() == []
