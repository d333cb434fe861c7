"""moshi's one conversation and the Origin rule, for real: the vendored moshi.server (with
third_party/patches/moshi/0002-origin-check.patch) in the moshi env, a tiny checkpoint of the real
architecture from the hub mirror, on CPU, run from the repo root as the image runs it from /app
(servers/origins.py beside it). Before the patch any web page could open /api/chat."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.conftest import ROOT
from tests.support.envs import ensure_env
from tests.support.hub import Mirror
from tests.support.net import free_port, stop_process, wait_answer
from tests.support.tiny_models import MOSHI_FILES, MOSHI_REPO, tiny_moshi

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def moshi(tmp_path_factory):
    base = tmp_path_factory.mktemp("moshi-origin")
    model = tiny_moshi(tmp_path_factory.getbasetemp() / "tiny-moshi")
    python = ensure_env("moshi") / "bin" / "python"
    port, log = free_port(), base / "moshi.log"
    with Mirror(base / "mirror") as mirror:
        mirror.repo(MOSHI_REPO).commit({name: model / name for name in MOSHI_FILES})
        env = {**os.environ, "PYTHONPATH": str(ROOT / "third_party" / "moshi"), "NO_TORCH_COMPILE": "1",
               "HF_HOME": str(base / "hf"), "HF_ENDPOINT": mirror.endpoint,
               "DUPLEX_ALLOWED_ORIGINS": "https://app.example.com"}
        env.pop("HF_HUB_OFFLINE", None)
        with open(log, "w") as out:
            proc = subprocess.Popen([str(python), "-m", "moshi.server", "--host", "127.0.0.1", "--port", str(port),
                                     "--static", "none", "--hf-repo", MOSHI_REPO, "--device", "cpu"],
                                    cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_answer(proc, f"http://127.0.0.1:{port}/api/chat", "moshi", time.monotonic() + 300, log.read_text)
            yield f"ws://127.0.0.1:{port}/api/chat"
        finally:
            stop_process(proc)


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:1"])
def test_a_page_of_another_origin_cannot_take_the_conversation(moshi, origin):
    with pytest.raises(InvalidStatus) as refused:
        connect(moshi, additional_headers={"Origin": origin}, open_timeout=30)
    assert refused.value.response.status_code == 403
    assert json.loads(refused.value.response.body)["error"] == "forbidden_origin"


@pytest.mark.parametrize("origin", [None, "https://app.example.com"])
def test_clients_without_an_origin_and_listed_ones_talk_to_moshi(moshi, origin):
    """The frontend's relay and duplex's probes send no Origin; a listed origin is let in."""
    with connect(moshi, additional_headers={"Origin": origin} if origin else {}, open_timeout=30) as ws:
        assert ws.recv(timeout=60) == b"\x00"  # moshi's handshake: the conversation is ours


def test_a_busy_moshi_is_alive_but_not_ready_and_its_drain_waits_for_the_conversation(moshi):
    """What `inv publish` writes for a moshi with sessions = 1 (readiness = the handshake, liveness =
    any HTTP answer, preStop = the drain), run against the real server holding a real conversation."""
    import sys

    from duplex.publish.common import drain_command, websocket_check

    port = int(moshi.split(":")[2].split("/")[0])

    def check(phase: str) -> subprocess.CompletedProcess:
        argv = [sys.executable, *websocket_check(port, "/api/chat", 2, phase=phase)[1:]]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)

    assert check("ready").returncode == 0  # free
    with connect(moshi, open_timeout=30) as conversation:
        assert conversation.recv(timeout=60) == b"\x00"
        busy = check("ready")
        assert busy.returncode == 1 and "no ready byte yet" in busy.stdout, busy.stdout
        assert check("alive").returncode == 0  # busy is not dead: liveness never kills it
        hook = subprocess.Popen([sys.executable, *drain_command(port, "handshake", 120, path="/api/chat")[1:],
                                 "--every", "0.5", "--probe-timeout", "1"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(4)
        assert hook.poll() is None, hook.stdout.read()  # still draining: the conversation goes on
    said, _ = hook.communicate(timeout=120)
    assert hook.returncode == 0 and "drained: the ready byte came" in said, said
    # The probes that waited on moshi's lock while it was busy do not keep it: the next one talks.
    with connect(moshi, open_timeout=30) as again:
        assert again.recv(timeout=60) == b"\x00"
