"""Hand-built `inv eval` documents in EVAL_SPEC.md's schema (docs/eval.md): for the report's tests
and the dashboard's, without a stack to measure. One hypothesis is hostile markup, as a server's
answer could be."""

from __future__ import annotations

import copy

HOSTILE = "<script>alert(1)</script>"


def utterance(ident: str, ref: str, hyp: str | None, ops: list, errors: int, **extra) -> dict:
    words = len(ref.split())
    return {"id": ident, "ref": ref, "hyp": hyp, "ref_norm": ref.lower(), "hyp_norm": (hyp or "").lower(),
            "wer": round(errors / words, 3), "cer": round(errors / words / 2, 3), "errors": errors,
            "ref_words": words, "seconds": 0.3, "audio_s": 2.0, "ops": ops, **extra}


def utterances() -> list[dict]:
    """Not in order: the report sorts them, worst first."""
    return [
        utterance("u-good", "the train leaves at 7:45", "the train leaves at seven forty five",
                  [["equal", "the train leaves at 7 45", "the train leaves at 7 45"]], 0, tags=["flite", "numbers"]),
        utterance("u-sub", "the cat sat", "the bat sat",
                  [["equal", "the", "the"], ["sub", "cat", "bat"], ["equal", "sat", "sat"]], 1),
        utterance("u-hostile", "hello world", f"{HOSTILE} hello world",
                  [["ins", "", HOSTILE], ["equal", "hello world", "hello world"]], 1, tags=["<b>tag</b>"]),
        utterance("u-del", "one two three four", "one four",
                  [["equal", "one", "one"], ["del", "two three", ""], ["equal", "four", "four"]], 2),
        {**utterance("u-failed", "good morning everyone", None, [["del", "good morning everyone", ""]], 3),
         "error": "asr answered 500 <i>after</i> 30 s"},
    ]


def document(baseline: bool = False, translate: bool = True) -> dict:
    batch = {"wer": 0.35, "cer": 0.2, "ref_words": 17, "sub": 1, "del": 5, "ins": 1, "rtf": 0.14,
             "utterances": utterances()}
    stream = {**copy.deepcopy(batch), "wer": 0.4, "rtf": None, "stability": 0.91,
              "final_s": {"p50": 0.24, "p95": 0.41, "n": 5, "values": [0.22, 0.25, 0.24, 0.41, 0.3]},
              "first_partial_s": {"p50": 0.5, "p95": 0.8, "n": 5, "values": []}}
    doc = {"version": 1, "stack": "duplex <demo>", "made": "2026-12-05T05:10:00Z", "commit": "43bcdf6", "dirty": False,
           "machine": {"cpus": 2, "system": "Linux x86_64"},
           "data": {"name": "default", "source": "duplex default set v1: 5 utterances", "utterances": 5,
                    "path": ".duplex/eval/default-v1/manifest.json", "audio_s": 10.0, "fingerprint": "ab12" * 16},
           "services": {"asr": {"kind": "asr", "backend": "pocketsphinx", "model": "en-us", "revision": None,
                                "device": "cpu", "modes": {"batch": batch, "stream": stream}}},
           "baseline": None, "breaches": []}
    if translate:
        doc["services"]["mt"] = {
            "kind": "translate", "via": "asr", "model": "Qwen/Qwen3-4B", "revision": "abc", "target": "de",
            "bleu": 12.3, "chrf": 40.1, "signature": "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0",
            "lag_s": {"p50": 0.8, "p95": 1.4, "n": 3, "values": [0.8, 0.7, 1.4]},
            "utterances": [
                {"id": "u-good", "source": "the train leaves at seven forty five", "ref": "Der Zug fährt um 7:45",
                 "hyp": "Der Zug fährt um sieben Uhr fünfundvierzig", "lag_s": 0.8, "chrf": 55.0},
                {"id": "u-hostile", "source": "hello world", "ref": "Hallo Welt", "hyp": HOSTILE,
                 "lag_s": 0.7, "chrf": 3.0},
                {"id": "u-failed", "source": "", "ref": "Guten Morgen", "hyp": None, "lag_s": None, "chrf": None,
                 "error": "mt timed out"}]}
    if baseline:
        per = {u["id"]: {"wer": 0.0, "hyp": u["ref"]} for u in utterances()}
        per["u-del"] = {"wer": 0.75, "hyp": "one"}  # better now
        doc["baseline"] = {
            "path": "eval-baseline.json", "made": "2026-12-01T10:00:00Z", "commit": "0a1b2c3", "same_data": True,
            "services": {"asr": {"modes": {"batch": {"wer": 0.05, "cer": 0.02, "rtf": 0.2, "per_utterance": per},
                                           "stream": {"wer": 0.06, "cer": 0.03, "stability": 0.95,
                                                      "final_s": {"p50": 0.2, "p95": 0.3}, "per_utterance": per}}},
                         "mt": {"bleu": 14.0, "chrf": 42.0, "lag_s": {"p50": 0.9, "p95": 1.5},
                                "per_utterance": {"u-hostile": {"chrf": 30.0, "hyp": "Hallo Welt"}}}},
            "model_changed": {"asr": "baseline: whisper base; now: pocketsphinx en-us"},
            "notes": ["mt2: the baseline has no translate figures for it (`inv eval --save` adds them)"]}
        doc["breaches"] = [{"service": "asr", "mode": "batch", "figure": "wer", "baseline": 0.05, "now": 0.35,
                            "budget": 0.02, "line": "asr batch WER 35.0% > baseline 5.0% + 2 points; worse: u-failed, u-del",
                            "worst": ["u-failed", "u-del"]}]
    return doc
