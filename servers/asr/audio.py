"""Decode uploaded audio (WAV, FLAC, OGG, MP3), validate it, downmix and resample it to 16 kHz mono."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np
import soundfile
import soxr

SAMPLE_RATE = 16_000
# A WAV header whose data chunk is bigger than the file: libsndfile logs "data : N (should be M)".
_WAV_SHORT = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_UNKNOWN_LENGTHS = {0, 0xFFFFFFFF, 0x7FFFFFFF}  # streamed WAVs that never patched their header


class AudioError(Exception):
    """Audio the server refuses: an HTTP status, a short machine code and a sentence for people."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


@dataclass(frozen=True)
class Audio:
    samples: np.ndarray   # float32, mono, 16 kHz, in [-1, 1]
    source_format: str    # "WAV", "FLAC", "OGG", "MP3"
    source_rate: int
    source_channels: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def check_size(size: int, max_bytes: int, what: str = "the uploaded file") -> None:
    if size == 0:
        raise AudioError(400, "empty_file", f"{what} is empty")
    if size > max_bytes:
        raise AudioError(413, "file_too_large",
                         f"{what} is {size} bytes; this server takes at most {max_bytes} "
                         "bytes (ASR_MAX_BYTES)")


def _truncated(sf: soundfile.SoundFile, frames_read: int) -> bool:
    """True when the container promised more audio than the file holds."""
    log = sf.extra_info or ""
    if sf.format == "WAV":
        for declared, actual in _WAV_SHORT.findall(log):
            if int(declared) not in _UNKNOWN_LENGTHS and int(actual) < int(declared):
                return True
    if "File ended unexpectedly" in log:  # OGG without its end-of-stream page
        return True
    # FLAC and friends declare an exact frame count; MP3's is an estimate, so leave it out.
    return sf.format != "MP3" and sf.frames > 0 and frames_read < sf.frames * 0.98


def decode(data: bytes, *, max_seconds: float, max_bytes: int) -> Audio:
    """Decode `data` to 16 kHz mono float32, or raise AudioError with a 4xx status."""
    check_size(len(data), max_bytes)
    try:
        sf = soundfile.SoundFile(io.BytesIO(data))
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(415, "unsupported_audio",
                         "could not read the upload as audio (WAV, FLAC, OGG or MP3 expected): "
                         f"{_reason(exc)}") from exc
    with sf:
        rate, channels, fmt = sf.samplerate, sf.channels, sf.format
        if rate <= 0 or channels <= 0:
            raise AudioError(422, "invalid_audio", f"the {fmt} header says {rate} Hz, {channels} channels")
        if sf.frames > 0 and sf.frames / rate > max_seconds * 1.01:
            raise _too_long(sf.frames / rate, max_seconds)
        try:
            # Read at most a little past the limit, so a lying header cannot make us decode hours.
            samples = sf.read(frames=int(max_seconds * rate) + rate, dtype="float32", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError) as exc:
            raise AudioError(422, "corrupt_audio", f"the {fmt} data is corrupt or truncated: "
                                                   f"{_reason(exc)}") from exc
        if len(samples) / rate > max_seconds:
            raise _too_long(len(samples) / rate, max_seconds)
        if _truncated(sf, len(samples)):
            raise AudioError(422, "truncated_audio",
                             f"the {fmt} file is truncated: its header promises more audio than it holds")
        if len(samples) == 0:
            raise AudioError(422, "no_audio", f"the {fmt} file holds no audio frames")
    mono = samples.mean(axis=1) if channels > 1 else samples[:, 0]
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    return Audio(np.ascontiguousarray(mono, dtype=np.float32), fmt, rate, channels)


def _too_long(seconds: float, max_seconds: float) -> AudioError:
    return AudioError(413, "audio_too_long",
                      f"the audio lasts {seconds:.1f} s; this server takes at most {max_seconds:g} s "
                      "(ASR_MAX_SECONDS)")


def _reason(exc: Exception) -> str:
    text = str(exc)
    # libsndfile names the BytesIO object ("Error opening <_io.BytesIO ...>: why"); keep the why.
    return text.split(">: ", 1)[-1] if ">: " in text else text
