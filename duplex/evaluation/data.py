"""What `inv eval` speaks: a NeMo manifest (JSON lines: `audio_filepath`, `text`, `duration`, and
optionally `lang`, `translation`, `translation_lang`, `id`/`utt_id`, `tags`) or a folder of audio files
each with a .txt of the same stem; and the audio of an utterance as 16-bit mono PCM."""

from __future__ import annotations

import array
import hashlib
import json
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

from ..errors import DuplexError
from ..textfile import TextFileError, read_text

AUDIO = (".wav", ".flac", ".ogg", ".mp3")
MANIFEST_LIMIT = 256 * 2**20  # LibriSpeech's largest manifests are tens of MB
SOX = "sudo apt-get install sox libsox-fmt-mp3"


class EvalDataError(DuplexError):
    """The evaluation data cannot be read: a missing file, a bad manifest line, a folder without transcripts."""


@dataclass(frozen=True)
class Utterance:
    id: str                    # unique in the set: the manifest's "id"/"utt_id", else the audio file's stem
    audio: Path                # absolute
    text: str                  # the reference transcript as given (not normalised)
    duration: float | None     # seconds, from the manifest or measured
    lang: str | None = None
    translation: str | None = None       # the reference translation
    translation_lang: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dataset:
    name: str                  # "default" or the path the user gave
    source: str                # one line for people
    path: Path                 # the manifest or folder
    utterances: tuple[Utterance, ...]
    fingerprint: str           # sha256 over (id, text, translation, audio bytes) of every utterance, in order


def load(path: Path) -> Dataset:
    """A manifest (.json or .jsonl, one JSON object per line; relative audio paths resolved against
    its folder) or a folder of audio files with same-stem .txt transcripts."""
    path = Path(path)
    if not path.exists():
        raise EvalDataError(f"{path} does not exist",
                            fix="pass a NeMo manifest (.json/.jsonl) or a folder of audio files with .txt transcripts")
    if path.is_dir():
        utts, kind = _folder(path), "folder"
    else:
        utts, kind = _manifest(path), "manifest"
    ids: dict[str, Utterance] = {}
    for utt in utts:
        if utt.id in ids:
            raise EvalDataError(f"{path}: two utterances have the id {utt.id!r} ({ids[utt.id].audio} and {utt.audio})",
                                fix="give each utterance its own \"id\" in the manifest (or rename one of the files)")
        ids[utt.id] = utt
    if not utts:  # a folder without audio said so already
        raise EvalDataError(f"{path}: no utterances", fix='add a line per utterance: {"audio_filepath": "a.wav", '
                                                          '"text": "what is said", "duration": 1.2}')
    return Dataset(str(path), _describe(kind, path, utts), path.resolve(), tuple(utts), fingerprint(utts))


def _describe(kind: str, path: Path, utts: list[Utterance] | tuple[Utterance, ...]) -> str:
    known = [u.duration for u in utts if u.duration is not None]
    seconds = f", {sum(known):.1f} s" + (" known" if len(known) < len(utts) else "") if known else ""
    return f"{kind} {path}: {len(utts)} utterance{'s' if len(utts) != 1 else ''}{seconds}"


def fingerprint(utts) -> str:
    """sha256 over each utterance's id, text, translation and audio file bytes, in order."""
    digest = hashlib.sha256()
    for utt in utts:
        digest.update(json.dumps([utt.id, utt.text, utt.translation]).encode() + b"\n")
        try:
            audio = hashlib.sha256()
            with open(utt.audio, "rb") as handle:  # hashlib.file_digest is 3.11's; duplex runs on 3.10
                while chunk := handle.read(2**20):
                    audio.update(chunk)
            digest.update(audio.digest())
        except OSError as exc:
            raise EvalDataError(f"cannot read {utt.audio} ({exc.strerror})",
                                fix="check the file is there and readable") from None
    return digest.hexdigest()


def _text(path: Path, what: str, limit: int | None = None) -> str:
    try:
        return read_text(path, what=what, **({"limit": limit} if limit else {}))
    except TextFileError as exc:
        raise EvalDataError(str(exc), fix=exc.fix) from None
    except OSError as exc:
        raise EvalDataError(f"cannot read {path} ({exc.strerror})", fix="check the file is there and readable") from None


def _manifest(path: Path) -> list[Utterance]:
    base = path.resolve().parent
    utts = []
    for number, line in enumerate(_text(path, "manifest", MANIFEST_LIMIT).splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalDataError(f"{where} is not JSON ({exc.msg}, column {exc.colno})",
                                fix="a manifest holds one JSON object per line (NeMo's format), e.g. "
                                    '{"audio_filepath": "a.wav", "text": "hello", "duration": 1.2}') from None
        if not isinstance(row, dict):
            raise EvalDataError(f"{where} is a JSON {type(row).__name__}, not an object",
                                fix="write one JSON object per line (NeMo's format), not one list for the whole file")
        for key in ("audio_filepath", "text"):
            if not isinstance(row.get(key), str):
                raise EvalDataError(f"{where} has no {key!r}" if key not in row else f"{where}: {key!r} is not a string",
                                    fix=f"give every line an {key!r} (NeMo's keys: audio_filepath, text, duration)")
        audio = (base / row["audio_filepath"]).resolve()
        if not audio.is_file():
            raise EvalDataError(f"{where}: the audio file {audio} does not exist",
                                fix=f"relative paths are read from the manifest's folder ({base}); fix the path or the file")
        if not row["text"].strip():
            raise EvalDataError(f"{where}: the transcript is empty", fix="remove the line or write what is said")
        duration = row.get("duration")
        if duration is not None and (not isinstance(duration, (int, float)) or isinstance(duration, bool) or duration < 0):
            raise EvalDataError(f"{where}: duration {duration!r} is not a number of seconds",
                                fix="write the duration in seconds (e.g. 3.25) or leave it out")
        ident = row.get("id", row.get("utt_id", audio.stem))
        tags = row.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise EvalDataError(f"{where}: tags must be a list of strings", fix='e.g. "tags": ["noisy", "names"]')
        utts.append(Utterance(
            str(ident), audio, row["text"], float(duration) if duration is not None else _duration(audio),
            _optional(row, "lang", where), _optional(row, "translation", where),
            _optional(row, "translation_lang", where), tuple(tags)))
    return utts


def _optional(row: dict, key: str, where: str) -> str | None:
    value = row.get(key)
    if value is not None and not isinstance(value, str):
        raise EvalDataError(f"{where}: {key!r} is not a string", fix=f"write {key} as a JSON string or leave it out")
    return value


def _folder(folder: Path) -> list[Utterance]:
    audio = sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO and p.is_file())
    if not audio:
        raise EvalDataError(f"{folder} holds no audio files ({', '.join(AUDIO)})",
                            fix="put the audio files directly in the folder, each with a .txt of the same stem "
                                "saying what is spoken, or pass a NeMo manifest")
    missing = [p for p in audio if not p.with_suffix(".txt").is_file()]
    if missing:
        raise EvalDataError(f"{folder}: {len(missing)} of {len(audio)} audio files have no transcript beside them "
                            f"(the first: {missing[0].name} has no {missing[0].with_suffix('.txt').name})",
                            fix="write what is said in each into a .txt of the same stem (UTF-8), or pass a manifest")
    utts = []
    for path in audio:
        text = _text(path.with_suffix(".txt"), "transcript").strip()
        if not text:
            raise EvalDataError(f"{path.with_suffix('.txt')} is empty", fix="write what is said in it")
        utts.append(Utterance(path.stem, path.resolve(), text, _duration(path)))
    return utts


def _duration(path: Path) -> float | None:
    """Seconds of audio: a WAV's header, else sox's reading of it (None when neither can tell)."""
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() / w.getframerate()
    except (wave.Error, EOFError, OSError):
        pass
    if shutil.which("soxi") is None:
        return None
    proc = subprocess.run(["soxi", "-D", str(path)], capture_output=True, text=True, timeout=60)
    try:
        return float(proc.stdout.strip()) if proc.returncode == 0 else None
    except ValueError:
        return None


def pcm_of(utt: Utterance) -> tuple[bytes, int]:
    """16-bit mono PCM and its sample rate. A 16-bit WAV is read here (any rate; channels averaged);
    anything else (8/24/32-bit or float WAV, FLAC, OGG, MP3) is decoded by sox at its own rate."""
    try:
        with wave.open(str(utt.audio), "rb") as w:
            if w.getsampwidth() == 2:
                return _mono(w.readframes(w.getnframes()), w.getnchannels()), w.getframerate()
    except (wave.Error, EOFError):
        pass  # not a WAV the wave module reads (float, extensible, another format): sox's turn
    except OSError as exc:
        raise EvalDataError(f"cannot read {utt.audio} ({exc.strerror})", fix="check the file is there and readable") from None
    return _sox(utt.audio)


def _mono(pcm: bytes, channels: int) -> bytes:
    if channels == 1:
        return pcm
    samples = array.array("h", pcm)  # little-endian, as WAV is and as the machines duplex runs on are
    columns = [samples[c::channels] for c in range(channels)]
    return array.array("h", (sum(frame) // channels for frame in zip(*columns, strict=False))).tobytes()


def _sox(path: Path) -> tuple[bytes, int]:
    if shutil.which("sox") is None or shutil.which("soxi") is None:
        raise EvalDataError(f"{path.name} is not a 16-bit WAV file: reading it needs sox, which is not installed",
                            fix=f"{SOX} (or convert it: 16-bit WAV is read without sox)")
    rate = subprocess.run(["soxi", "-r", str(path)], capture_output=True, text=True, timeout=60)
    if rate.returncode == 0 and rate.stdout.strip().isdigit():
        pcm = subprocess.run(["sox", "-D", str(path), "-t", "raw", "-e", "signed", "-b", "16", "-c", "1",
                              "-L", "-"], capture_output=True, timeout=600)
        if pcm.returncode == 0:
            return pcm.stdout, int(rate.stdout)
        rate = pcm
    err = rate.stderr.decode(errors="replace") if isinstance(rate.stderr, bytes) else rate.stderr
    raise EvalDataError(f"sox cannot read {path}: {err.strip().splitlines()[-1][:200] if err.strip() else 'no reason given'}",
                        fix=f"convert it to 16-bit WAV, or install sox's formats ({SOX}; others: libsox-fmt-all)")
