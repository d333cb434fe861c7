"""Evaluation data a user gives: a NeMo manifest or a folder of audio files with .txt transcripts;
each utterance's PCM whatever the file's format (FLAC through the real sox); every mistake one line
with its fix."""

from __future__ import annotations

import array
import json
import math
import shutil
import subprocess
import wave
from pathlib import Path

import pytest

from duplex.evaluation.data import EvalDataError, Utterance, load, pcm_of
from tests.support.tools import tool


def tone(seconds: float = 0.5, rate: int = 16000, level: int = 8000) -> array.array:
    return array.array("h", (int(level * math.sin(i * 440 * 2 * math.pi / rate)) for i in range(int(seconds * rate))))


def write_wav(path: Path, samples: array.array, rate: int = 16000, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


def sox(src: Path, dst: Path, *args: str) -> Path:
    subprocess.run([tool("sox"), str(src), *args, str(dst)], check=True, capture_output=True)
    return dst


def manifest(path: Path, *rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def utt(path: Path) -> Utterance:
    return Utterance("x", path, "x", None)


def test_a_manifest_resolves_relative_paths_and_reads_every_key(tmp_path):
    (tmp_path / "audio").mkdir()
    write_wav(tmp_path / "audio" / "a.wav", tone(0.5))
    write_wav(tmp_path / "audio" / "b.wav", tone(0.25, rate=8000), rate=8000)
    elsewhere = write_wav(tmp_path / "c.wav", tone(1.0))
    path = manifest(tmp_path / "sub.json",
                    {"audio_filepath": "audio/a.wav", "text": "Hello there.", "duration": 0.5, "id": "first",
                     "lang": "en", "translation": "Hallo.", "translation_lang": "de", "tags": ["mine"]},
                    "",
                    {"audio_filepath": "audio/b.wav", "text": "no duration", "utt_id": "second"},
                    {"audio_filepath": str(elsewhere), "text": "absolute"})
    data = load(path)
    assert data.name == str(path) and data.path == path.resolve()
    assert data.source == f"manifest {path}: 3 utterances, 1.8 s"
    a, b, c = data.utterances
    assert a == Utterance("first", tmp_path / "audio" / "a.wav", "Hello there.", 0.5, "en", "Hallo.", "de", ("mine",))
    assert (b.id, b.duration, b.lang, b.translation, b.tags) == ("second", 0.25, None, None, ())  # measured
    assert (c.id, c.audio, c.text) == ("c", elsewhere, "absolute")  # the id from the file's stem
    assert len(data.fingerprint) == 64
    jsonl = tmp_path / "sub.jsonl"
    shutil.copy(path, jsonl)
    assert load(jsonl).utterances == data.utterances and load(jsonl).fingerprint == data.fingerprint


def test_the_fingerprint_follows_ids_texts_translations_and_audio_not_paths(tmp_path):
    write_wav(tmp_path / "a.wav", tone(0.5))
    row = {"audio_filepath": "a.wav", "text": "hello", "translation": "hallo"}
    base = load(manifest(tmp_path / "m.json", row)).fingerprint
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copy(tmp_path / "a.wav", moved / "a.wav")
    assert load(manifest(moved / "m.json", row)).fingerprint == base
    for change in ({"text": "hello!"}, {"translation": "Hallo"}, {"id": "b"}):
        assert load(manifest(tmp_path / "m.json", {**row, **change})).fingerprint != base, change
    write_wav(tmp_path / "a.wav", tone(0.5, level=8001))
    assert load(manifest(tmp_path / "m.json", row)).fingerprint != base


def test_a_folder_of_wav_and_flac_files_with_transcripts(tmp_path):
    write_wav(tmp_path / "one.wav", tone(0.5))
    sox(write_wav(tmp_path / "src.wav", tone(1.0)), tmp_path / "two.flac")
    (tmp_path / "src.wav").unlink()
    (tmp_path / "one.txt").write_text("  the first one\n", encoding="utf-8")
    (tmp_path / "two.txt").write_text("the second one", encoding="utf-8")
    (tmp_path / "notes.md").write_text("not audio")
    data = load(tmp_path)
    assert [(u.id, u.text, u.audio.name) for u in data.utterances] == [
        ("one", "the first one", "one.wav"), ("two", "the second one", "two.flac")]
    assert [u.duration for u in data.utterances] == [0.5, 1.0]  # FLAC's measured by sox
    assert data.source == f"folder {tmp_path}: 2 utterances, 1.5 s"


def test_pcm_of_a_16_bit_wav_at_any_rate_and_a_stereo_one_mixed_down(tmp_path):
    samples = tone(0.3, rate=8000)
    assert pcm_of(utt(write_wav(tmp_path / "a.wav", samples, rate=8000))) == (samples.tobytes(), 8000)
    stereo = array.array("h", [v for pair in zip([1000, -300, 7], [3000, -101, 8], strict=True) for v in pair])
    assert pcm_of(utt(write_wav(tmp_path / "s.wav", stereo, channels=2))) == (
        array.array("h", [2000, -201, 7]).tobytes(), 16000)


def test_pcm_of_flac_24_bit_and_stereo_44k_through_sox(tmp_path):
    samples = tone(0.5)
    wav = write_wav(tmp_path / "a.wav", samples)
    assert pcm_of(utt(sox(wav, tmp_path / "a.flac"))) == (samples.tobytes(), 16000)  # lossless: the same samples
    assert pcm_of(utt(sox(wav, tmp_path / "a24.wav", "-b", "24"))) == (samples.tobytes(), 16000)
    pcm, rate = pcm_of(utt(sox(wav, tmp_path / "b.flac", "-c", "2", "-r", "44100")))
    assert rate == 44100 and len(pcm) == 2 * 44100 // 2  # mono, half a second


def error(path) -> EvalDataError:
    with pytest.raises(EvalDataError) as caught:
        load(path)
    assert caught.value.fix  # every mistake says what to do next
    return caught.value


def test_each_mistake_in_a_manifest_is_one_line_with_its_fix(tmp_path):
    write_wav(tmp_path / "a.wav", tone(0.2))
    good = {"audio_filepath": "a.wav", "text": "hello"}
    assert "does not exist" in str(error(tmp_path / "nothing.json"))
    assert str(error(manifest(tmp_path / "m.json", good, '{"audio_filepath": "a.wav",'))).startswith(
        f"{tmp_path / 'm.json'}, line 2 is not JSON")
    assert "line 1 is a JSON list, not an object" in str(error(manifest(tmp_path / "m.json", [good])))
    assert str(error(manifest(tmp_path / "m.json", {"audio_filepath": "a.wav"}))).endswith("line 1 has no 'text'")
    assert "'audio_filepath' is not a string" in str(error(manifest(tmp_path / "m.json", {**good, "audio_filepath": 3})))
    gone = error(manifest(tmp_path / "m.json", good, {**good, "audio_filepath": "b.wav"}))
    assert f"line 2: the audio file {tmp_path / 'b.wav'} does not exist" in str(gone) and str(tmp_path) in gone.fix
    assert "two utterances have the id 'a'" in str(error(manifest(tmp_path / "m.json", good, good)))
    assert "no utterances" in str(error(manifest(tmp_path / "m.json", "", "  ")))
    assert "transcript is empty" in str(error(manifest(tmp_path / "m.json", {**good, "text": " "})))
    assert "duration 'long' is not a number" in str(error(manifest(tmp_path / "m.json", {**good, "duration": "long"})))
    assert "'translation' is not a string" in str(error(manifest(tmp_path / "m.json", {**good, "translation": 1})))
    assert "tags must be a list of strings" in str(error(manifest(tmp_path / "m.json", {**good, "tags": "x"})))
    (tmp_path / "latin.json").write_bytes(b'{"audio_filepath": "a.wav", "text": "caf\xe9"}\n')
    assert "not valid UTF-8" in str(error(tmp_path / "latin.json"))


def test_each_mistake_in_a_folder_is_one_line_with_its_fix(tmp_path):
    assert "holds no audio files" in str(error(tmp_path))
    write_wav(tmp_path / "a.wav", tone(0.2))
    write_wav(tmp_path / "b.wav", tone(0.2))
    (tmp_path / "a.txt").write_text("hello")
    assert "1 of 2 audio files have no transcript beside them (the first: b.wav has no b.txt)" in str(error(tmp_path))
    (tmp_path / "b.txt").write_text("\n")
    assert str(error(tmp_path)) == f"{tmp_path / 'b.txt'} is empty"
    (tmp_path / "b.txt").write_text("hello")
    assert [u.id for u in load(tmp_path).utterances] == ["a", "b"]
    sox(tmp_path / "b.wav", tmp_path / "b.flac")  # two recordings of one stem share its transcript and id
    assert "two utterances have the id 'b'" in str(error(tmp_path))


def test_audio_sox_cannot_read_or_without_sox(tmp_path, monkeypatch):
    bad = tmp_path / "bad.flac"
    bad.write_bytes(b"not a flac file at all" * 10)
    with pytest.raises(EvalDataError) as caught:
        pcm_of(utt(bad))
    assert str(caught.value).startswith(f"sox cannot read {bad}: ") and "convert it to 16-bit WAV" in caught.value.fix
    flac = sox(write_wav(tmp_path / "a.wav", tone(0.2)), tmp_path / "a.flac")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(EvalDataError) as caught:
        pcm_of(utt(flac))
    assert "reading it needs sox, which is not installed" in str(caught.value)
    assert caught.value.fix.startswith("sudo apt-get install sox")
    assert pcm_of(utt(tmp_path / "a.wav"))[1] == 16000  # a 16-bit WAV needs no sox
