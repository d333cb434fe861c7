"""`inv eval`'s terminal table and HTML report (duplex/evaluation/report.py) from hand-built
documents in the spec's schema: with and without a baseline, a failed utterance, a translate
service, hostile text; and the written page in headless Chromium, read through its DOM."""

from __future__ import annotations

import json
import re

from duplex.evaluation import baseline
from duplex.evaluation.report import page, summary, worst_first, write
from duplex.stack import EvalSpec
from tests.support.browser import chromium
from tests.support.eval_doc import HOSTILE, document


def test_the_table_has_a_row_per_service_and_mode_and_no_baseline_column_without_one():
    lines = summary(document())
    assert lines[0].split() == ["service", "mode", "WER", "CER", "final", "p50", "final", "p95", "stability", "RTF",
                                "failed"]
    batch = next(line for line in lines if line.startswith("asr") and " batch " in line)
    stream = next(line for line in lines if line.startswith("asr") and " stream " in line)
    assert batch.split() == ["asr", "batch", "35.0", "%", "20.0", "%", "-", "-", "-", "0.14", "1"]
    assert stream.split() == ["asr", "stream", "40.0", "%", "20.0", "%", "0.24", "s", "0.41", "s", "0.91", "-", "1"]
    mt = next(line for line in lines if line.startswith("mt"))
    assert mt.split() == ["mt", "translate", "12.30", "40.10", "0.80", "s", "1.40", "s", "1"]
    assert not any("was" in line or "BREACH" in line or "baseline" in line for line in lines)
    # the columns line up: every row of a table as long as its header
    assert len({len(line) for line in lines[:3]}) <= 3 and lines[1].index("batch") == lines[0].index("mode")


def test_with_a_baseline_each_figure_has_its_old_value_and_breaches_and_model_changes_follow():
    lines = summary(document(baseline=True))
    batch = next(line for line in lines if line.startswith("asr") and " batch " in line)
    assert "35.0 % (was 5.0 %)" in batch and "0.14 (was 0.20)" in batch and "- (was -)" in batch
    stream = next(line for line in lines if line.startswith("asr") and " stream " in line)
    assert "0.24 s (was 0.20 s)" in stream and "0.91 (was 0.95)" in stream
    assert "12.30 (was 14.00)" in next(line for line in lines if line.startswith("mt"))
    assert "warning: asr's model changed (baseline: whisper base; now: pocketsphinx en-us)" in lines
    assert "note: mt2: the baseline has no translate figures for it (`inv eval --save` adds them)" in lines
    assert lines[-1] == "BREACH: asr batch WER 35.0% > baseline 5.0% + 2 points; worse: u-failed, u-del"


def test_worst_first_by_errors_then_wer():
    assert [u["id"] for u in worst_first(document()["services"]["asr"]["modes"]["batch"]["utterances"])] == \
        ["u-failed", "u-del", "u-hostile", "u-sub", "u-good"]


def test_every_text_from_users_and_servers_is_escaped():
    text = page(document(baseline=True))
    assert "<script" not in text.lower() and "<i>" not in text and "<b>tag" not in text and "<demo>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "&lt;b&gt;tag&lt;/b&gt;" in text
    assert "failed: asr answered 500 &lt;i&gt;after&lt;/i&gt; 30 s" in text


def test_the_page_marks_errors_orders_worst_first_and_compares_with_the_baseline():
    text = page(document(baseline=True))
    batch = text[text.index('data-service="asr" data-mode="batch"'):]
    batch = batch[:batch.index("</table>")]
    assert re.findall(r'<tr id="[^"]+" data-id="([^"]+)"', batch) == ["u-failed", "u-del", "u-hostile", "u-sub",
                                                                        "u-good"]
    assert '<del class="err sub" title="substituted: cat -&gt; bat">cat</del> <ins class="err sub"' in batch
    assert '<del class="err del" title="deleted: two three">two three</del>' in batch
    assert '<ins class="err ins" title="inserted: &lt;script&gt;alert(1)&lt;/script&gt;">' in batch
    # the "was" column: worse now for the one that was right, not for the one that was worse then
    rows = dict(re.findall(r'data-id="([^"]+)">(.*?)</tr>', batch, re.S))
    assert "(worse now)" in rows["u-sub"] and "(worse now)" not in rows["u-del"] and "(worse now)" not in rows["u-good"]
    assert "<div class=hyp>one</div>" in rows["u-del"]
    # breaches at the top, in red, linking their worst utterances; the model change as a warning
    assert text.index("class=breach") < text.index("<h2>Summary")
    assert '<a href="#u-asr-batch-u-failed">u-failed</a>' in text
    assert "<p class=warn>asr: the model changed since the baseline (baseline: whisper base; now: pocketsphinx" in text
    # summary deltas: WER worse in red, the translation's lag better
    assert '<small class="worse">was 5.0 % +30.0</small>' in text and '<small class="better">was 0.90 s -0.10</small>' in text
    # translation: worst chrF first (the failed one before all), source, reference and hypothesis shown
    mt = text[text.index("<table class=translations"):]
    assert re.findall(r'data-id="([^"]+)"', mt) == ["u-failed", "u-hostile", "u-good"]
    assert "failed: mt timed out" in mt and "source: hello world" in mt and "reference: Hallo Welt" in mt


def test_without_a_baseline_there_is_no_was_column_and_the_page_says_how_to_make_one():
    text = page(document(translate=False))
    assert "<th>was</th>" not in text and "inv eval --save" in text and "translation" not in text
    assert "class=breach" not in text and "class=warn" not in text
    assert text.count("<svg") == 1  # the stream's end of speech -> final; no translation lag without mt


def test_a_baseline_of_other_data_is_said_and_its_utterances_compared_by_id():
    doc = document(baseline=True)
    doc["baseline"]["same_data"] = False
    text = page(doc)
    assert "<th>was</th>" in text and "other data: utterances compared by id" in text
    assert any(line.endswith("made on other data: utterances compared by id") for line in summary(doc))


def test_a_translate_service_without_references_says_so():
    doc = document()
    doc["services"]["mt"].update(bleu=None, chrf=None, lag_s={"p50": None, "p95": None, "n": 0, "values": []},
                                 utterances=[], note="no utterance of the set has a reference translation")
    assert "note: mt: no utterance of the set has a reference translation" in summary(doc)
    text = page(doc)
    assert "<p class=note>mt: no utterance of the set has a reference translation</p>" in text
    assert text.count("<svg") == 1  # no lag histogram without lags


def test_histograms_count_every_value_with_labelled_axes():
    text = page(document())
    assert text.count("<svg") == 2
    final = text[text.index("asr: end of speech to final"):]
    final = final[:final.index("</svg>")]
    counts = [int(n) for n in re.findall(r"<title>[\d.]+-[\d.]+ s: (\d+)</title>", final)]
    assert sum(counts) == 5 and len(counts) == 4
    assert "seconds from the end of speech to the final transcript" in final and ">utterances</text>" in final
    assert "p50 0.24 s" in final and "p95 0.41 s" in final


def test_write_puts_both_files_whole_in_the_folder(tmp_path):
    doc = document(baseline=True)
    data, report = write(doc, tmp_path / "eval")
    assert (data.name, report.name) == ("eval.json", "eval.html")
    assert json.loads(data.read_text()) == doc and report.read_text() == page(doc)
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == ["eval.html", "eval.json"]  # no temp left


def test_the_written_page_in_chromium(tmp_path):
    _, report = write(document(baseline=True), tmp_path)
    with chromium() as driver:
        driver.get(report.as_uri())
        got = driver.execute_script("""
            const batch = document.querySelector('table.utterances[data-service="asr"][data-mode="batch"]');
            const rows = [...batch.querySelectorAll('tr[data-id]')];
            const hostile = batch.querySelector('tr[data-id="u-hostile"]');
            const marks = (sel) => [...batch.querySelectorAll(sel)].map(e => [e.textContent, e.title,
                getComputedStyle(e).textDecorationLine, getComputedStyle(e).backgroundColor]);
            const svg = document.querySelector('figure svg');
            return {order: rows.map(r => r.dataset.id), scripts: document.scripts.length,
                    hostile: hostile.querySelector('.hyp').textContent, inserted: marks('ins.ins'),
                    sub: marks('del.sub').concat(marks('ins.sub')), deleted: marks('del.del'),
                    bars: svg.querySelectorAll('rect').length, box: svg.getBoundingClientRect().width,
                    labels: [...svg.querySelectorAll('text')].map(t => t.textContent),
                    breach: getComputedStyle(document.querySelector('#breaches li')).color};""")
    assert got["order"] == ["u-failed", "u-del", "u-hostile", "u-sub", "u-good"]
    assert got["scripts"] == 0 and got["hostile"] == f"hypothesis: {HOSTILE} hello world"
    assert got["inserted"][0][0] == HOSTILE and got["inserted"][0][1] == f"inserted: {HOSTILE}"
    (struck, _, line, _), (put, _, _, colour) = got["sub"]
    assert (struck, put, line, colour) == ("cat", "bat", "line-through", "rgb(217, 247, 217)")
    assert [d[:3] for d in got["deleted"]] == [  # the failed utterance's words all deleted, first
        ["good morning everyone", "deleted: good morning everyone", "line-through"],
        ["two three", "deleted: two three", "line-through"]]
    assert got["bars"] == 4 and got["box"] > 0
    assert "utterances" in got["labels"] and "seconds from the end of speech to the final transcript" in got["labels"]
    assert got["breach"] == "rgb(187, 0, 0)"


def test_the_report_reads_what_the_baseline_comparison_writes():
    """baseline.compare's real output (not a hand-built baseline block): figures, per-utterance
    answers, model change and breaches land where the page and the table look for them."""
    before = document()
    before["services"]["asr"]["backend"] = "whisper"
    for mode in ("batch", "stream"):
        figures = before["services"]["asr"]["modes"][mode]
        figures["wer"] = 0.05
        for u in figures["utterances"]:
            u.update(hyp=u["ref"], errors=0, wer=0.0)
    doc = baseline.compare(document(), baseline.trimmed(before), EvalSpec(), "eval-baseline.json")
    assert doc["breaches"] and "asr" in doc["baseline"]["model_changed"]
    lines = summary(doc)
    assert "35.0 % (was 5.0 %)" in next(line for line in lines if " batch " in line)
    assert any(line.startswith("warning: asr's model changed (baseline: whisper en-us") for line in lines)
    assert lines[-1].startswith("BREACH: asr stream WER") and "worse: u-failed" in lines[-1]
    text = page(doc)
    rows = dict(re.findall(r'data-id="([^"]+)">(.*?)</tr>', text, re.S))
    assert "(worse now)" in rows["u-sub"] and "<div class=hyp>the cat sat</div>" in rows["u-sub"]
    assert '<a href="#u-asr-batch-u-failed">u-failed</a>' in text
