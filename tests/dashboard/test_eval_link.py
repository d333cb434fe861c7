"""The real dashboard process and the project's latest `inv eval` report (docs/dashboard.md,
"Evaluation report"): no link while there is none; once `.duplex/eval/` holds one, the page links it
with its time and headline figures, the API carries the same summary, and the report itself is
served only with the run's token, then opened by the page's link in Chromium."""

from __future__ import annotations

import httpx

from duplex.evaluation.report import write
from duplex.layout import Layout
from tests.support.board import board, planned
from tests.support.browser import chromium, wait_for
from tests.support.eval_doc import HOSTILE, document


def test_the_page_links_the_latest_report_only_with_the_token(tmp_path):
    with board(tmp_path, planned({"asr": {}})) as b, chromium() as driver:
        assert b.get("/api/services").json()["eval"] is None
        assert b.get("/api/eval.html").status_code == 404
        driver.get(b.link)
        wait_for(lambda: driver.execute_script("return document.getElementById('stack').textContent") == "demo",
                 20, "the page's first state", driver)
        assert driver.execute_script("const e = document.getElementById('eval'); return [e.hidden, e.textContent]") \
            == [True, ""]

        write(document(baseline=True), Layout(tmp_path).eval)
        summary = b.get("/api/services").json()["eval"]
        assert summary == {"made": "2026-12-05T05:10:00Z", "commit": "43bcdf6", "stack": "duplex <demo>",
                           "services": {"asr": {"wer": {"batch": 0.35, "stream": 0.4}},
                                        "mt": {"bleu": 12.3, "chrf": 40.1}}, "breaches": 1}
        # the report: the token's header, as every API call; not the link's query, not nothing
        assert httpx.get(f"{b.base}/api/eval.html", timeout=10).status_code == 401
        assert httpx.get(f"{b.base}/api/eval.html?t={b.token}", timeout=10).status_code == 401
        assert b.get("/api/eval.html", headers={"x-duplex-token": "wrong"}).status_code == 401
        served = b.get("/api/eval.html")
        assert served.status_code == 200 and served.headers["content-type"].startswith("text/html")
        assert "sandbox" in served.headers["content-security-policy"] and "&lt;script&gt;" in served.text

        text = wait_for(lambda: driver.execute_script(
            "const e = document.getElementById('eval'); return !e.hidden && e.textContent"), 20, "the link", driver)
        assert text == ("evaluation report (2026-12-05T05:10:00Z, 43bcdf6): asr WER 35.0 % batch / 40.0 % stream; "
                        "mt BLEU 12.3, chrF 40.1 · 1 over the baseline's budget")
        dashboard = driver.current_window_handle
        driver.find_element("id", "eval-link").click()
        wait_for(lambda: len(driver.window_handles) == 2, 20, "the report's tab", driver)
        driver.switch_to.window(next(h for h in driver.window_handles if h != dashboard))
        report = wait_for(lambda: driver.execute_script(
            "const t = document.querySelector('tr[data-id=\"u-hostile\"] .hyp');"
            "return t && [document.title, t.textContent, document.scripts.length]"), 20, "the report", driver)
        assert report == ["duplex eval: duplex <demo>", f"hypothesis: {HOSTILE} hello world", 0]
        driver.close()
        driver.switch_to.window(dashboard)

        for path in (Layout(tmp_path).eval / "eval.html", Layout(tmp_path).eval / "eval.json"):
            path.unlink()
        assert b.get("/api/services").json()["eval"] is None
        wait_for(lambda: driver.execute_script("return document.getElementById('eval').hidden"), 20,
                 "the link gone", driver)
