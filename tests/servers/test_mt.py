"""The translation server when it cannot translate: a bad setting or a model missing from the cache
is reported by /health (503, with what to do) and every translation is refused as not ready, in the
servers' one error shape. Real uvicorn processes in the mt env; the working path is covered by
tests/translate/test_chain.py."""

from __future__ import annotations

import os
import subprocess
import time

import httpx
import pytest

from tests.conftest import ROOT
from tests.support.envs import ensure_env
from tests.support.net import free_port, stop_process, wait_answer


@pytest.fixture(scope="module")
def python():
    return ensure_env("mt") / "bin" / "python"


def serve(python, tmp_path, **env):
    port = free_port()
    log = open(tmp_path / "mt.log", "w")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MT_", "HF_"))}
    proc = subprocess.Popen([str(python), "-m", "uvicorn", "servers.mt.app:app", "--port", str(port)], cwd=ROOT,
                            env={**clean, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", **env},
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_answer(proc, url + "/health", "mt", time.monotonic() + 60, (tmp_path / "mt.log").read_text)
    return proc, url


def settled(url: str) -> dict:
    """/health once loading is over (the load runs in a thread: torch and transformers import first)."""
    deadline = time.monotonic() + 120
    while (body := httpx.get(url + "/health").json())["status"] == "loading" and time.monotonic() < deadline:
        time.sleep(0.5)
    return body


@pytest.mark.parametrize("env, error", [
    ({"MT_DEVICE": "gpu"}, "bad setting: MT_DEVICE='gpu' is not one of auto, cpu, cuda"),
    ({"MT_SOURCE": "english!"}, "bad setting: MT_SOURCE='english!' is not a language code"),
    ({"MT_MODEL": "acme/not-prefetched"}, "run `inv prefetch --repo acme/not-prefetched`"),
])
def test_what_stops_it_is_said_by_health_and_every_request_is_refused(python, tmp_path, env, error):
    proc, url = serve(python, tmp_path, **env)
    try:
        health = settled(url)
        assert health["status"] == "error" and not health["ready"] and error in health["error"], health
        assert httpx.get(url + "/health").status_code == 503
        refused = httpx.post(url + "/translate", json={"text": "hello"})
        assert refused.status_code == 503 and refused.json()["error"] == "not_ready", refused.text
        assert error in refused.json()["detail"]
        assert httpx.get(url + "/nope").json() == {"error": "not_found", "detail": "no such path: /nope"}
        assert "mt_model_ready" in httpx.get(url + "/metrics").text
    finally:
        stop_process(proc)
