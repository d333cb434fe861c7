"""The baseline `inv eval --save` writes beside the stack (committed, like models.lock) and what
`inv eval --check` judges against it (pure, but for reading and writing the file): each figure may
get worse by its budget from stack.toml's [eval], no more."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import DuplexError
from ..run.state import write_text
from ..stack import EvalSpec
from ..textfile import TextFileError, read_text

KEEP = {"asr": ("id", "hyp", "wer", "errors", "ref_words"), "translate": ("id", "hyp", "chrf", "lag_s")}
WORST = 5  # utterances named per breach


class BaselineError(DuplexError):
    pass


def trimmed(doc: dict) -> dict:
    """What a baseline keeps of a document: every figure and each utterance's hypothesis and errors,
    not the alignments or latency samples (a small file whose diff in review says what changed)."""
    services = {}
    for name, svc in doc["services"].items():
        keep = KEEP[svc["kind"]]
        if svc["kind"] == "asr":
            modes = {mode: {**{k: v for k, v in fig.items() if k != "utterances"},
                            **{k: _no_values(fig[k]) for k in ("final_s", "first_partial_s") if k in fig},
                            "utterances": [{k: u.get(k) for k in keep} for u in fig["utterances"]]}
                     for mode, fig in svc["modes"].items()}
            services[name] = {**{k: v for k, v in svc.items() if k != "modes"}, "modes": modes}
        else:
            services[name] = {**{k: v for k, v in svc.items() if k not in ("utterances", "lag_s")},
                              "lag_s": _no_values(svc.get("lag_s") or {}),
                              "utterances": [{k: u.get(k) for k in keep} for u in svc["utterances"]]}
    return {k: v for k, v in doc.items() if k not in ("services", "baseline", "breaches")} | {"services": services}


def _no_values(spread: dict) -> dict:
    return {k: v for k, v in spread.items() if k != "values"}


def save(doc: dict, path: Path) -> Path:
    write_text(path, json.dumps(trimmed(doc), indent=1, ensure_ascii=False) + "\n")
    return path


def load(path: Path) -> dict:
    try:
        base = json.loads(read_text(path, what="evaluation baseline"))
    except FileNotFoundError:
        raise BaselineError(f"no baseline at {path} to check against",
                            fix="make one from a run you trust, then commit it: `inv eval --save`") from None
    except (OSError, TextFileError, ValueError) as exc:
        raise BaselineError(f"{path}: cannot read the baseline ({exc})",
                            fix=f"restore it from git (git checkout -- {path.name}) or make it again: inv eval --save") from exc
    if not isinstance(base, dict) or base.get("version") != 1 or not isinstance(base.get("services"), dict):
        raise BaselineError(f"{path} is not a baseline duplex wrote (version 1)",
                            fix="make it again: inv eval --save")
    return base


def compare(doc: dict, base: dict, budget: EvalSpec, path: str) -> dict:
    """`doc` with `baseline` (the baseline's figures beside each of doc's, per utterance too),
    `model_changed` and `breaches` (one per figure worse than its budget allows) filled in."""
    shown, changed, breaches, notes = {}, {}, [], []
    for name, svc in doc["services"].items():
        old = base["services"].get(name)
        if old is None or old.get("kind") != svc["kind"]:
            notes.append(f"{name}: the baseline has no {svc['kind']} figures for it (`inv eval --save` adds them)")
            continue
        made_by = _made_by(old), _made_by(svc)
        if made_by[0] != made_by[1]:
            changed[name] = f"baseline: {made_by[0]}; now: {made_by[1]}"
        if svc["kind"] == "asr":
            shown[name] = {"modes": {}}
            for mode, fig in svc["modes"].items():
                was = old["modes"].get(mode)
                if was is None:
                    notes.append(f"{name} {mode}: not in the baseline")
                    continue
                shown[name]["modes"][mode] = _beside(was)
                breaches += _asr_breaches(name, mode, fig, was, budget)
        else:
            shown[name] = _beside(old)
            breaches += _translate_breaches(name, svc, old, budget)
    notes += [f"{name}: in the baseline but not evaluated now" for name in base["services"] if name not in doc["services"]]
    same = base.get("data", {}).get("fingerprint") == doc["data"]["fingerprint"]
    if not same:
        notes.append(f"the baseline was made on other data ({base.get('data', {}).get('source')}): utterances are "
                     "compared by id")
    return {**doc, "baseline": {"path": path, "made": base.get("made"), "commit": base.get("commit"),
                                "same_data": same, "services": shown, "model_changed": changed, "notes": notes},
            "breaches": breaches}


def _made_by(svc: dict) -> str:
    return " ".join(str(svc.get(k)) for k in ("backend", "model", "revision", "precision") if svc.get(k)) or "unknown"


def _beside(fig: dict) -> dict:
    return {**{k: v for k, v in fig.items() if k != "utterances"},
            "per_utterance": {u["id"]: {k: v for k, v in u.items() if k != "id"} for u in fig.get("utterances", [])}}


def _asr_breaches(name: str, mode: str, fig: dict, was: dict, budget: EvalSpec) -> list[dict]:
    found = []
    for figure, allowed, label in (("wer", budget.wer, "WER"), ("cer", budget.cer, "CER")):
        now, then = fig.get(figure), was.get(figure)
        if allowed is None or now is None or then is None or now <= then + allowed + 1e-9:
            continue
        worst = _worst(fig["utterances"], was.get("utterances", []), "errors")
        found.append(_breach(name, mode, figure, then, now, allowed,
                             f"{name} {mode} {label} {now:.1%} > baseline {then:.1%} + {allowed * 100:g} points", worst))
    now, then = (fig.get("final_s") or {}).get("p95"), (was.get("final_s") or {}).get("p95")
    if now is not None and then is not None and now > then + budget.final_p95 + 1e-9:
        worst = _worst(fig["utterances"], was.get("utterances", []), "final_s")
        found.append(_breach(name, mode, "final_p95", then, now, budget.final_p95,
                             f"{name} {mode} end of speech -> final p95 {now:.2f} s > baseline {then:.2f} s "
                             f"+ {budget.final_p95:g} s", worst))
    return found


def _translate_breaches(name: str, svc: dict, old: dict, budget: EvalSpec) -> list[dict]:
    found = []
    for figure, allowed, label in (("bleu", budget.bleu, "BLEU"), ("chrf", budget.chrf, "chrF")):
        now, then = svc.get(figure), old.get(figure)
        if now is None or then is None or now >= then - allowed - 1e-9:
            continue
        worst = _worst(svc["utterances"], old.get("utterances", []), "chrf", lower_is_worse=True)
        found.append(_breach(name, "translate", figure, then, now, allowed,
                             f"{name} {label} {now:.1f} < baseline {then:.1f} - {allowed:g}", worst))
    now, then = (svc.get("lag_s") or {}).get("p95"), (old.get("lag_s") or {}).get("p95")
    if now is not None and then is not None and now > then + budget.lag_p95 + 1e-9:
        worst = _worst(svc["utterances"], old.get("utterances", []), "lag_s")
        found.append(_breach(name, "translate", "lag_p95", then, now, budget.lag_p95,
                             f"{name} end of speech -> translation p95 {now:.2f} s > baseline {then:.2f} s "
                             f"+ {budget.lag_p95:g} s", worst))
    return found


def _worst(now: list[dict], then: list[dict], key: str, lower_is_worse: bool = False) -> list[str]:
    """The utterances that got most worse on `key` (those in both runs), worst first."""
    before = {u["id"]: u.get(key) for u in then}
    sign = -1 if lower_is_worse else 1
    deltas = [(sign * ((u.get(key) or 0) - (before[u["id"]] or 0)), u["id"]) for u in now
              if u["id"] in before and (u.get(key) is not None or u.get("error"))]
    return [ident for delta, ident in sorted(deltas, key=lambda d: -d[0]) if delta > 0][:WORST]


def _breach(service: str, mode: str, figure: str, then: float, now: float, budget: float, line: str,
            worst: list[str]) -> dict:
    return {"service": service, "mode": mode, "figure": figure, "baseline": then, "now": now, "budget": budget,
            "line": line + (f"; worse: {', '.join(worst)}" if worst else ""), "worst": worst}
