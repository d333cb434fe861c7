"""Scores as speech teams compute them (pure): Whisper's English normaliser, then word and character
error rates from jiwer's alignment; BLEU and chrF from sacrebleu. Hand-written scoring is where
two teams' "5 % WER" stop meaning the same thing, so none of it is ours but the bookkeeping.

The libraries are the `eval` extra (`pip install -e '.[eval]'`); `need()` says so in one line."""

from __future__ import annotations

from functools import lru_cache

from ..errors import DuplexError

TAGS = {"equal": "equal", "substitute": "sub", "delete": "del", "insert": "ins"}


class EvalDepsError(DuplexError):
    pass


def need() -> None:
    """Fail in one line, before any audio is sent, when the scoring libraries are missing."""
    import importlib.util
    missing = [m for m in ("jiwer", "sacrebleu", "whisper_normalizer") if importlib.util.find_spec(m) is None]
    if missing:
        raise EvalDepsError(f"`inv eval` scores with {', '.join(missing)}, which this venv lacks",
                            fix="install duplex's eval extra: .venv/bin/pip install -e '.[eval]'")


@lru_cache(maxsize=4)
def _normaliser(english: bool):
    # heavy (regex tables, text2num): only `inv eval` loads it
    from whisper_normalizer.basic import BasicTextNormalizer
    from whisper_normalizer.english import EnglishTextNormalizer
    return EnglishTextNormalizer() if english else BasicTextNormalizer()


def normalise(text: str, lang: str | None = "en") -> str:
    """Whisper's normaliser: English ("7:45" and "seven forty five", "Mr." and "mister", "colour" and
    "color" compare equal; punctuation and case dropped), its basic one for other languages."""
    english = (lang or "en").split("-")[0].lower() == "en"
    return " ".join(_normaliser(english)(text).split())


def utterance(reference: str, hypothesis: str | None, lang: str | None = "en") -> dict:
    """One utterance scored: normalised texts, errors by kind, WER, CER and the word alignment as
    `[tag, ref_words, hyp_words]` ops (tags equal/sub/del/ins). No hypothesis (the service failed):
    every reference word deleted."""
    import jiwer  # heavy (rapidfuzz): only `inv eval` scores
    ref, hyp = normalise(reference, lang), normalise(hypothesis or "", lang)
    ref_words, hyp_words = ref.split(), hyp.split()
    if not ref_words:  # nothing was said: every word heard is inserted
        ops = [["ins", "", hyp]] if hyp_words else []
        return _scored(ref, hyp, 0, 0, 0, len(hyp_words), ops, len(hyp))
    out = jiwer.process_words(ref, hyp) if hyp_words else None
    if out is None:
        return _scored(ref, hyp, len(ref_words), 0, len(ref_words), 0, [["del", ref, ""]], len(ref))
    ops = [[TAGS[c.type], " ".join(ref_words[c.ref_start_idx:c.ref_end_idx]),
            " ".join(hyp_words[c.hyp_start_idx:c.hyp_end_idx])] for c in out.alignments[0]]
    chars = jiwer.process_characters(ref, hyp)
    return _scored(ref, hyp, len(ref_words), out.substitutions, out.deletions, out.insertions, ops,
                   chars.substitutions + chars.deletions + chars.insertions)


def _scored(ref: str, hyp: str, words: int, sub: int, dele: int, ins: int, ops: list, char_errors: int) -> dict:
    errors = sub + dele + ins
    return {"ref_norm": ref, "hyp_norm": hyp, "ref_words": words, "sub": sub, "del": dele, "ins": ins,
            "errors": errors, "wer": round(errors / words, 4) if words else float(bool(errors)),
            "cer": round(char_errors / len(ref), 4) if ref else float(bool(hyp)), "char_errors": char_errors,
            "ref_chars": len(ref), "ops": ops}


def totals(scored: list[dict]) -> dict:
    """Corpus figures: errors summed over reference words (not a mean of utterance WERs, which lets a
    two-word utterance weigh as much as a sentence) - what jiwer and NeMo report for a set."""
    words = sum(u["ref_words"] for u in scored)
    chars = sum(u["ref_chars"] for u in scored)
    sub, dele, ins = (sum(u[k] for u in scored) for k in ("sub", "del", "ins"))
    return {"wer": round((sub + dele + ins) / words, 4) if words else None,
            "cer": round(sum(u["char_errors"] for u in scored) / chars, 4) if chars else None,
            "ref_words": words, "sub": sub, "del": dele, "ins": ins}


def translation(hypotheses: list[str], references: list[str]) -> dict:
    """Corpus BLEU and chrF of `hypotheses` against one reference each, with sacrebleu's defaults
    (what `sacrebleu REF -i HYP -m bleu chrf` prints), and each sentence's chrF."""
    from sacrebleu.metrics import BLEU, CHRF  # heavy (numpy, lxml): only `inv eval` translates
    bleu, chrf = BLEU(), CHRF()
    b, c = bleu.corpus_score(hypotheses, [references]), chrf.corpus_score(hypotheses, [references])
    sentence = CHRF()
    return {"bleu": round(b.score, 2), "chrf": round(c.score, 2),
            "signature": {"bleu": str(bleu.get_signature()), "chrf": str(chrf.get_signature())},
            "sentence_chrf": [round(sentence.sentence_score(h, [r]).score, 2)
                              for h, r in zip(hypotheses, references, strict=True)]}


def stability(segments: list[tuple[list[str], str]], lang: str | None = "en") -> float | None:
    """The share of words shown in partials that their final kept in place: per segment (the
    partials before a final, and that final), each partial's longest common prefix with the final
    over its length. 1.0: partials only ever grew; None: there were no partials."""
    kept = shown = 0
    for partials, final in segments:
        final_words = normalise(final, lang).split()
        for text in partials:
            words = normalise(text, lang).split()
            prefix = next((i for i, (a, b) in enumerate(zip(words, final_words, strict=False)) if a != b),
                          min(len(words), len(final_words)))
            kept, shown = kept + prefix, shown + len(words)
    return round(kept / shown, 4) if shown else None
