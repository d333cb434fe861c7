"""The dashboard's API in process (starlette's test client over the real app): the token flow, the
log filter, refused actions, an action's answer. The real-run tests are tests/run/test_dashboard.py."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from duplex.dashboard.feeds import Run
from duplex.dashboard.logbook import LogBook
from duplex.dashboard.server import make_app
from duplex.errors import RunError
from duplex.evaluation.report import write
from duplex.layout import Layout
from tests.support.eval_doc import document

TOKEN = "t0ken-of-this-run-0123456789"
PLANNED = {"stack": "demo", "native": True, "order": ["asr"], "left_out": {"moshi": "not selected"},
           "services": {"asr": {"mode": "native", "url": "http://127.0.0.1:9", "depends_on": {}, "gpu": None,
                                "health": {"kind": "http", "url": "http://127.0.0.1:9/health"}}}}


@pytest.fixture
def client(tmp_path):
    book = LogBook()
    book.add("asr", ["INFO: ready", "ERROR: boom", "INFO: request 1"])
    run = Run(tmp_path, PLANNED, book)
    run.sample()
    done = []

    def act(what, name):
        if what == "start":
            raise RunError(f"{name} needs x, which is not running (token=hunter2secret)", fix="start x first")
        done.append((what, name))
        return {"ok": True, "message": f"{name} {what}ed"}
    client = TestClient(make_app(TOKEN, run, book, act), base_url="http://127.0.0.1:7980")
    client.done = done
    return client


def test_the_link_serves_the_page_and_no_cookie_carries_the_token(client):
    assert client.get("/").status_code == 401
    assert client.get("/api/services").status_code == 401
    assert client.get("/?t=wrong").status_code == 401
    page = client.get(f"/?t={TOKEN}", follow_redirects=False)
    assert page.status_code == 200 and "set-cookie" not in page.headers
    assert TOKEN not in page.text  # the script takes it from the address, into sessionStorage
    assert page.headers["x-frame-options"] == "DENY" and page.headers["referrer-policy"] == "no-referrer"
    client.cookies.set("duplex_dashboard", TOKEN)  # the old cookie opens nothing
    assert client.get("/api/services").status_code == 401
    head = {"x-duplex-token": TOKEN}
    assert client.get("/", headers=head).status_code == 200
    rows = client.get("/api/services", headers=head).json()["services"]
    assert [(r["name"], r["state"]) for r in rows] == [("asr", "stopped"), ("moshi", "left out")]


def test_logs_filter_by_text_or_regex_and_a_bad_regex_is_a_400(client):
    head = {"x-duplex-token": TOKEN}
    lines = client.get("/api/logs", headers=head).json()["lines"]
    assert [(l["text"], l["level"]) for l in lines][:2] == [("INFO: ready", "info"), ("ERROR: boom", "error")]
    assert [l["text"] for l in client.get("/api/logs?q=boom", headers=head).json()["lines"]] == ["ERROR: boom"]
    got = client.get("/api/logs", params={"q": r"request \d", "regex": "1"}, headers=head).json()["lines"]
    assert [l["text"] for l in got] == ["INFO: request 1"]
    assert client.get("/api/logs?q=(&regex=1", headers=head).status_code == 400
    text = client.get("/api/logs?download=1&service=asr", headers=head)
    assert text.text == "INFO: ready\nERROR: boom\nINFO: request 1\n" and "attachment" in text.headers["content-disposition"]


def test_actions_need_a_post_with_the_header_from_no_other_origin(client):
    client.cookies.set("duplex_dashboard", TOKEN)
    assert client.post("/api/services/asr/restart").status_code == 403  # the cookie alone: a forged form
    assert client.get("/api/services/asr/restart", headers={"x-duplex-token": TOKEN}).status_code == 403
    assert client.post("/api/services/asr/restart", headers={"x-duplex-token": TOKEN,
                       "origin": "http://evil.example"}).status_code == 403
    assert client.post("/api/services/nope/restart", headers={"x-duplex-token": TOKEN}).status_code == 404
    assert client.post("/api/services/asr/explode", headers={"x-duplex-token": TOKEN}).status_code == 404
    assert client.done == []
    ok = client.post("/api/services/asr/restart", headers={"x-duplex-token": TOKEN,
                     "origin": "http://127.0.0.1:7980"})
    assert ok.json() == {"ok": True, "message": "asr restarted"} and client.done == [("restart", "asr")]
    refused = client.post("/api/services/asr/start", headers={"x-duplex-token": TOKEN})
    assert refused.status_code == 409 and "start x first" in refused.json()["error"]
    assert "hunter2secret" not in refused.text  # errors pass the secret masking


def test_the_eval_summary_follows_the_files_and_survives_an_unreadable_one(client, tmp_path):
    head = {"x-duplex-token": TOKEN}
    folder = Layout(tmp_path).eval
    write(document(translate=False), folder)
    assert client.get("/api/services", headers=head).json()["eval"]["services"] == \
        {"asr": {"wer": {"batch": 0.35, "stream": 0.4}}}
    doc = document(translate=False)
    doc["services"]["asr"]["modes"]["batch"]["wer"] = 0.1
    write(doc, folder)  # a new run of `inv eval`: read again
    assert client.get("/api/services", headers=head).json()["eval"]["services"]["asr"]["wer"]["batch"] == 0.1
    (folder / "eval.json").write_text("{not json")
    got = client.get("/api/services", headers=head).json()["eval"]
    assert got["services"] == {} and "eval.json is missing or unreadable" in got["error"] and got["made"]
    assert client.get("/api/eval.html", headers=head).status_code == 200  # the page itself still opens
