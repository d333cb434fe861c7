"""What the simulated users say: phrases synthesised in several voices with flite (cached), or the
sample shipped with duplex when flite is missing, or the WAV files of a folder the user gives
(each with a .txt beside it holding what is said)."""

from __future__ import annotations

import shutil
import wave
from dataclasses import dataclass
from pathlib import Path

from ..asr_stream import read_pcm, speech_spans
from ..errors import DuplexError
from ..tts import TtsError, flite

VOICES = ("awb", "rms", "slt")  # flite's 16 kHz voices: three speakers
PHRASES = (
    "hello world this is a test of speech recognition",
    "please turn on the lights in the kitchen",
    "the weather today is sunny and warm",
    "open the door and close the window",
)
SAMPLE = Path(__file__).parents[1] / "data" / "hello.wav"  # flite awb, what `inv smoke` says
SAMPLE_TEXT = "hello world this is a test"
RATE = 16000
GAP_S = 0.8  # the pause between utterances: the endpointer's cue that one ended


class SpeechError(DuplexError):
    pass


@dataclass(frozen=True)
class Clip:
    voice: str
    text: str
    pcm: bytes


@dataclass(frozen=True)
class Passage:
    """One user's turn at a level: utterances with pauses, their texts and where speech is."""

    voice: str
    texts: tuple[str, ...]
    pcm: bytes
    spans: tuple[tuple[float, float], ...]

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / RATE

    @property
    def text(self) -> str:
        return " ".join(self.texts)


def clips(cache: Path, folder: Path | None = None, say=print) -> tuple[list[Clip], str]:
    """The clips and where they came from, in words."""
    if folder is not None:
        return _folder(folder), f"{folder} (your recordings)"
    if shutil.which("flite") is None:
        return [Clip("awb", SAMPLE_TEXT, _pcm(SAMPLE))], (
            "duplex's one sample (flite is not installed: `sudo apt-get install flite` gives three voices)")
    cache.mkdir(parents=True, exist_ok=True)
    found = []
    for voice in VOICES:
        for i, text in enumerate(PHRASES):
            path = cache / f"{voice}-{i}.wav"
            if not path.is_file():
                say(f"  synthesising {voice}: {text!r}")
                part = path.with_suffix(".part.wav")
                try:
                    flite(text, voice, part)
                except TtsError as exc:
                    raise SpeechError(str(exc), fix=f"{exc.fix}, or pass --speech DIR") from None
                part.replace(path)
            found.append(Clip(voice, text, _pcm(path)))
    return found, f"flite, voices {', '.join(VOICES)}"


def _pcm(path: Path) -> bytes:
    try:
        pcm, rate = read_pcm(path)
    except (OSError, EOFError, ValueError, wave.Error) as exc:
        raise SpeechError(f"{path} is not a readable 16-bit mono WAV file ({exc})",
                          fix=f"convert it: sox {path.name} -r 16000 -c 1 -b 16 out.wav") from None
    if rate != RATE:
        raise SpeechError(f"{path} is sampled at {rate} Hz; the load test speaks 16 kHz",
                          fix=f"resample it: sox {path.name} -r 16000 -c 1 -b 16 out.wav")
    return pcm


def _folder(folder: Path) -> list[Clip]:
    if not folder.is_dir():
        raise SpeechError(f"{folder} is not a folder", fix="pass a folder of .wav files, each with a .txt beside it")
    found = []
    for wav in sorted(folder.glob("*.wav")):
        txt = wav.with_suffix(".txt")
        if not txt.is_file():
            raise SpeechError(f"{wav} has no {txt.name} beside it saying what is spoken",
                              fix=f"write the words into {txt} (the WER of the finals is measured against it)")
        found.append(Clip(wav.parent.name, txt.read_text(encoding="utf-8", errors="replace").strip(), _pcm(wav)))
    if not found:
        raise SpeechError(f"{folder} holds no .wav files", fix="add 16 kHz mono 16-bit .wav files with .txt transcripts")
    return found


def passages(found: list[Clip], users: int, seconds: float) -> list[Passage]:
    """One passage per user: voices in turn, phrases rotated so users do not speak in unison, clips
    added until the passage lasts at least `seconds`."""
    by_voice: dict[str, list[Clip]] = {}
    for clip in found:
        by_voice.setdefault(clip.voice, []).append(clip)
    voices = sorted(by_voice)
    keys = [(voices[u % len(voices)], (u // len(voices)) % len(by_voice[voices[u % len(voices)]])) for u in range(users)]
    made = {key: _passage(by_voice[key[0]], key[1], seconds) for key in set(keys)}  # later users repeat earlier ones
    return [made[key] for key in keys]


def _passage(own: list[Clip], first: int, seconds: float) -> Passage:
    pcm, texts, i = b"", [], first
    while not texts or len(pcm) / 2 / RATE < seconds:
        clip = own[i % len(own)]
        pcm += clip.pcm + b"\0\0" * int(GAP_S * RATE)
        texts.append(clip.text)
        i += 1
    return Passage(own[0].voice, tuple(texts), pcm, tuple(speech_spans(pcm, RATE)))
