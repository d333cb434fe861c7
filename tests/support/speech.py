"""Test speech: flite phrases to WAV, sox conversions (FLAC, OGG, MP3, rates, channels), word error rate."""

from __future__ import annotations

import subprocess
from pathlib import Path

from duplex.scoring import word_error_rate, words  # noqa: F401 - one scorer for tests and `inv smoke`
from tests.support.tools import tool

# flite's 16 kHz voices: pocketsphinx and whisper transcribe "awb" word for word (the default 8 kHz
# "kal" voice comes out far worse through pocketsphinx).
VOICE = "awb"
PHRASES = (
    "hello world this is a test of speech recognition",
    "please turn on the lights in the kitchen",
    "the weather today is sunny and warm",
    "open the door and close the window",
)


def synthesize(text: str, path: Path, voice: str = VOICE) -> Path:
    """Speak `text` with flite into a WAV file (16 kHz mono for the 16 kHz voices)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([tool("flite"), "-voice", voice, "-t", text, "-o", str(path)], check=True)
    return path


def convert(src: Path, dst: Path, rate: int | None = None, channels: int | None = None) -> Path:
    """Re-encode with sox; the suffix of `dst` picks the format (.wav .flac .ogg .mp3 ...).

    MP3 needs Debian's libsox-fmt-mp3 (sox says "no handler for file extension `mp3'" without it).
    """
    effects = []
    if channels:
        effects += ["channels", str(channels)]
    if rate:
        effects += ["rate", str(rate)]
    proc = subprocess.run([tool("sox"), str(src), str(dst), *effects], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"sox {src.name} -> {dst.name} failed: {proc.stderr.strip()} "
                           "(MP3 needs: apt-get install -y libsox-fmt-mp3)")
    return dst


def concatenate(parts: list[Path], dst: Path, gap_s: float = 1.0) -> Path:
    """Join WAV files (same rate and channels) with `gap_s` of silence after each."""
    args = []
    for part in parts:
        args += [str(part), "|sox -n -r 16000 -c 1 -b 16 -t wav - trim 0 %g" % gap_s]
    subprocess.run([tool("sox"), *args, str(dst)], check=True, capture_output=True)
    return dst


