"""Fixtures of the server tests: the asr env's interpreter and flite speech, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.envs import ensure_env
from tests.support.speech import PHRASES, concatenate, convert, synthesize


@pytest.fixture(scope="session")
def asr_python() -> Path:
    return ensure_env("asr") / "bin" / "python"


@pytest.fixture(scope="session")
def speech(tmp_path_factory) -> dict[str, Path]:
    """Phrases spoken by flite (16 kHz mono WAV) and the same speech re-encoded by sox."""
    d = tmp_path_factory.mktemp("speech")
    clips = {f"phrase{i}": synthesize(text, d / f"phrase{i}.wav") for i, text in enumerate(PHRASES)}
    for ext in ("flac", "ogg", "mp3"):
        clips[ext] = convert(clips["phrase0"], d / f"phrase0.{ext}")
    clips["8k-stereo"] = convert(clips["phrase1"], d / "phrase1-8k-stereo.wav", rate=8000, channels=2)
    clips["44k-stereo"] = convert(clips["phrase2"], d / "phrase2-44k-stereo.flac", rate=44100, channels=2)
    clips["long"] = concatenate([clips[f"phrase{i}"] for i in (0, 1, 2, 3, 0, 1, 2, 3)], d / "long.wav")
    # live transcription (test_asr_stream.py): four phrases with pauses, 16-bit mono WAV at 44.1 kHz
    clips["passage"] = concatenate([clips[f"phrase{i}"] for i in range(4)], d / "passage.wav", gap_s=0.8)
    clips["44k"] = convert(clips["phrase2"], d / "phrase2-44k.wav", rate=44100)
    return clips
