"""Tiny checkpoints of the real architectures, built by the real libraries in the services' own envs
(no hub, no downloaded weights), once per test session under its temp dir, then published through
the olah mirror like any Hugging Face repo.

- moshi: tests/support/tiny_moshi_build.py in the moshi env (.duplex/envs/moshi + third_party/moshi)
- NeMo:  tests/support/tiny_nemo_build.py in the asr-nemo env (.duplex/envs/asr-nemo)
- Qwen:  tests/support/tiny_qwen_build.py in the mt env (.duplex/envs/mt)
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path

from tests.support.envs import ensure_env

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
MOSHI_REPO = "duplex-test/tiny-moshi"
NEMO_REPO = "duplex-test/tiny-fastconformer-ctc"
MOSHI_FILES = ("config.json", "mimi_config.json", "model.safetensors",
               "tokenizer-e351c8d8-checkpoint125.safetensors", "tokenizer_spm_32k_3.model")
NEMO_FILES = ("tiny-fastconformer-ctc.nemo",)
QWEN_REPO = "duplex-test/tiny-qwen2"
QWEN_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja",
              "tokenizer_config.json", "special_tokens_map.json")


def _build(dest: Path, files: tuple[str, ...], env: str, script: str, extra_env: dict[str, str]) -> Path:
    if all((dest / f).is_file() for f in files):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.parent / f".{dest.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # pytest-xdist workers, benchmarks: one builder
        if not all((dest / f).is_file() for f in files):
            python = ensure_env(env) / "bin" / "python"
            work = dest.with_name(dest.name + ".partial")
            shutil.rmtree(work, ignore_errors=True)
            started = time.monotonic()
            proc = subprocess.run([str(python), str(HERE / script), str(work)], cwd=ROOT,
                                  env={**os.environ, **extra_env}, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"{script} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
            missing = [f for f in files if not (work / f).is_file()]
            assert not missing, f"{script} did not write {missing}"
            work.chmod(0o755)
            shutil.rmtree(dest, ignore_errors=True)
            work.rename(dest)
            print(f"{dest.name} built in {time.monotonic() - started:.1f}s")
    return dest


def tiny_moshi(dest: Path) -> Path:
    """config.json, Mimi + LM safetensors, mimi_config.json and a SentencePiece tokenizer (~1.3 MB)."""
    return _build(dest, MOSHI_FILES, "moshi", "tiny_moshi_build.py",
                  {"PYTHONPATH": str(ROOT / "third_party" / "moshi"), "NO_TORCH_COMPILE": "1"})


def tiny_nemo(dest: Path) -> Path:
    """A FastConformer-CTC ASR model (NeMo's EncDecCTCModel), saved as one .nemo file (~1 MB)."""
    return _build(dest, NEMO_FILES, "asr-nemo", "tiny_nemo_build.py", {})


def tiny_qwen(dest: Path) -> Path:
    """A Qwen2ForCausalLM (2 layers, hidden 64, random weights) and a byte-level BPE tokenizer with a
    ChatML template, trained on a few sentences (~0.2 MB)."""
    return _build(dest, QWEN_FILES, "mt", "tiny_qwen_build.py", {})
