"""Plumbing figures for moshi and NeMo on CPU, with tiny checkpoints of the real architectures.

These measure what duplex and the servers add, NOT model speed: the checkpoints are tiny
(tests/support/tiny_models.py: a 2-layer 64-wide moshi LM with a small Mimi; a 2-layer 64-wide
FastConformer-CTC), so a 7B moshi or a 0.6B Parakeet on a GPU will give very different numbers.

moshi (the stack's moshi service pointed at the tiny checkpoint, --device cpu, OMP_NUM_THREADS=1):
  - start to healthy: `inv run --detach --services moshi` with the image built and the container
    gone, until the 0x00 handshake (interpreter + torch import, load, warm-up, duplex's wait);
  - first audio back: headless Chromium on the frontend's /chat (native frontend, relay), fake
    microphone; from the page sending its first Opus frame to the first audio frame from moshi.
NeMo (the asr server, ASR_BACKEND=nemo, the asr-nemo env, natively):
  - load: /health's load_s (ASR_MODEL resolved, restore_from, eval) and process start to ready;
  - real-time factor: processing_s / duration_s over four flite phrases, one request at a time.

Usage: python benchmarks/speech_backends.py [--rounds 3] [--skip-moshi] [--skip-nemo]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.run.test_moshi_chain import prepare_stack  # noqa: E402
from tests.support.asr_server import asr_server  # noqa: E402
from tests.support.browser import chromium, wait_for  # noqa: E402
from tests.support.envs import ensure_env  # noqa: E402
from tests.support.hub import Mirror  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.speech import PHRASES, concatenate, synthesize  # noqa: E402
from tests.support.stackcopy import copy_stack  # noqa: E402
from tests.support.tiny_models import MOSHI_FILES, MOSHI_REPO, NEMO_FILES, tiny_moshi, tiny_nemo  # noqa: E402


def med(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"


def moshi_figures(work: Path, rounds: int) -> None:
    root = copy_stack(work / "stack", "moshibench", envs=("asr", "frontend"),
                      extra=("third_party/moshi", "duplex/standalone/wscheck.py", "duplex/standalone/moshi_smoke.py"))
    prepare_stack(root / "stack.toml")
    env = {**os.environ, "DUPLEX_STACK": str(root / "stack.toml"), "HF_HOME": str(work / "hf"),
           **{f"DUPLEX_PORT_{n}": str(free_port()) for n in ("ASR", "FRONTEND", "MOSHI")}}
    env.pop("HF_HUB_OFFLINE", None)
    inv = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]

    def call(*args: str) -> None:
        subprocess.run([*inv, *args], cwd=root, env=env, check=True, capture_output=True, timeout=1800)

    model = tiny_moshi(work / "tiny-moshi")
    with Mirror(work / "mirror") as mirror:
        mirror.repo(MOSHI_REPO).commit({name: model / name for name in MOSHI_FILES})
        subprocess.run([*inv, "prefetch", "--services", "moshi"], cwd=root, check=True, capture_output=True,
                       env={**env, "HF_ENDPOINT": mirror.endpoint}, timeout=600)
    try:
        call("run", "--detach", "--services", "moshi")  # builds the image once
        starts = []
        for _ in range(rounds):
            call("stop", "--all")
            began = time.perf_counter()
            call("run", "--detach", "--services", "moshi")
            starts.append(time.perf_counter() - began)
        print(f"moshi start to healthy (container, tiny checkpoint, CPU, image cached): {med(starts)}")
        call("stop")  # moshi is persistent: kept warm, reused by the next run
        call("run", "--native", "--detach", "--services", "moshi,frontend")
        parts = [synthesize(p, work / f"{i}.wav") for i, p in enumerate(PHRASES)]
        speech = concatenate(parts, work / "speech.wav", gap_s=0.5)
        firsts = []
        url = f"http://127.0.0.1:{env['DUPLEX_PORT_FRONTEND']}/chat"
        for _ in range(rounds):
            with chromium(fake_microphone=speech) as browser:
                browser.get(url)
                wait_for(lambda: browser.find_element("id", "connect").is_enabled(), 20, "config", browser)
                browser.find_element("id", "connect").click()
                find = browser.find_element
                wait_for(lambda find=find: find("id", "audio-in").get_attribute("data-first-ms"), 90, "audio",
                         browser)
                out = float(find("id", "audio-out").get_attribute("data-first-ms"))
                firsts.append((float(find("id", "audio-in").get_attribute("data-first-ms")) - out) / 1000)
        print(f"moshi first audio frame back after the browser's first frame (relay, CPU): {med(firsts)}")
    finally:
        subprocess.run([*inv, "stop", "--all"], cwd=root, env=env, capture_output=True, timeout=300)


SPLIT = """import sys, time
t = time.perf_counter()
from nemo.collections.asr.models import ASRModel
t1 = time.perf_counter()
ASRModel.restore_from(sys.argv[1], map_location="cpu").eval()
print(t1 - t, time.perf_counter() - t1, flush=True)
"""


def nemo_figures(work: Path, rounds: int) -> None:
    checkpoint = tiny_nemo(work / "tiny-nemo") / NEMO_FILES[0]
    python = ensure_env("asr-nemo") / "bin" / "python"
    wavs = [synthesize(p, work / f"nemo-{i}.wav") for i, p in enumerate(PHRASES)]
    loads, readies, rtfs = [], [], []
    for _ in range(rounds):
        began = time.perf_counter()
        with asr_server(python, {"ASR_BACKEND": "nemo", "ASR_MODEL": str(checkpoint), "ASR_DEVICE": "cpu"},
                        name="bench-nemo", timeout=300) as server:
            readies.append(time.perf_counter() - began)
            loads.append(server.health().json()["load_s"])
            for wav in wavs:
                body = server.transcribe(wav).json()
                rtfs.append(body["processing_s"] / body["duration_s"])
    split = subprocess.run([str(python), "-c", SPLIT, str(checkpoint)], capture_output=True, text=True,
                           check=True, timeout=600).stdout.strip().splitlines()[-1].split()  # NeMo logs to stdout too
    print(f"NeMo process start to ready (tiny FastConformer-CTC, CPU; NeMo's import dominates): {med(readies)}")
    print(f"NeMo backend load (/health load_s: import nemo.collections.asr + restore_from + eval): {med(loads)}")
    print(f"  of which, in a fresh process: import {float(split[0]):.2f} s, restore_from + eval {float(split[1]):.2f} s")
    print(f"NeMo real-time factor, processing / audio seconds, 1 in flight: {statistics.median(rtfs):.3f} "
          f"({1 / statistics.median(rtfs):.0f}x real time; n={len(rtfs)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-moshi", action="store_true")
    parser.add_argument("--skip-nemo", action="store_true")
    args = parser.parse_args()
    print("Plumbing figures (tiny checkpoints, CPU): what duplex and the servers cost, not model speed.")
    with tempfile.TemporaryDirectory(prefix="duplex-bench-") as tmp:
        if not args.skip_nemo:
            nemo_figures(Path(tmp), args.rounds)
        if not args.skip_moshi:
            moshi_figures(Path(tmp), args.rounds)


if __name__ == "__main__":
    main()
