"""`inv eval` through the real CLI on the default stack run natively (pocketsphinx, real processes
and ports), on duplex's own synthetic set: the committed baseline holds (what CI checks), the
figures are jiwer's, and a resampler broken on purpose fails `--check` naming the utterances it
made worse. The translation stack (Whisper base + an mt) is checked in tests/translate/test_chain.py."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_inv
from tests.support.net import free_port
from tests.support.stackcopy import copy_stack

BASELINE = ROOT / "eval-baseline.json"  # the default stack's, committed: what a fresh clone checks against
GOOD = "    if rate != SAMPLE_RATE:\n        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality=\"HQ\")\n"
# every upload played 15 % fast: the kind of slip a refactor of the resampler makes
BROKEN = "    mono = soxr.resample(mono, rate, int(SAMPLE_RATE * 0.85), quality=\"HQ\")\n"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = copy_stack(tmp_path_factory.mktemp("eval") / "stack", "evaltest")
    env = {"DUPLEX_STACK": str(root / "stack.toml"), "DUPLEX_PORT_ASR": str(free_port())}
    up = run_inv("run", "--native", "--detach", "--skip-preflight", "--services", "asr", env=env, cwd=root,
                 timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield root, env
    finally:
        run_inv("stop", "--all", env=env, cwd=root, timeout=120)


def _reloads(root: Path) -> int:
    return (root / ".duplex" / "logs" / "asr.log").read_text(errors="replace").count("re-imported servers.asr.app")


def _reloaded(root: Path, before: int) -> None:
    """Until the warm reloader says it serves an edit made after `before` reloads."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _reloads(root) > before:
            return
        time.sleep(0.1)
    raise AssertionError(f"asr never reloaded:\n{(root / '.duplex' / 'logs' / 'asr.log').read_text()[-2000:]}")


def test_the_committed_baseline_holds_and_the_figures_are_jiwers(stack, tmp_path):
    root, env = stack
    got = run_inv("eval", "--check", "--baseline", str(BASELINE), "--json", "--out", str(tmp_path),
                  env=env, cwd=root, timeout=900)
    assert got.returncode == 0, got.stdout + got.stderr[-4000:]
    doc = json.loads(got.stdout)
    assert doc["breaches"] == [] and doc["baseline"]["same_data"], doc["baseline"]
    assert doc["baseline"]["model_changed"] == {}
    asr = doc["services"]["asr"]
    assert asr["backend"] == "pocketsphinx" and set(asr["modes"]) == {"batch", "stream"}
    assert doc["data"]["name"] == "default" and doc["data"]["utterances"] >= 20
    assert "synthesising" in got.stderr and "asr stream" in got.stderr  # progress, on stderr under --json
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer
    whisper = EnglishTextNormalizer()

    def norm(text: str) -> str:  # docs/eval.md: clock times joined, then Whisper's normaliser
        return whisper(re.sub(r"\b(\d{1,2}):(\d{2})\b", r"\1\2", text))
    for mode in ("batch", "stream"):
        fig = asr["modes"][mode]
        rows = fig["utterances"]
        assert len(rows) == doc["data"]["utterances"] and all(r["hyp"] is not None for r in rows), rows
        # the WER duplex reports is jiwer's over Whisper-normalised text, computed here from the raw texts
        refs, hyps = [norm(r["ref"]) for r in rows], [norm(r["hyp"]) for r in rows]
        errors = sum(round(jiwer.process_words(a, b).wer * len(a.split())) if b.split() else len(a.split())
                     for a, b in zip(refs, hyps, strict=True))
        assert fig["wer"] == pytest.approx(errors / sum(len(a.split()) for a in refs), abs=1e-3)
        # real recognition: pocketsphinx reads flite's clean voices nearly word for word (espeak-ng's
        # voices and the noisy utterances are the set's hard part: most of its words are lost there)
        clean = [r for r in rows if {"flite", "clean"} <= set(r["tags"])]
        assert sum(r["errors"] for r in clean) / sum(r["ref_words"] for r in clean) < 0.25, clean
    stream = asr["modes"]["stream"]
    assert stream["final_s"]["n"] == len(stream["utterances"]) and 0 < stream["final_s"]["p50"] < 3
    assert 0 < stream["stability"] <= 1
    written = json.loads((tmp_path / "eval.json").read_text())
    assert (tmp_path / "eval.html").is_file() and written["services"] == doc["services"]
    assert written["commit"] is None and written["dirty"] is None  # the stack's copy is not a git checkout


def test_a_resampler_broken_on_purpose_fails_the_check_naming_the_worst_utterances(stack):
    root, env = stack
    audio = root / "servers" / "asr" / "audio.py"
    text = audio.read_text()
    assert GOOD in text, "servers/asr/audio.py changed: update this test's edit"
    before = _reloads(root)
    audio.write_text(text.replace(GOOD, BROKEN))
    try:
        _reloaded(root, before)
        broken = run_inv("eval", "--check", "--modes", "batch", "--baseline", str(BASELINE), env=env, cwd=root,
                         timeout=600)
    finally:
        before = _reloads(root)
        audio.write_text(text)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    line = next((ln for ln in broken.stdout.splitlines() if ln.startswith("BREACH: asr batch WER")), broken.stdout)
    assert re.fullmatch(r"BREACH: asr batch WER [\d.]+% > baseline [\d.]+% \+ 2 points; worse: \S+(, \S+)*", line), line
    assert "Traceback" not in broken.stdout + broken.stderr
    _reloaded(root, before)
    fixed = run_inv("eval", "--check", "--modes", "batch", "--baseline", str(BASELINE), env=env, cwd=root,
                    timeout=600)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr


def test_save_writes_a_baseline_the_next_check_holds_to(stack, tmp_path):
    root, env = stack
    saved = run_inv("eval", "--save", "--modes", "batch", "--baseline", str(tmp_path / "b.json"), env=env, cwd=root,
                    timeout=600)
    assert saved.returncode == 0 and "saved the baseline" in saved.stdout, saved.stdout + saved.stderr
    base = json.loads((tmp_path / "b.json").read_text())
    assert set(base["services"]["asr"]["modes"]) == {"batch"} and "ops" not in base["services"]["asr"]["modes"]["batch"]["utterances"][0]
    again = run_inv("eval", "--check", "--modes", "batch", "--baseline", str(tmp_path / "b.json"), env=env, cwd=root,
                    timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr


def test_mistakes_are_one_line_each(stack, tmp_path):
    root, env = stack
    cases = [
        (("eval", "--check", "--baseline", str(tmp_path / "none.json")), 1, "no baseline at"),
        (("eval", "--modes", "fast"), 2, "--modes 'fast': expected one or more of batch, stream"),
        (("eval", "--data", str(tmp_path / "missing")), 1, str(tmp_path / "missing")),
        (("eval", "--services", "frontend"), 1, "cannot evaluate frontend"),
    ]
    for args, code, says in cases:
        got = run_inv(*args, env=env, cwd=root, timeout=120)
        assert got.returncode == code and says in got.stderr, (args, got.stdout, got.stderr)
        assert "Traceback" not in got.stderr and got.stderr.count("\n") <= 3, got.stderr


def test_nothing_running_is_said_before_any_work(tmp_path):
    root = copy_stack(tmp_path / "idle", "evalidle")
    got = run_inv("eval", env={"DUPLEX_STACK": str(root / "stack.toml")}, cwd=root, timeout=120)
    assert got.returncode == 1 and "nothing is running to evaluate" in got.stderr, got.stdout + got.stderr
