"""Parity: the default stack answers the same HTTP checks natively and in containers."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from duplex.asr_stream import read_pcm, stream_pcm
from tests.conftest import ROOT
from tests.support.net import free_port
from tests.support.speech import PHRASES, synthesize, word_error_rate
from tests.support.stackcopy import copy_stack

pytestmark = pytest.mark.docker


def post_file(url: str, path: Path) -> tuple[int, dict]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes() + \
        f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def answers(ports: dict[str, int], speech: Path, junk: Path) -> dict:
    asr, front = f"http://127.0.0.1:{ports['asr']}", f"http://127.0.0.1:{ports['frontend']}"
    health_code, health = get(asr + "/health")
    direct_code, direct = post_file(asr + "/transcribe", speech)
    proxied_code, proxied = post_file(front + "/api/transcribe", speech)
    junk_code, junk_body = post_file(asr + "/transcribe", junk)
    config_code, config = get(front + "/api/config")
    pcm, rate = read_pcm(speech)
    streamed = asyncio.run(stream_pcm(asr.replace("http", "ws") + "/stream", pcm, rate, realtime=False))
    relayed = asyncio.run(stream_pcm(front.replace("http", "ws") + "/api/stream", pcm, rate))  # real time
    return {
        "stream": (streamed.close_code, streamed.text, len(streamed.of("final")), bool(streamed.of("partial"))),
        "stream via frontend": (relayed.close_code, relayed.text, bool(relayed.of("partial"))),
        "asr health": (health_code, health.get("backend"), health.get("ready")),
        "transcribe": (direct_code, direct["text"], direct["backend"], direct["duration_s"]),
        "via frontend": (proxied_code, proxied["text"]),
        "bad audio": (junk_code, junk_body.get("error")),
        "frontend health": get(front + "/health")[0],
        "config": (config_code, bool(config["asr_url"]), config["moshi_ws_url"]),
    }


def test_same_answers_natively_and_in_containers(tmp_path):
    root = copy_stack(tmp_path / "stack", "parity")
    speech = synthesize(PHRASES[1], tmp_path / "speech.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio at all" * 10)
    ports = {"asr": free_port(), "frontend": free_port()}
    env = {**os.environ, "DUPLEX_STACK": str(root / "stack.toml"),
           **{f"DUPLEX_PORT_{n.upper()}": str(p) for n, p in ports.items()}}
    inv = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]
    seen = {}
    try:
        for mode, flags in (("native", ["--native"]), ("container", [])):
            up = subprocess.run([*inv, "run", "--detach", *flags], cwd=root, env=env,
                                capture_output=True, text=True, timeout=900)
            assert up.returncode == 0, up.stdout + up.stderr
            seen[mode] = answers(ports, speech, junk)
            down = subprocess.run([*inv, "stop"], cwd=root, env=env, capture_output=True, text=True,
                                  timeout=120)
            assert down.returncode == 0, down.stderr
    finally:
        subprocess.run([*inv, "stop", "--all"], cwd=root, env=env, capture_output=True, timeout=120)
    assert seen["native"] == seen["container"]
    code, text, backend, _ = seen["native"]["transcribe"]
    assert code == 200 and backend == "pocketsphinx"
    assert word_error_rate(PHRASES[1], text) <= 0.2, text
    assert seen["native"]["bad audio"][0] in (400, 415, 422)
    assert seen["native"]["config"] == (200, True, None)  # moshi not part of a CPU run
    code, text, finals, partials = seen["native"]["stream"]  # live transcription (WS /stream), both ways
    assert code == 1000 and finals >= 1 and partials and word_error_rate(PHRASES[1], text) <= 0.2, text
