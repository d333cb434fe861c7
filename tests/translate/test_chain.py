"""The translation stack end to end, offline from the shared cache, natively and in containers:
a flite phrase → the /translate page's microphone (headless Chromium) → asr (faster-whisper base)
→ each final over the frontend's relay → mt (a tiny random Qwen2 on transformers, CPU) → the page.

The translator's weights are random, so its words are noise: what is tested is the path, the
shapes, the timings and the refusals, which duplex and the servers own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import wave
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.conftest import ROOT
from tests.support.browser import chromium, wait_for
from tests.support.speech import PHRASES, word_error_rate
from tests.support.tiny_models import QWEN_REPO
from tests.support.tools import tool
from tests.translate.conftest import STACK, WHISPER_REPO

pytestmark = [pytest.mark.docker, pytest.mark.slow]
REFUSALS = [  # (body, status, error): the servers' one error shape (servers/errors.py)
    ({"text": ""}, 400, "empty_text"),
    ({"text": "x" * 5000}, 413, "too_large"),
    ({"text": "hello", "target": "not a language"}, 400, "bad_language"),
    ({"words": "hello"}, 400, "bad_request"),
    ("not json", 400, "bad_request"),
]


def _mt_serves(chain, mode: str) -> dict:
    mt = chain.url("mt")
    health = httpx.get(f"{mt}/health", timeout=10).json()
    assert health["ready"] and health["status"] == "ready", health
    assert health["model"] == QWEN_REPO and "/snapshots/" in health["model_path"]
    assert (health["architecture"], health["device"], health["precision"]) == ("Qwen2ForCausalLM", "cpu", "float32")
    assert health["load_s"] > 0 and health["max_new_tokens"] == 16
    answer = httpx.post(f"{mt}/translate", json={"text": PHRASES[1], "source": "en", "target": "fr"}, timeout=60)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["source"], body["target"], body["model"], body["text"]) == ("en", "fr", QWEN_REPO, PHRASES[1])
    assert isinstance(body["translation"], str) and body["translation"]
    assert 0 < body["output_tokens"] <= 16 and body["prompt_tokens"] > len(PHRASES[1].split())
    assert 0 < body["generate_s"] <= body["processing_s"] and body["tokens_per_s"] > 0
    again = httpx.post(f"{mt}/translate", json={"text": PHRASES[1], "source": "en", "target": "fr"}, timeout=60)
    assert again.json()["translation"] == body["translation"]  # greedy: the same words every time
    for payload, status, error in REFUSALS:
        kwargs = {"json": payload} if isinstance(payload, dict) else {"content": payload}
        refused = httpx.post(f"{mt}/translate", timeout=30, **kwargs)
        assert (refused.status_code, refused.json()["error"]) == (status, error), (payload, refused.text)
        assert refused.json()["detail"]
    # a sequence of finals, as the streaming ASR emits them: partials skipped, each final answered in order
    with connect(f"ws://127.0.0.1:{mt.rsplit(':', 1)[1]}/ws/translate?target=es", open_timeout=10) as ws:
        for event in ({"type": "partial", "text": "hel"}, {"type": "final", "id": 1, "text": PHRASES[2]},
                      {"type": "final", "id": 2, "text": ""}, {"type": "final", "id": 3, "text": PHRASES[3]}):
            ws.send(json.dumps(event))
        ws.send("not json")
        got = [json.loads(ws.recv(timeout=60)) for _ in range(4)]
    assert [(g["type"], g["id"]) for g in got] == [("translation", 1), ("error", 2), ("translation", 3),
                                                   ("error", None)], got
    assert got[0]["target"] == "es" and got[0]["text"] == PHRASES[2] and got[1]["error"] == "empty_text"
    assert got[0]["answered_s"] >= got[0]["processing_s"] > 0
    metrics = httpx.get(f"{mt}/metrics", timeout=10).text
    for line in ('mt_requests_total{model="%s",route="translate",status="200"} 2.0' % QWEN_REPO,
                 'mt_requests_total{model="%s",route="stream",status="200"} 2.0' % QWEN_REPO,
                 'mt_errors_total{error="empty_text",model="%s"} 2.0' % QWEN_REPO,
                 'mt_model_ready{model="%s"} 1.0' % QWEN_REPO):
        assert line in metrics, (line, metrics)
    assert 'mt_tokens_total{kind="generated"' in metrics and "mt_generated_tokens_per_second_bucket" in metrics
    return health


def _page_translates(chain, speech, mode: str) -> dict:
    """The page streams the microphone (the phrase) to asr; each final's row shows transcript,
    translation, timings."""
    with chromium(fake_microphone=speech) as browser:
        browser.get(chain.url("frontend") + "/translate")
        wait_for(lambda: browser.find_element("id", "record").is_enabled(), 20, "the translator link", browser)
        browser.find_element("id", "record").click()
        wait_for(lambda: browser.find_element("id", "status").get_attribute("data-state") == "recording",
                 10, "recording to start", browser)
        with wave.open(str(speech)) as w:  # the whole phrase, with room for a busy machine's capture lag
            time.sleep(w.getnframes() / w.getframerate() + 2.0)
        browser.find_element("id", "stop").click()
        wait_for(lambda: browser.find_element("id", "status").get_attribute("data-state") == "done",
                 90, "the stream's summary", browser)
        row = wait_for(lambda: browser.find_elements("css selector", "#lines tbody tr[data-state=translated]"),
                       90, "a translated row", browser)[0]
        cells = [c.text for c in row.find_elements("tag name", "td")]
        heard = " ".join(r.find_element("tag name", "td").text
                         for r in browser.find_elements("css selector", "#lines tbody tr"))
        timings = {k: int(row.get_attribute(f"data-{k}-ms")) for k in ("asr", "mt", "end")}
        browser.save_screenshot(str(chain.root / f"translate-{mode}.png"))
    # the streamed finals, one row each; Chromium's fake microphone loops the file from the browser's
    # start, so the stream may begin mid-phrase ('this is, this is a test of speech recognition'):
    # the path is tested, not Whisper
    assert word_error_rate(PHRASES[0], heard) <= 0.5, heard
    assert cells[1] and "end of speech → text" in cells[2], cells
    assert 0 < timings["asr"] < timings["end"] and 0 < timings["mt"] < timings["end"], timings
    print(f"{mode}: heard {cells[0]!r}; end of speech -> translated text {timings['end']} ms "
          f"(asr {timings['asr']} ms, mt {timings['mt']} ms)")
    return timings


def _eval_holds(chain) -> None:
    """`inv eval --check` on Whisper base and the chain against the committed baseline (CI's quality
    gate for the translation stack; docs/eval.md): every figure within its budget, BLEU and chrF
    the same as sacrebleu's own command line computes from the same translations."""
    out = chain.root / "eval"
    got = chain.inv("eval", "--check", "--baseline", str(ROOT / "tests" / "evaluation" / "baselines" / "translate.json"),
                    "--json", "--out", str(out))
    assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-3000:]
    doc = json.loads(got.stdout)
    asr, mt = doc["services"]["asr"], doc["services"]["mt"]
    assert asr["backend"] == "whisper" and asr["model"] == WHISPER_REPO and asr["revision"]
    assert asr["modes"]["batch"]["wer"] < 0.3, asr["modes"]["batch"]
    # the mirror commits the models anew for each run: the same models at another revision, said and compared anyway
    for name, repo in (("asr", WHISPER_REPO), ("mt", QWEN_REPO)):
        said = doc["baseline"]["model_changed"].get(name, f"baseline: {repo}; now: {repo}")
        assert said.count(repo) == 2 and said.startswith("baseline: "), said
    assert mt["model"] == QWEN_REPO and mt["target"] == "de" and mt["lag_s"]["n"] == len(mt["utterances"])
    (out / "ref.txt").write_text("".join(u["ref"] + "\n" for u in mt["utterances"]))
    (out / "hyp.txt").write_text("".join((u["hyp"] or "") + "\n" for u in mt["utterances"]))
    cli = subprocess.run([str(Path(sys.executable).with_name("sacrebleu")), str(out / "ref.txt"), "-i",
                          str(out / "hyp.txt"), "-m", "bleu", "chrf", "-b", "-w", "2"],
                         capture_output=True, text=True, check=True)
    assert json.loads(cli.stdout) == [mt["bleu"], mt["chrf"]], (cli.stdout, mt["bleu"], mt["chrf"])
    print(f"inv eval, Whisper base: batch WER {asr['modes']['batch']['wer']:.3f}, stream WER "
          f"{asr['modes']['stream']['wer']:.3f}, final p50 {asr['modes']['stream']['final_s']['p50']} s; "
          f"mt BLEU {mt['bleu']} chrF {mt['chrf']}, lag p50 {mt['lag_s']['p50']} s")


def test_translation_natively(chain, speech):
    started = time.monotonic()
    up = chain.inv("run", "--native", "--detach")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        print(f"native: stack started to healthy in {time.monotonic() - started:.1f} s")
        _mt_serves(chain, "native")
        _page_translates(chain, speech, "native")
        smoked = chain.inv("smoke", "--json")
        report = json.loads(smoked.stdout)
        rows = {r["name"]: r for r in report["results"]}
        assert smoked.returncode == 0 and report["ok"], smoked.stdout + smoked.stderr
        assert rows["mt"]["check"] == "translate" and rows["mt"]["status"] == "pass"
        assert rows["mt"]["detail"]["model"] == QWEN_REPO and rows["mt"]["detail"]["output_tokens"] > 0
        assert rows["asr"]["check"] == "transcribe" and rows["asr"]["status"] == "pass"
        assert rows["gpu"]["status"] == "skip" and "no NVIDIA container runtime" in rows["gpu"]["reason"]
        log = (chain.root / ".duplex" / "logs" / "mt.log").read_text()
        assert f"MT model {QWEN_REPO} ready in" in log and "Qwen2ForCausalLM, device cpu, precision float32" in log
        # `inv loadtest` of the chain the page drives: asr's stream through the frontend, each final to mt
        load = chain.inv("loadtest", "--services", "mt", "--most", "1", "--seconds", "6", "--json",
                         "--out", str(chain.root / "load"))
        assert load.returncode == 0, load.stdout + load.stderr  # the example declares no budget: errors only
        (level,) = json.loads(load.stdout)["services"]["mt"]["levels"]
        assert level["ok"] == 1 and level["lag_s"]["n"] >= 1 and 0 < level["lag_s"]["p50"] < 30, level
        assert level["final_s"]["n"] >= 1 and {"asr", "mt", "frontend"} <= set(level["services"]), level
        print(f"inv loadtest, translation chain: {load.stderr.splitlines()[-3]}")
        _eval_holds(chain)
    finally:  # a failure above must not leave the stack running for the next test
        stopped = chain.inv("stop")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr


def test_translation_in_containers(chain, speech):
    started = time.monotonic()
    up = chain.inv("run", "--detach")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        print(f"container: images built and stack healthy in {time.monotonic() - started:.1f} s")
        _mt_serves(chain, "container")
        _page_translates(chain, speech, "container")
        inspect = json.loads(subprocess.run([tool("docker"), "inspect", f"duplex-{STACK}-mt"], capture_output=True,
                                            text=True, check=True).stdout)[0]
        assert "HF_HUB_OFFLINE=1" in inspect["Config"]["Env"] and inspect["Config"]["User"] == "duplex"
        smoked = chain.inv("smoke", "--json", "--services", "asr,mt,gpu")
        assert smoked.returncode == 0, smoked.stdout + smoked.stderr
    finally:  # a failure above must not leave the stack running for the next test
        stopped = chain.inv("stop")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
