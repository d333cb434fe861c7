"""The production chain for real, on CPU: a hub mirror → `inv prefetch` → the shared cache →
the asr service on faster-whisper, offline at the pinned revision, natively and in a container."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.run.test_parity import post_file
from tests.support.hub import Mirror
from tests.support.net import free_port
from tests.support.speech import PHRASES, synthesize, word_error_rate
from tests.support.stackcopy import copy_stack
from tests.support.whisper_model import FILES, whisper_base_dir

pytestmark = [pytest.mark.docker, pytest.mark.slow]
REPO = "Systran/faster-whisper-base"
WHISPER_ASR = f'''models = ["{REPO}"]
[services.asr.environment]
ASR_BACKEND = "whisper"
ASR_MODEL = "{REPO}"
ASR_MODEL_REVISION = "{{revision:{REPO}}}"
ASR_LANGUAGE = "en"
'''


def test_prefetch_then_whisper_in_both_modes_from_the_shared_cache(tmp_path):
    root = copy_stack(tmp_path / "stack", "whisperchain", envs=("asr",))
    stack = root / "stack.toml"
    text = stack.read_text()
    old = '[services.asr.environment]\nASR_BACKEND = "pocketsphinx"   # embedded English model: works offline on any laptop\n'
    assert old in text
    stack.write_text(text.replace(old, WHISPER_ASR))
    hf_home = tmp_path / "hf"
    port = free_port()
    env = {**os.environ, "DUPLEX_STACK": str(stack), "HF_HOME": str(hf_home), "DUPLEX_PORT_ASR": str(port)}
    env.pop("HF_HUB_OFFLINE", None)
    inv = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]

    def call(*args: str, timeout: float = 900, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([*inv, *args], cwd=root, env={**env, **extra}, capture_output=True,
                              text=True, timeout=timeout)

    # Before prefetch, a run refuses with the command that fixes it.
    refused = call("run", "--native", "--services", "asr")
    assert refused.returncode == 1 and "inv prefetch" in refused.stderr
    assert f"models.{REPO}: not in the shared cache" in refused.stderr

    model = whisper_base_dir()
    with Mirror(tmp_path / "mirror") as mirror:
        commit = mirror.repo(REPO).commit({name: model / name for name in FILES})
        fetched = call("prefetch", "--services", "asr", HF_ENDPOINT=mirror.endpoint)
        assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    # The mirror is gone from here on: both modes must run offline from the cache.
    lock = (root / "models.lock").read_text()
    assert REPO in lock and str(commit) in lock

    speech = synthesize(PHRASES[2], tmp_path / "speech.wav")
    texts = {}
    try:
        for mode, flags in (("native", ["--native"]), ("container", [])):
            up = call("run", "--detach", "--services", "asr", *flags)
            assert up.returncode == 0, up.stdout + up.stderr
            code, body = post_file(f"http://127.0.0.1:{port}/transcribe", speech)
            assert code == 200 and body["backend"] == "whisper", body
            texts[mode] = body["text"]
            assert call("stop").returncode == 0
    finally:
        call("stop", "--all", timeout=120)
    for mode, text in texts.items():
        assert word_error_rate(PHRASES[2], text) <= 0.15, (mode, text)
    assert texts["native"] == texts["container"]
