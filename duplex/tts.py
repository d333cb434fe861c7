"""Speech from text with the system's synthesisers, as 16 kHz mono 16-bit WAV: flite (its 16 kHz
voices awb, rms, slt, kal16 write that rate themselves) and espeak-ng (22050 Hz, resampled with sox).
What `inv loadtest` says and what `inv eval`'s default set is made of."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

from .errors import DuplexError

RATE = 16000
INSTALL = "sudo apt-get install flite espeak-ng sox"


class TtsError(DuplexError):
    """A synthesiser is missing or could not speak."""


def missing(*tools: str) -> list[str]:
    """Which of `tools` are not on PATH."""
    return [t for t in tools if shutil.which(t) is None]


def flite(text: str, voice: str, out: Path) -> None:
    """`text` spoken by flite's `voice` into `out`."""
    _run(["flite", "-voice", voice, "-t", text, "-o", str(out)], f"flite could not speak with voice {voice}")
    with wave.open(str(out), "rb") as w:  # flite falls back to its 8 kHz "kal" for a voice it lacks
        if w.getframerate() != RATE:
            raise TtsError(f"flite has no 16 kHz voice {voice!r} (it spoke at {w.getframerate()} Hz)",
                           fix="use awb, rms, slt or kal16 (`flite -lv` lists the voices)")


def espeak(text: str, voice: str, out: Path) -> None:
    """`text` spoken by espeak-ng's `voice` (e.g. "en-us+f3") into `out`, resampled to 16 kHz.
    No dither (-D), so the same tools give the same bytes."""
    raw = out.with_suffix(".22k.wav")
    try:
        _run(["espeak-ng", "-v", voice, "-w", str(raw), text], f"espeak-ng could not speak with voice {voice}")
        _run(["sox", "-D", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(out)],
             f"sox could not resample espeak-ng's {raw.name}")
    finally:
        raw.unlink(missing_ok=True)


def _run(argv: list[str], what: str) -> None:
    if shutil.which(argv[0]) is None:
        raise TtsError(f"{argv[0]} is not installed", fix=INSTALL)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise TtsError(f"{what}: {proc.stderr.strip()[:200]}",
                       fix=f"reinstall it (`sudo apt-get install --reinstall {argv[0]}`)")
