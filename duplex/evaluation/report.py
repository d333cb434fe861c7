"""`inv eval`'s files and lines: the terminal table, the HTML report and both written to a folder.

Pure (a document in, text out) but for `write`. The page is self-contained: inline CSS and SVG, no
script and nothing fetched, so it opens anywhere, offline, and from the dashboard. Every text in it
is escaped: references come from users' files and hypotheses from servers, any of them hostile.
The document's schema: docs/eval.md.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

from ..run.state import write_text
from ..svgplot import PAD, H, W, frame

JSON, HTML = "eval.json", "eval.html"  # in Layout.eval: the dashboard links the latest
# (figure, label, as a percentage, lower is better) of the summary's columns, per kind of row
ASR_FIGURES = (("wer", "WER", True, True), ("cer", "CER", True, True), ("final_s.p50", "final p50", False, True),
               ("final_s.p95", "final p95", False, True), ("stability", "stability", False, False),
               ("rtf", "RTF", False, True))
MT_FIGURES = (("bleu", "BLEU", False, False), ("chrf", "chrF", False, False), ("lag_s.p50", "lag p50", False, True),
              ("lag_s.p95", "lag p95", False, True))
CSS = ("body{font:14px system-ui,sans-serif;margin:2em;max-width:80em;color:#222}table{border-collapse:collapse}"
       "td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}th{background:#f4f4f4}"
       ".num{text-align:right;white-space:nowrap}.worse{color:#b00}.better{color:#27702f}"
       ".breach{color:#b00;font-weight:600}.warn{color:#8a5a00;background:#fff6d9;padding:2px 6px}"
       "del.err{background:#ffd6d6;color:#900}ins.err{background:#d9f7d9;color:#075d07;text-decoration:none;"
       "border-bottom:2px solid #2a2}.ref,.hyp{color:#555;font-size:12px}.failed{color:#b00}"
       ".ops{font-family:ui-monospace,monospace}small{color:#666}.tag{background:#eef;border-radius:3px;"
       "padding:0 4px;margin-right:2px;font-size:11px}.note{color:#555}")


def write(doc: dict, folder: Path) -> tuple[Path, Path]:
    """eval.json and eval.html in `folder`, each written whole or not at all (a full or read-only
    disk: StateWriteError, one line with its fix)."""
    data, report = folder / JSON, folder / HTML
    write_text(data, json.dumps(doc, indent=2) + "\n")
    write_text(report, page(doc))
    return data, report


# -- figures ---------------------------------------------------------------------------------


def figure(block: dict | None, key: str):
    """`block[key]`, a dotted key reaching into a nested dict (`final_s.p50`); None when absent."""
    for part in key.split("."):
        if not isinstance(block, dict):
            return None
        block = block.get(part)
    return block


def shown(value, percent: bool, key: str = "") -> str:
    if value is None:
        return "-"
    if percent:
        return f"{value * 100:.1f} %"
    if key.endswith(("p50", "p95")):
        return f"{value:.2f} s"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def worse(now, was, lower_better: bool) -> bool:
    return now is not None and was is not None and (now > was if lower_better else now < was)


def rows(doc: dict):
    """(service, mode, figures, the baseline's figures or None, the figure table) for each service x
    mode: asr services once per mode, translate services once (mode "translate")."""
    for name, svc in doc["services"].items():
        if svc.get("kind") == "translate":
            yield name, "translate", svc, baseline_of(doc, name, None), MT_FIGURES
        else:
            for mode, figures in svc.get("modes", {}).items():
                yield name, mode, figures, baseline_of(doc, name, mode), ASR_FIGURES


def baseline_of(doc: dict, name: str, mode: str | None) -> dict | None:
    """The baseline's figures for a service x mode (a translate service's sit on the service itself)."""
    svc = ((doc.get("baseline") or {}).get("services") or {}).get(name)
    if svc is None or mode is None:
        return svc
    return (svc.get("modes") or {}).get(mode)


def tables(doc: dict):
    """(header, figure table, rows) for the asr rows, then the translate rows; none without rows."""
    for figures_of in (ASR_FIGURES, MT_FIGURES):
        table = [r for r in rows(doc) if r[4] is figures_of]
        if table:
            yield ["service", "mode", *(label for _, label, _, _ in figures_of), "failed"], figures_of, table


def failed(figures: dict) -> int:
    return sum(1 for u in figures.get("utterances", []) if u.get("hyp") is None)


def notes(doc: dict) -> list[str]:
    """What the comparison could not do (a service or mode not in the baseline, other data) and a
    service's own note (a translate service with no reference translation to score against)."""
    return [*((doc.get("baseline") or {}).get("notes") or []),
            *(f"{name}: {svc['note']}" for name, svc in doc["services"].items() if svc.get("note"))]


def model_changed(doc: dict) -> dict:
    """{service: "baseline: ...; now: ..."} where the model differs from the baseline's (kept in the
    baseline's block; one at the top of the document is read too)."""
    return {**(doc.get("model_changed") or {}), **((doc.get("baseline") or {}).get("model_changed") or {})}


def headline(doc: dict) -> dict:
    """What the dashboard shows beside its link to the report: when, which commit, and each
    service's headline figures (asr: WER per mode; translate: BLEU and chrF), the breaches' count."""
    services = {}
    for name, mode, figures, _, _ in rows(doc):
        if mode == "translate":
            services[name] = {"bleu": figures.get("bleu"), "chrf": figures.get("chrf")}
        else:
            services.setdefault(name, {"wer": {}})["wer"][mode] = figures.get("wer")
    return {"made": doc.get("made"), "commit": doc.get("commit"), "stack": doc.get("stack"),
            "services": services, "breaches": len(doc.get("breaches") or [])}


# -- the terminal ------------------------------------------------------------------------------


def summary(doc: dict) -> list[str]:
    """The terminal table: one row per service x mode (asr: WER, CER, end of speech -> final p50/p95,
    stability, RTF; translate: BLEU, chrF, lag p50/p95), each figure with the baseline's beside it
    when there is one; then a line per model change and per breach."""
    lines: list[str] = []
    for head, figures_of, table in tables(doc):
        body = []
        for name, mode, figures, base, _ in table:
            cells = [name, mode]
            for key, _, percent, _ in figures_of:
                cell = shown(figure(figures, key), percent, key)
                if base is not None:
                    cell += f" (was {shown(figure(base, key), percent, key)})"
                cells.append(cell)
            cells.append(str(failed(figures)))
            body.append(cells)
        widths = [max(len(r[i]) for r in (head, *body)) for i in range(len(head))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in (head, *body)]
    base = doc.get("baseline")
    if base:
        lines.append(f"baseline: {base.get('path')} ({base.get('made')}, {base.get('commit')})"
                     + ("" if base.get("same_data", True) else "; made on other data: utterances compared by id"))
    lines += [f"note: {note}" for note in notes(doc)]
    lines += [f"warning: {name}'s model changed ({why})" for name, why in model_changed(doc).items()]
    lines += [f"BREACH: {breach['line']}" for breach in doc.get("breaches") or []]  # its line names the worst
    return lines


# -- the page ----------------------------------------------------------------------------------


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def page(doc: dict) -> str:
    parts = [f"<!doctype html><meta charset=utf-8><title>duplex eval: {esc(doc.get('stack'))}</title>",
             f"<style>{CSS}</style>", f"<h1>Evaluation of {esc(doc.get('stack'))}</h1>", _header(doc)]
    breaches = doc.get("breaches") or []
    if breaches:
        parts.append("<ul id=breaches>" + "".join(
            f"<li class=breach>{esc(b.get('line'))}" + ("; worst: " + ", ".join(
                f'<a href="#{esc(_anchor(b.get("service"), b.get("mode"), w))}">{esc(w)}</a>'
                for w in b.get("worst") or []) if b.get("worst") else "") + "</li>" for b in breaches) + "</ul>")
    parts += [f"<p class=warn>{esc(name)}: the model changed since the baseline ({esc(why)})</p>"
              for name, why in model_changed(doc).items()]
    parts += [f"<p class=note>{esc(note)}</p>" for note in notes(doc)]
    parts.append("<h2>Summary</h2>")
    parts += _summary_tables(doc)
    plots = _histograms(doc)
    if plots:
        parts += ["<h2>Latency</h2>", *plots]
    for name, mode, figures, base, _ in rows(doc):
        per = (base or {}).get("per_utterance") or {}  # by id, on the same data or not
        if mode == "translate":
            parts.append(f"<h2>{esc(name)}: translation</h2>" + _translations(name, figures, per))
        else:
            parts.append(f"<h2>{esc(name)} {esc(mode)}: utterances, worst first</h2>"
                         + _utterances(name, mode, figures, per))
    return "\n".join(parts) + "\n"


def _header(doc: dict) -> str:
    data, machine = doc.get("data") or {}, doc.get("machine") or {}
    lines = [f"commit {esc(doc.get('commit'))}{' (with uncommitted changes)' if doc.get('dirty') else ''}, "
             f"made {esc(doc.get('made'))}",
             f"data: {esc(data.get('source') or data.get('name'))} ({esc(data.get('utterances'))} utterances, "
             f"{esc(data.get('audio_s'))} s of audio; {esc(data.get('path'))}, fingerprint "
             f"{esc(str(data.get('fingerprint') or '')[:12])})",
             f"machine: {esc(machine.get('cpus'))} CPUs, {esc(machine.get('system'))}"]
    for name, svc in doc["services"].items():
        what = (svc.get("backend"), svc.get("model"), svc.get("revision") and f"revision {svc['revision']}",
                svc.get("device"), svc.get("precision"), svc.get("via") and f"via {svc['via']}", svc.get("target") and f"to {svc['target']}")
        lines.append(f"{esc(name)} ({esc(svc.get('kind'))}): {esc(' '.join(str(w) for w in what if w))}")
    base = doc.get("baseline")
    if base:
        same = "same data" if base.get("same_data", True) else \
            "<span class=warn>other data: utterances compared by id</span>"
        lines.append(f"baseline: {esc(base.get('path'))}, made {esc(base.get('made'))} at commit "
                     f"{esc(base.get('commit'))}; {same}")
    else:
        lines.append("no baseline: <code>inv eval --save</code> makes one")
    return "<p id=about>" + "<br>".join(lines) + "</p>"


def _summary_tables(doc: dict) -> list[str]:
    out = []
    for head, figures_of, table in tables(doc):
        cells = []
        for name, mode, figures, base, _ in table:
            row = [f"<td>{esc(name)}</td><td>{esc(mode)}</td>"]
            for key, _, percent, lower in figures_of:
                now, was = figure(figures, key), figure(base, key)
                cell = esc(shown(now, percent, key))
                if base is not None:
                    cls = "worse" if worse(now, was, lower) else "better" if worse(was, now, lower) else ""
                    delta = "" if now is None or was is None else \
                        f" {(now - was) * (100 if percent else 1):+.{1 if percent else 2}f}"
                    cell += f'<br><small class="{cls}">was {esc(shown(was, percent, key))}{delta}</small>'
                row.append(f"<td class=num>{cell}</td>")
            count = failed(figures)
            row.append(f"<td class=\"num{' worse' if count else ''}\">{count}</td>")
            cells.append("<tr>" + "".join(row) + "</tr>")
        out.append("<table class=summary><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"
                   + "".join(cells) + "</table>")
    return out


def _histograms(doc: dict) -> list[str]:
    out = []
    for name, svc in doc["services"].items():
        if svc.get("kind") == "translate":
            lag = svc.get("lag_s") or {}
            if lag.get("values"):
                out.append(histogram(f"{name}: translation lag", "seconds from the final to its translation", lag))
        else:
            final = ((svc.get("modes") or {}).get("stream") or {}).get("final_s") or {}
            if final.get("values"):
                out.append(histogram(f"{name}: end of speech to final (stream)",
                                     "seconds from the end of speech to the final transcript", final))
    return out


def histogram(title: str, xlabel: str, spread: dict) -> str:
    """Counts of `spread["values"]` in 4 to 12 equal bins, with p50 and p95 marked. The bins start at
    0 unless every value sits far from it (then at the least, so the bars are not squeezed right)."""
    values = [v for v in spread["values"] if v is not None]
    bins = max(4, min(12, math.ceil(math.sqrt(len(values)))))
    least, most = min(values), max(values)
    low = 0.0 if least < most / 2 else least
    width = max(most - low, 1e-3) * 1.02 / bins  # the largest inside the last bin, not on its edge
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int((v - low) / width)))] += 1
    top = 4 * math.ceil(max(counts) / 4)  # whole counts at each quarter tick
    span = (W - 2 * PAD) / bins

    def y(count: float) -> float:
        return H - PAD - count / top * (H - 2 * PAD)
    out = [f"<figure><figcaption>{esc(title)} ({len(values)} utterances)</figcaption>",
           *frame(title, xlabel, "utterances", top, "{:.0f}")]
    for i, count in enumerate(counts):
        out.append(f'<rect class=bar x="{PAD + i * span + 1:.1f}" y="{y(count):.1f}" width="{span - 2:.1f}" '
                   f'height="{H - PAD - y(count):.1f}" fill="#1f77b4"><title>{low + i * width:.2f}-'
                   f'{low + (i + 1) * width:.2f} s: {count}</title></rect>')
    for i in range(0, bins + 1, 2 if bins > 6 else 1):
        out.append(f'<text x="{PAD + i * span:.0f}" y="{H - PAD + 16}" text-anchor="middle">'
                   f'{low + i * width:.2f}</text>')
    for q, colour, anchor, dx, dy in (("p50", "#2ca02c", "start", 3, 0), ("p95", "#d62728", "end", -3, 14)):
        if spread.get(q) is not None:
            x = PAD + (spread[q] - low) / width * span
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{PAD}" y2="{H - PAD}" stroke="{colour}" '
                       f'stroke-dasharray="4 3"/><text x="{x + dx:.0f}" y="{PAD - 4 + dy}" text-anchor="{anchor}" '
                       f'fill="{colour}">{q} {spread[q]:.2f} s</text>')
    return "\n".join(out) + "</svg></figure>"


def _anchor(name, mode, ident) -> str:
    return f"u-{name}-{mode}-{ident}"


def errors_of(u: dict) -> int:
    """Errors of an utterance: the document's count, else its ops' words (a failed one: all its words)."""
    if u.get("errors") is not None:
        return u["errors"]
    return sum(max(len(r.split()), len(h.split())) for tag, r, h in u.get("ops") or [] if tag != "equal")


def worst_first(utterances: list[dict]) -> list[dict]:
    return sorted(utterances, key=lambda u: (-errors_of(u), -(u.get("wer") or 0.0), str(u.get("id"))))


def marked(ops: list) -> str:
    """The alignment with its errors marked: a substitution's reference words struck and the
    hypothesis's highlighted, a deletion struck, an insertion highlighted; each has a class and a title."""
    out = []
    for tag, ref, hyp in ops:
        if tag == "equal":
            out.append(esc(ref))
        elif tag == "sub":
            title = esc(f"substituted: {ref} -> {hyp}")
            out.append(f'<del class="err sub" title="{title}">{esc(ref)}</del> '
                       f'<ins class="err sub" title="{title}">{esc(hyp)}</ins>')
        elif tag == "del":
            out.append(f'<del class="err del" title="{esc(f"deleted: {ref}")}">{esc(ref)}</del>')
        else:
            out.append(f'<ins class="err ins" title="{esc(f"inserted: {hyp}")}">{esc(hyp)}</ins>')
    return " ".join(out)


def _utterances(name: str, mode: str, figures: dict, per: dict) -> str:
    rows = []
    for u in worst_first(figures.get("utterances") or []):
        text = (f"<div class=ref>reference: {esc(u.get('ref'))}</div>{_said(u, 'hypothesis')}"
                f"<div class=ops>{marked(u.get('ops') or [])}</div>")
        cells = [f"<td>{esc(u.get('id'))}<br>{_tags(u)}</td>",
                 f"<td class=num>{esc(shown(u.get('wer'), True))}<br><small>{errors_of(u)} of "
                 f"{esc(u.get('ref_words'))}</small></td>", f"<td>{text}</td>"]
        rows.append(_row(name, mode, u, cells, per, "wer", percent=True, lower=True))
    return _table(f'class=utterances data-service="{esc(name)}" data-mode="{esc(mode)}"',
                  ["id", "WER", "reference / hypothesis (normalised, errors marked)"], rows, per)


def _translations(name: str, svc: dict, per: dict) -> str:
    rows = []
    for u in sorted(svc.get("utterances") or [],
                    key=lambda u: (u.get("hyp") is not None, u.get("chrf") or 0.0, str(u.get("id")))):
        cells = [f"<td>{esc(u.get('id'))}<br>{_tags(u)}</td>", f"<td class=num>{esc(shown(u.get('chrf'), False))}</td>",
                 f"<td class=num>{esc(shown(u.get('lag_s'), False, 'p50'))}</td>",
                 f"<td><div class=ref>source: {esc(u.get('source'))}</div>"
                 f"<div class=ref>reference: {esc(u.get('ref'))}</div>{_said(u, 'translation')}</td>"]
        rows.append(_row(name, "translate", u, cells, per, "chrf", percent=False, lower=False))
    return _table(f'class=translations data-service="{esc(name)}"',
                  ["id", "chrF", "lag", "source (what asr heard) / reference / translation"], rows, per)


def _tags(u: dict) -> str:
    return "".join(f"<span class=tag>{esc(t)}</span>" for t in u.get("tags") or [])


def _said(u: dict, what: str) -> str:
    """What the service answered, or why it did not."""
    if u.get("hyp") is None:
        return f'<div class="hyp failed">failed: {esc(u.get("error") or "no answer")}</div>'
    return f"<div class=hyp>{what}: {esc(u['hyp'])}</div>"


def _row(name: str, mode: str, u: dict, cells: list[str], per: dict, key: str, *, percent: bool,
         lower: bool) -> str:
    """An utterance's row, with the baseline's figure and answer for it when there is a baseline,
    marked when the utterance got worse (`lower`: a lower figure is better, as WER's)."""
    if per:
        was = per.get(u.get("id"))
        if was is None:
            cells.append("<td>-</td>")
        else:
            cls = " class=worse" if worse(u.get(key), was.get(key), lower) else ""
            cells.append(f"<td{cls}>{esc(shown(was.get(key), percent))}{' (worse now)' if cls else ''}"
                         f"<div class=hyp>{esc(was.get('hyp'))}</div></td>")
    return f'<tr id="{esc(_anchor(name, mode, u.get("id")))}" data-id="{esc(u.get("id"))}">' + "".join(cells) + "</tr>"


def _table(attrs: str, head: list[str], rows: list[str], per: dict) -> str:
    head = [*head, *(["was"] if per else [])]
    return "\n".join([f"<table {attrs}><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>", *rows]) \
        + "</table>"
