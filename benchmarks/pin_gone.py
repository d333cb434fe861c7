"""A commit pinned in models.lock that the hub no longer has (a force-pushed repo), on a fresh cache.

Prints how long `duplex.models.prefetch` takes to name it (PinGoneError), and, measured in the same
run against the same olah mirror, how long huggingface_hub's own download of a file at that commit
takes to give up (the path prefetch took before: retries, then "cannot find the requested files in
the local cache"). Run: python benchmarks/pin_gone.py [--rounds N]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from duplex.models import PinGoneError, prefetch  # noqa: E402
from duplex.models.lock import read_lock, write_lock  # noqa: E402
from tests.support.hub import Mirror  # noqa: E402

REPO, GONE = "acme/forced", "0123456789abcdef0123456789abcdef01234567"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        mirror = Mirror(base / "mirror")
        mirror.repo(REPO).commit({"config.json": b'{"v": 1}\n', "weights.bin": b"\0" * 4096})
        with mirror:
            project = base / "project"
            project.mkdir()
            prefetch(project, [REPO], hf_home=base / "hf", token_present=False, endpoint=mirror.endpoint)
            lock = read_lock(project)
            lock.models[REPO] = dataclasses.replace(lock.models[REPO], commit=GONE)
            write_lock(project, lock)
            ours, theirs = [], []
            for i in range(args.rounds):
                started = time.perf_counter()
                try:
                    prefetch(project, [REPO], hf_home=base / f"fresh-{i}", token_present=False,
                             endpoint=mirror.endpoint)
                except PinGoneError:
                    ours.append(time.perf_counter() - started)
                else:
                    raise SystemExit("prefetch did not notice the lost commit")
                from huggingface_hub import hf_hub_download
                started = time.perf_counter()
                try:
                    hf_hub_download(REPO, "config.json", revision=GONE, cache_dir=str(base / f"plain-{i}"),
                                    endpoint=mirror.endpoint)
                except Exception as exc:  # noqa: BLE001 - what prefetch used to end with, whatever its type
                    theirs.append(time.perf_counter() - started)
                    ending = f"{type(exc).__name__}"
    print(f"lost pin named by duplex:         {statistics.median(ours):6.2f} s median of {len(ours)}")
    print(f"huggingface_hub download gives up: {statistics.median(theirs):6.2f} s median ({ending})")
    print(f"ratio: {statistics.median(theirs) / statistics.median(ours):.0f}x faster to the answer")


if __name__ == "__main__":
    main()
