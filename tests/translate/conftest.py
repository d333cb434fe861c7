"""The translation stack (examples/translate) copied under a test name, its models in a hub mirror:
Whisper base (the real one, from two PyPI wheels) and a tiny random Qwen2 (tests/support/tiny_models.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support.hub import Mirror
from tests.support.net import free_port
from tests.support.speech import PHRASES, synthesize
from tests.support.stackcopy import copy_stack
from tests.support.tiny_models import QWEN_FILES, QWEN_REPO, tiny_qwen
from tests.support.whisper_model import FILES as WHISPER_FILES
from tests.support.whisper_model import whisper_base_dir

STACK = "translatechain"  # containers, images and network names unique to these tests
WHISPER_REPO = "Systran/faster-whisper-base"
EDITS = (
    ('name = "translate"', f'name = "{STACK}"'),
    ("Systran/faster-whisper-medium", WHISPER_REPO),
    ("Qwen/Qwen3-4B", QWEN_REPO),
    ('MT_TARGET = "de"', 'MT_TARGET = "de"\nMT_MAX_NEW_TOKENS = 16   # random weights: noise, so keep it short'),
    ('ASR_BACKEND = "whisper"', 'ASR_BACKEND = "whisper"\nASR_LANGUAGE = "en"'),
)

# `inv eval --check`'s budgets for this chain (tests/evaluation/baselines/translate.json): a random mt's
# BLEU and chrF are noise around 0 and 10, so they guard the plumbing, not a model; Whisper's stream
# latency on a loaded 2-core runner swings more than the default 0.5 s
EVAL = "\n[eval]\nbleu = 5.0\nchrf = 8.0\nfinal_p95 = 1.5\nlag_p95 = 2.0\n"


class Chain:
    def __init__(self, root: Path, env: dict[str, str]):
        self.root, self.env = root, env

    def inv(self, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args],
                              cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.env['DUPLEX_PORT_' + service.upper()]}"


def prepare(base: Path, models: Path) -> Chain:
    """The stack copied under `base`, its models (built once under `models`) served by a mirror for
    `inv prefetch`, then offline: a Chain ready for `inv run` (tests and benchmarks/translate_stack.py)."""
    root = copy_stack(base / "stack", STACK, envs=("asr", "frontend", "mt"), extra=("examples/translate",))
    stack = root / "examples" / "translate" / "stack.toml"
    text = stack.read_text()
    for old, new in EDITS:
        assert old in text, old
        text = text.replace(old, new)
    stack.write_text(text + EVAL)
    env = {**os.environ, "DUPLEX_STACK": str(stack), "HF_HOME": str(base / "hf"),
           **{f"DUPLEX_PORT_{s}": str(free_port()) for s in ("ASR", "MT", "FRONTEND")}}
    for name in ("HF_HUB_OFFLINE", "HF_ENDPOINT"):
        env.pop(name, None)
    chain = Chain(root, env)
    qwen, whisper = tiny_qwen(models / "tiny-qwen"), whisper_base_dir()
    with Mirror(base / "mirror") as mirror:
        mirror.repo(QWEN_REPO).commit({name: qwen / name for name in QWEN_FILES})
        mirror.repo(WHISPER_REPO).commit({name: whisper / name for name in WHISPER_FILES})
        chain.env["HF_ENDPOINT"] = mirror.endpoint
        fetched = chain.inv("prefetch")
        assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    del chain.env["HF_ENDPOINT"]  # offline from here on
    return chain


@pytest.fixture(scope="session")
def chain(tmp_path_factory) -> Chain:
    chain = prepare(tmp_path_factory.mktemp("translatechain"), tmp_path_factory.getbasetemp())
    try:
        yield chain
    finally:
        chain.inv("stop", "--all", timeout=180)


@pytest.fixture(scope="session")
def speech(tmp_path_factory) -> Path:
    return synthesize(PHRASES[0], tmp_path_factory.mktemp("translate-speech") / "hello.wav")
