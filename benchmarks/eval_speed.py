"""How long `inv eval` takes on duplex's own set, against the default stack run natively
(pocketsphinx asr, as `inv run --native --detach --services asr` starts it):

  - cold: the set synthesised first (flite, espeak-ng, sox), then batch and streaming;
  - warm: the set reused, batch and streaming (streaming is real time: it cannot take less than
    the audio plus each utterance's second of trailing silence, printed beside it);
  - batch only, against the baseline a team writes by hand in the same run: the same uploads one
    at a time, scored with jiwer over Whisper-normalised text (no report, no baseline, no
    provenance) - the ratio is what duplex's bookkeeping costs.

Usage: python benchmarks/eval_speed.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import run_inv  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.stackcopy import copy_stack  # noqa: E402


def timed_inv(*args: str, env: dict, cwd: Path) -> tuple[float, dict]:
    started = time.monotonic()
    got = run_inv(*args, "--json", env=env, cwd=cwd, timeout=1800)
    wall = time.monotonic() - started
    if got.returncode != 0:
        raise SystemExit(f"inv {' '.join(args)} failed:\n{got.stdout[-2000:]}\n{got.stderr[-2000:]}")
    return wall, json.loads(got.stdout)


def by_hand(url: str, manifest: Path) -> tuple[float, float]:
    """The one-off script: each file to POST /transcribe, then jiwer over normalised text."""
    started = time.monotonic()
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer
    norm = EnglishTextNormalizer()
    refs, hyps = [], []
    for line in manifest.read_text().splitlines():
        entry = json.loads(line)
        audio = Path(entry["audio_filepath"])
        audio = audio if audio.is_absolute() else manifest.parent / audio
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n").encode() \
            + audio.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(f"{url}/transcribe", data=body,
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(request, timeout=60) as resp:
            hyps.append(norm(json.loads(resp.read())["text"]))
        refs.append(norm(entry["text"]))
    wer = jiwer.wer(refs, hyps)
    return time.monotonic() - started, wer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="duplex-evalbench-") as tmp:
        root = copy_stack(Path(tmp) / "stack", "evalbench")
        port = free_port()
        env = {"DUPLEX_STACK": str(root / "stack.toml"), "DUPLEX_PORT_ASR": str(port)}
        up = run_inv("run", "--native", "--detach", "--skip-preflight", "--services", "asr", env=env, cwd=root,
                     timeout=300)
        if up.returncode != 0:
            raise SystemExit(up.stdout + up.stderr)
        try:
            cold, doc = timed_inv("eval", "--out", str(Path(tmp) / "out"), env=env, cwd=root)
            audio = doc["data"]["audio_s"]
            floor = audio + doc["data"]["utterances"] * 1.0  # the stream pass, at real time, plus its tails
            warm = [timed_inv("eval", "--out", str(Path(tmp) / "out"), env=env, cwd=root)[0]
                    for _ in range(args.rounds)]
            manifest = root / doc["data"]["path"]
            batch, mine, hand, hand_wer = [], None, [], None
            for _ in range(args.rounds):
                wall, mine = timed_inv("eval", "--modes", "batch", "--out", str(Path(tmp) / "out"), env=env, cwd=root)
                batch.append(wall)
                seconds, hand_wer = by_hand(f"http://127.0.0.1:{port}", manifest)
                hand.append(seconds)
        finally:
            run_inv("stop", "--all", env=env, cwd=root, timeout=120)
    asr = doc["services"]["asr"]["modes"]
    print(f"data: {doc['data']['source']}")
    print(f"inv eval, cold (set synthesised): {cold:.1f} s")
    print(f"inv eval, warm: {statistics.median(warm):.1f} s median of {len(warm)} "
          f"(the stream pass alone cannot take less than {floor:.1f} s: audio + 1 s of silence per utterance)")
    print(f"inv eval --modes batch: {statistics.median(batch):.2f} s median; a hand-written upload + jiwer loop: "
          f"{statistics.median(hand):.2f} s ({statistics.median(batch) / statistics.median(hand):.2f}x); "
          f"WER {mine['services']['asr']['modes']['batch']['wer']:.4f} vs {hand_wer:.4f}")
    print(f"figures: batch WER {asr['batch']['wer']:.3f}, RTF {asr['batch']['rtf']}; stream WER "
          f"{asr['stream']['wer']:.3f}, final p50/p95 {asr['stream']['final_s']['p50']}/{asr['stream']['final_s']['p95']} s, "
          f"first partial p50 {asr['stream']['first_partial_s']['p50']} s, stability {asr['stream']['stability']}")


if __name__ == "__main__":
    main()
