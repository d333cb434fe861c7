"""The default set: what it holds, that it is the same bytes every time, that the noise is at the SNR
it claims, and that it is built once, atomically, and rebuilt when its definition or files change."""

from __future__ import annotations

import array
import dataclasses
import json
import math
import wave

import pytest

from duplex.evaluation import synth
from duplex.evaluation.data import EvalDataError, load
from duplex.tts import TtsError, espeak, flite


def test_the_default_set_holds_what_the_contract_says(default_set):
    utts = default_set.utterances
    assert default_set.name == "default" and len(utts) == 24
    assert default_set.path.name == "manifest.json" and default_set.path.parent.name == "default-v1"
    assert default_set.source.startswith("duplex default set v1: 24 utterances")
    assert len({u.id for u in utts}) == 24
    assert 60 <= sum(u.duration for u in utts) <= 90
    for utt in utts:
        assert utt.lang == "en" and utt.translation_lang == "de" and utt.translation
        assert utt.audio.is_absolute() and utt.audio.parent == default_set.path.parent / "audio"
        with wave.open(str(utt.audio), "rb") as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
            assert utt.duration == pytest.approx(w.getnframes() / 16000, abs=0.001)
        assert utt.duration > 0.8  # something was said
    tags = {t for u in utts for t in u.tags}
    assert {*synth.FLITE, *synth.ESPEAK, "flite", "espeak-ng", *synth.SNR_DB, "numbers", "names", "short", "long"} <= tags
    short = [u for u in utts if "short" in u.tags]
    assert len(short) >= 8 and all(3 <= len(u.text.split()) <= 5 for u in short)
    assert all(15 <= len(u.text.split()) <= 25 for u in utts if "long" in u.tags)
    texts = " ".join(u.text for u in utts)
    assert all(s in texts for s in ("7:45", "March 3rd", "25 dollars", "1999", "Maria Garcia", "Edinburgh"))


def test_the_manifest_loads_back_as_the_same_set(default_set):
    again = load(default_set.path)
    assert again.utterances == default_set.utterances
    assert again.fingerprint == default_set.fingerprint and again.path == default_set.path
    assert again.name == str(default_set.path) != default_set.name


def test_a_fresh_build_is_the_same_bytes_and_is_reused_until_its_files_or_definition_change(default_set, tmp_path):
    said = []
    built = synth.default_set(tmp_path, say=said.append)
    assert built.fingerprint == default_set.fingerprint  # same tools, same bytes
    assert said[0].startswith("building the default evaluation set in") and "synthesising 1/24: awb" in said[1]
    assert len(said) == 25 and sorted(p.name for p in tmp_path.iterdir()) == ["default-v1"]  # no temp left

    said.clear()
    first = built.utterances[0].audio
    stamp = first.stat().st_mtime_ns
    assert synth.default_set(tmp_path, say=said.append) == built and said == []  # reused, not rebuilt
    assert first.stat().st_mtime_ns == stamp

    first.write_bytes(first.read_bytes()[:-2])  # a damaged file: the fingerprint no longer matches
    assert synth.default_set(tmp_path, say=said.append).fingerprint == default_set.fingerprint and len(said) == 25

    marker = tmp_path / "default-v1" / "built.json"  # a folder built from another definition
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "definition": "an older one"}))
    said.clear()
    assert synth.default_set(tmp_path, say=said.append).fingerprint == default_set.fingerprint and len(said) == 25
    assert json.loads(marker.read_text())["definition"] == synth.DEFINITION
    assert sorted(p.name for p in tmp_path.iterdir()) == ["default-v1"]  # the stale folder is gone too


def test_a_change_to_the_definition_changes_its_hash():
    assert synth.DEFINITION == synth.definition(synth.ITEMS)
    changed = (dataclasses.replace(synth.ITEMS[0], translation="Hallo, Maria."), *synth.ITEMS[1:])
    assert synth.definition(changed) != synth.DEFINITION


def rms(samples) -> float:
    return math.sqrt(sum(float(s) * s for s in samples) / len(samples))


def test_the_noise_is_at_the_stated_snr(default_set, tmp_path):
    """noise = noisy - clean, the clean speech synthesised again: its RMS is the stated SNR below
    the speech's within 0.5 dB, and each utterance drew noise of its own."""
    noisy = [(n, item) for n, item in enumerate(synth.ITEMS, 1) if synth.SNR_DB[item.condition] is not None]
    assert len(noisy) >= 12
    by_id = {u.id: u for u in default_set.utterances}
    starts = set()
    for number, item in noisy:
        clean_path = tmp_path / f"{number}.wav"
        (flite if item.voice in synth.FLITE else espeak)(item.spoken or item.text, item.voice, clean_path)
        with wave.open(str(clean_path), "rb") as w:
            clean = array.array("h", w.readframes(w.getnframes()))
        with wave.open(str(by_id[synth.ident(number, item)].audio), "rb") as w:
            mixed = array.array("h", w.readframes(w.getnframes()))
        assert len(mixed) == len(clean)
        noise = [m - c for m, c in zip(mixed, clean, strict=True)]
        snr = 20 * math.log10(rms(clean) / rms(noise))
        assert snr == pytest.approx(synth.SNR_DB[item.condition], abs=0.5), item
        starts.add(tuple(noise[:20]))
    assert len(starts) == len(noisy)


def test_noise_is_seeded():
    speech = array.array("h", [int(8000 * math.sin(i / 5)) for i in range(4000)]).tobytes()
    assert synth.noisy(speech, 10, "a") == synth.noisy(speech, 10, "a") != synth.noisy(speech, 10, "b")
    loud = array.array("h", [32000, -32000] * 2000).tobytes()  # full scale plus noise stays in int16
    assert max(map(abs, array.array("h", synth.noisy(loud, 10, "a")))) <= 32768


def test_missing_synthesisers_are_named_with_the_apt_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(EvalDataError) as caught:
        synth.default_set(tmp_path / "cache", say=lambda line: None)
    assert "not installed: flite, espeak-ng, sox" in str(caught.value)
    assert caught.value.fix == "sudo apt-get install flite espeak-ng sox"
    assert not (tmp_path / "cache").exists()


def test_a_voice_flite_lacks_is_refused_not_spoken_at_8_khz(tmp_path):
    with pytest.raises(TtsError) as caught:
        flite("hello", "nobody", tmp_path / "x.wav")  # flite itself falls back to its 8 kHz "kal"
    assert str(caught.value) == "flite has no 16 kHz voice 'nobody' (it spoke at 8000 Hz)"
    with pytest.raises(TtsError) as caught:
        espeak("hello", "nobody", tmp_path / "y.wav")
    assert str(caught.value).startswith("espeak-ng could not speak with voice nobody: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.wav"]  # espeak's 22 kHz file is not left behind
