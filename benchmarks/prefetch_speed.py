"""Prefetch of the real Whisper base model (148 MB) through an olah mirror on loopback.

Prints: cold `duplex.models.prefetch` time, warm (cached, pinned) re-run time, a plain
`huggingface_hub.snapshot_download` of the same repo from the same mirror in the same run, and
the ratio. Run: python benchmarks/prefetch_speed.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from duplex.models import prefetch  # noqa: E402
from tests.support.hub import Mirror  # noqa: E402
from tests.support.whisper_model import whisper_base_dir  # noqa: E402

REPO = "Systran/faster-whisper-base"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model = whisper_base_dir()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        mirror = Mirror(base / "mirror")
        mirror.repo(REPO).commit({p.name: p for p in sorted(model.iterdir())}, "weights")
        with mirror:
            from huggingface_hub import snapshot_download
            size = sum(p.stat().st_size for p in model.iterdir())
            cold, plain, warm = [], [], []
            for i in range(args.rounds):
                # Alternate the order so neither side always meets a warmer mirror.
                order = ("duplex", "plain") if i % 2 == 0 else ("plain", "duplex")
                for who in order:
                    home = base / f"{who}-{i}"
                    started = time.perf_counter()
                    if who == "duplex":
                        (home / "project").mkdir(parents=True)
                        prefetch(home / "project", [REPO], hf_home=home / "hf", token_present=False,
                                 endpoint=mirror.endpoint)
                        cold.append(time.perf_counter() - started)
                        started = time.perf_counter()
                        report = prefetch(home / "project", [REPO], hf_home=home / "hf",
                                          token_present=False, endpoint="http://127.0.0.1:9")
                        warm.append(time.perf_counter() - started)
                        assert report.models[0].status == "cached" and not report.network
                    else:
                        snapshot_download(REPO, cache_dir=str(home / "hub"), endpoint=mirror.endpoint)
                        plain.append(time.perf_counter() - started)
    mb = size / 1e6
    c, p, w = statistics.median(cold), statistics.median(plain), statistics.median(warm)
    print(f"repo: {REPO} ({mb:.1f} MB, 5 files) through olah on loopback, {args.rounds} rounds, medians")
    print(f"duplex prefetch, cold:              {c:6.2f} s  ({mb / c:5.1f} MB/s)  runs: {_fmt(cold)}")
    print(f"huggingface_hub snapshot_download:  {p:6.2f} s  ({mb / p:5.1f} MB/s)  runs: {_fmt(plain)}")
    print(f"ratio duplex / plain:               {c / p:6.2f}")
    print(f"duplex prefetch, warm (no network): {w * 1000:6.1f} ms  runs: {_fmt(warm, ms=True)}")


def _fmt(values: list[float], ms: bool = False) -> str:
    return ", ".join(f"{v * 1000:.1f}" if ms else f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
