"""NeMo for real, on CPU: a tiny FastConformer-CTC model made by NeMo itself → saved as .nemo → the
olah mirror → `inv prefetch` → the shared cache → the asr service with ASR_BACKEND=nemo in the
asr-nemo env, offline, natively (warm reload) and in the asr-nemo image.

The model is untrained, so its text is noise: what is tested is what duplex and the server own
(lock, env, image, prefetch, offline load, /health, the answer's shape and timings, refusals).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.support.hub import Mirror
from tests.support.net import free_port
from tests.support.speech import PHRASES, synthesize
from tests.support.stackcopy import copy_stack
from tests.support.tiny_models import NEMO_FILES, NEMO_REPO, tiny_nemo
from tests.support.tools import tool

pytestmark = [pytest.mark.docker, pytest.mark.slow]
STACK = "nemochain"
EDITS = (
    ('env = "asr"\napp', 'env = "asr-nemo"\napp'),
    ('dockerfile = "dockerfiles/asr.Dockerfile"', 'dockerfile = "dockerfiles/asr-nemo.Dockerfile"'),
    ("start_timeout = 120", f'start_timeout = 300\nmodels = ["{NEMO_REPO}"]'),
    ('ASR_BACKEND = "pocketsphinx"   # embedded English model: works offline on any laptop',
     f'ASR_BACKEND = "nemo"\nASR_MODEL = "{NEMO_REPO}"\nASR_MODEL_REVISION = "{{revision:{NEMO_REPO}}}"'),
)
BAD = {  # what every backend answers to bad audio (tests/servers/test_asr.py has the full list)
    "empty": (lambda wav: b"", 400, "empty_file"),
    "not-audio": (lambda wav: b"hello, this is not audio at all\n" * 10, 415, "unsupported_audio"),
    "wav-header-cut": (lambda wav: wav[:30], 415, "unsupported_audio"),
    "wav-truncated": (lambda wav: wav[:20000], 422, "truncated_audio"),
}


class Chain:
    def __init__(self, root: Path, env: dict[str, str]):
        self.root, self.env = root, env

    def inv(self, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args],
                              cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['DUPLEX_PORT_ASR']}"


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> Chain:
    base = tmp_path_factory.mktemp("nemochain")
    root = copy_stack(base / "stack", STACK, envs=("asr-nemo",),
                      extra=("duplex/standalone/wscheck.py", "duplex/standalone/lhotse_fix.py"))
    stack = root / "stack.toml"
    text = stack.read_text()
    for old, new in EDITS:
        assert old in text, old
        text = text.replace(old, new, 1)
    stack.write_text(text)
    env = {**os.environ, "DUPLEX_STACK": str(stack), "HF_HOME": str(base / "hf"),
           "DUPLEX_PORT_ASR": str(free_port())}
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("HF_ENDPOINT", None)
    chain = Chain(root, env)
    model = tiny_nemo(tmp_path_factory.getbasetemp() / "tiny-nemo")
    with Mirror(base / "mirror") as mirror:
        mirror.repo(NEMO_REPO).commit({name: model / name for name in NEMO_FILES})
        chain.env["HF_ENDPOINT"] = mirror.endpoint
        fetched = chain.inv("prefetch", "--services", "asr")
        assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    del chain.env["HF_ENDPOINT"]  # offline from here on
    try:
        yield chain
    finally:
        chain.inv("stop", "--all", timeout=180)


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> Path:
    return synthesize(PHRASES[0], tmp_path_factory.mktemp("nemo-speech") / "hello.wav")


def _serves(chain: Chain, wav: Path, tmp_path: Path, mode: str) -> dict:
    health = httpx.get(f"{chain.url}/health", timeout=10).json()
    assert health["ready"] and health["backend"] == "nemo", health
    assert health["model"] == NEMO_REPO and health["model_path"].endswith(NEMO_FILES[0])
    assert health["architecture"] == "EncDecCTCModel" and health["device"] == "cpu"
    assert health["precision"] == "float32"
    # natively the warm reloader restored the model before the app started (its log says how long)
    assert health["load_s"] > 0 if mode == "container" else health["load_s"] < 1
    started = time.monotonic()
    with open(wav, "rb") as f:
        answer = httpx.post(f"{chain.url}/transcribe", files={"file": (wav.name, f)}, timeout=120)
    took = time.monotonic() - started
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) >= {"text", "duration_s", "processing_s", "backend", "model", "source"}
    assert body["backend"] == "nemo" and body["model"] == NEMO_REPO and isinstance(body["text"], str)
    assert 2.0 < body["duration_s"] < 5.0 and 0 < body["processing_s"] <= took
    assert body["source"] == {"format": "WAV", "sample_rate": 16000, "channels": 1}
    for case, (make, status, code) in BAD.items():
        path = tmp_path / f"{mode}-{case}.bin"
        path.write_bytes(make(wav.read_bytes()))
        with open(path, "rb") as f:
            refused = httpx.post(f"{chain.url}/transcribe", files={"file": (path.name, f)}, timeout=60)
        assert (refused.status_code, refused.json()["error"]) == (status, code), (case, refused.text)
    assert httpx.get(f"{chain.url}/health", timeout=10).status_code == 200
    print(f"{mode}: loaded in {health['load_s']} s, transcribed {body['duration_s']} s of audio in "
          f"{body['processing_s']} s (RTF {body['processing_s'] / body['duration_s']:.3f}): {body['text']!r}")
    return health


def test_nemo_natively_from_the_shared_cache(chain, wav, tmp_path):
    up = chain.inv("run", "--native", "--detach", "--services", "asr")
    assert up.returncode == 0, up.stdout + up.stderr
    _serves(chain, wav, tmp_path, "native")
    log = (chain.root / ".duplex" / "logs" / "asr.log").read_text()
    assert "preloaded the nemo model" in log  # warm reload keeps it across edits (tests/warm)
    assert "ASR backend nemo ready in" in log and "EncDecCTCModel, device cpu, precision float32" in log
    assert chain.inv("stop").returncode == 0


def test_nemo_in_the_asr_nemo_image(chain, wav, tmp_path):
    started = time.monotonic()
    up = chain.inv("run", "--detach", "--services", "asr")
    assert up.returncode == 0, up.stdout + up.stderr
    print(f"asr-nemo image built and started in {time.monotonic() - started:.0f}s")
    _serves(chain, wav, tmp_path, "container")
    name = f"duplex-{STACK}-asr"
    inspect = json.loads(subprocess.run([tool("docker"), "inspect", name], capture_output=True, text=True,
                                        check=True).stdout)[0]
    assert "HF_HUB_OFFLINE=1" in inspect["Config"]["Env"] and "ASR_BACKEND=nemo" in inspect["Config"]["Env"]
    logs = subprocess.run([tool("docker"), "logs", name], capture_output=True, text=True)
    assert "EncDecCTCModel, device cpu, precision float32" in logs.stdout + logs.stderr
    # the image's lhotse is the fixed one, as `inv setup` leaves it natively
    fixed = subprocess.run([tool("docker"), "exec", name, "python", "-c",
                            "from lhotse import CutSet\nfrom lhotse.dataset import SimpleCutSampler\n"
                            "SimpleCutSampler(CutSet(), max_duration=10.0); print('ok')"],
                           capture_output=True, text=True, timeout=120)
    assert fixed.returncode == 0 and "ok" in fixed.stdout, fixed.stderr
    assert chain.inv("stop").returncode == 0
