"""Scores against the tools teams compute them with: jiwer's own CLI for WER and CER, sacrebleu's
own CLI for BLEU and chrF, over the same files; the budgets of `inv eval --check` (pure)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from duplex.evaluation import baseline, score
from duplex.stack import EvalSpec

PAIRS = [  # (reference as a person writes it, what a recogniser might say)
    ("The train leaves at 7:45 on March 3rd.", "the train leave at seven forty five on march third"),
    ("It costs 25 dollars, Mr. Smith.", "it costs twenty five dollars mister smith"),
    ("I'm meeting Maria Garcia in Edinburgh tomorrow.", "i am meeting maria garcia in edinburgh tomorrow"),
    ("Please turn on the lights in the kitchen.", "please turn the light in kitchen kitchen"),
    ("Open the door.", ""),
    ("The colour of the sky is grey.", "the color of the sky is gray today"),
]


def _cli(name: str) -> str:
    found = Path(sys.executable).with_name(name)
    return str(found) if found.is_file() else shutil.which(name)


def test_wer_and_cer_are_jiwers_over_whispers_normalised_text(tmp_path):
    scored = [score.utterance(r, h) for r, h in PAIRS]
    total = score.totals(scored)
    refs = [u["ref_norm"] for u in scored]
    hyps = [u["hyp_norm"] or "<empty>" for u in scored]  # jiwer's CLI reads a blank line as no sentence
    (tmp_path / "ref.txt").write_text("\n".join(refs) + "\n")
    (tmp_path / "hyp.txt").write_text("\n".join(hyps) + "\n")
    # "<empty>" counts one more word than nothing: one deletion becomes a substitution, the same error count
    wer = float(subprocess.run([_cli("jiwer"), "-r", str(tmp_path / "ref.txt"), "-h", str(tmp_path / "hyp.txt")],
                               capture_output=True, text=True, check=True).stdout.strip())
    assert total["wer"] == pytest.approx(wer, abs=1e-4)
    import jiwer
    chars = jiwer.process_characters(refs, [u["hyp_norm"] or " " for u in scored])  # " ": one more deletion...
    errors = chars.substitutions + chars.deletions + chars.insertions
    assert sum(u["char_errors"] for u in scored) == errors  # ...counted as a substitution: the same errors
    assert total["cer"] == pytest.approx(errors / sum(len(r) for r in refs), abs=1e-4)
    # what the normaliser made equal: numbers, titles, contractions, British spelling
    assert scored[2]["errors"] == 0 and scored[1]["errors"] == 0
    assert scored[5]["ops"][-1] == ["ins", "", "today"] and scored[4]["ops"] == [["del", "open the door", ""]]


def test_bleu_and_chrf_are_sacrebleus_own(tmp_path):
    refs = ["Der Zug fährt um 7:45 Uhr ab.", "Es kostet 25 Dollar.", "Bitte mach das Licht in der Küche an.",
            "Öffne die Tür."]
    hyps = ["Der Zug fährt um 7:45 ab.", "Das kostet 25 Dollar.", "Bitte schalte das Licht in der Küche ein.", ""]
    (tmp_path / "ref.txt").write_text("\n".join(refs) + "\n")
    (tmp_path / "hyp.txt").write_text("\n".join(hyps) + "\n")
    got = score.translation(hyps, refs)
    cli = subprocess.run([_cli("sacrebleu"), str(tmp_path / "ref.txt"), "-i", str(tmp_path / "hyp.txt"),
                          "-m", "bleu", "chrf", "-b", "-w", "2"], capture_output=True, text=True, check=True)
    bleu, chrf = json.loads(cli.stdout)  # -b: the scores alone, one per metric
    assert (got["bleu"], got["chrf"]) == (bleu, chrf)
    assert got["signature"]["bleu"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")


def test_stability_is_the_share_of_partial_words_the_final_kept():
    assert score.stability([(["the", "the cat", "the cat sat"], "the cat sat down")]) == 1.0
    # "the cat sad" kept 2 of 3 words: 1 + 2 + 2 kept of 1 + 2 + 3 shown
    assert score.stability([(["the", "the cat", "the cat sad"], "the cat sat")]) == round(5 / 6, 4)
    assert score.stability([([], "hello")]) is None


def _doc(wer: float, hyps: dict[str, str], final_p95: float = 0.3, model: str = "en-us", fingerprint: str = "f1"):
    utts = [{"id": i, "hyp": h, "wer": wer, "errors": round(wer * 10), "ref_words": 10} for i, h in hyps.items()]
    return {"version": 1, "stack": "t", "made": "2026-12-05T00:00:00Z", "commit": "abc", "dirty": False,
            "data": {"source": "set", "fingerprint": fingerprint},
            "services": {"asr": {"kind": "asr", "backend": "pocketsphinx", "model": model, "revision": None,
                                 "modes": {"batch": {"wer": wer, "cer": wer / 2, "utterances": utts},
                                           "stream": {"wer": wer, "final_s": {"p50": 0.2, "p95": final_p95, "n": 2,
                                                                              "values": [0.2, final_p95]},
                                                      "utterances": utts}}},
                         "mt": {"kind": "translate", "model": "q", "bleu": 20.0, "chrf": 50.0,
                                "lag_s": {"p50": 1, "p95": 1.2, "n": 1, "values": [1.2]},
                                "utterances": [{"id": "a", "hyp": "x", "chrf": 50.0, "lag_s": 1.2}]}},
            "baseline": None, "breaches": []}


def test_check_passes_within_budget_and_names_the_worst_utterances_beyond_it(tmp_path):
    base = json.loads(json.dumps(baseline.trimmed(_doc(0.10, {"a": "x", "b": "y"}))))
    same = baseline.compare(_doc(0.11, {"a": "x", "b": "y"}), base, EvalSpec(), "eval-baseline.json")
    assert same["breaches"] == [] and same["baseline"]["same_data"] and same["baseline"]["model_changed"] == {}
    now = _doc(0.10, {"a": "x", "b": "y"})
    now["services"]["asr"]["modes"]["batch"].update(wer=0.30)
    now["services"]["asr"]["modes"]["batch"]["utterances"][1].update(errors=6, wer=0.6)
    now["services"]["asr"]["modes"]["stream"]["final_s"]["p95"] = 1.0
    now["services"]["mt"]["bleu"] = 17.0
    worse = baseline.compare(now, base, EvalSpec(), "eval-baseline.json")
    lines = [b["line"] for b in worse["breaches"]]
    assert lines == ["asr batch WER 30.0% > baseline 10.0% + 2 points; worse: b",
                     "asr stream end of speech -> final p95 1.00 s > baseline 0.30 s + 0.5 s",
                     "mt BLEU 17.0 < baseline 20.0 - 2"]
    assert worse["baseline"]["services"]["asr"]["modes"]["batch"]["per_utterance"]["b"]["hyp"] == "y"
    looser = baseline.compare(now, base, EvalSpec(wer=0.25, final_p95=1.0, bleu=5), "eval-baseline.json")
    assert looser["breaches"] == []


def test_a_baseline_of_another_model_or_data_is_said_and_still_compared(tmp_path):
    base = baseline.trimmed(_doc(0.1, {"a": "x"}, model="en-us", fingerprint="f1"))
    got = baseline.compare(_doc(0.1, {"a": "x"}, model="base", fingerprint="f2"), base, EvalSpec(), "b.json")
    assert got["baseline"]["model_changed"] == {"asr": "baseline: pocketsphinx en-us; now: pocketsphinx base"}
    assert not got["baseline"]["same_data"] and any("other data" in n for n in got["baseline"]["notes"])


def test_the_baseline_file_round_trips_and_a_broken_one_is_one_line(tmp_path):
    path = baseline.save(_doc(0.1, {"a": "x"}), tmp_path / "eval-baseline.json")
    back = baseline.load(path)
    assert back["services"]["asr"]["modes"]["stream"]["final_s"] == {"p50": 0.2, "p95": 0.3, "n": 2}
    for text, says in (("{", "cannot read the baseline"), ('{"version": 7}', "not a baseline duplex wrote")):
        path.write_text(text)
        with pytest.raises(baseline.BaselineError, match=says):
            baseline.load(path)
    with pytest.raises(baseline.BaselineError, match="no baseline at"):
        baseline.load(tmp_path / "missing.json")
