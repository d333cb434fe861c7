"""How long vendoring moshi takes here: download, cached update, dry run, check, rollback.

    python benchmarks/vendor_speed.py [--tag v0.2.13] [--from-tag v0.2.12] [--rounds 5]

Works in a throw-away project root; the download is timed with an empty cache, the rest with the
release cached (the everyday case). Prints one line per step: median and min over the rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from duplex.vendor import check, rollback, vendor  # noqa: E402
from tests.support.timing import timed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default="v0.2.13")
    parser.add_argument("--from-tag", default="v0.2.12")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cold = Path(tmp) / "cold"
        rows.append(("download + verify + vendor (empty cache)", timed(lambda: vendor(cold, args.tag), 1)))
        root = Path(tmp) / "warm"
        (root / ".duplex" / "cache").mkdir(parents=True)
        (root / ".duplex" / "cache" / "vendor").symlink_to(cold / ".duplex" / "cache" / "vendor")
        vendor(root, args.from_tag)
        vendor(root, args.tag)

        rows.append((f"dry run {args.from_tag} -> {args.tag} (cached)",
                     timed(lambda: vendor(root, args.from_tag, dry_run=True), args.rounds)))
        rows.append(("unchanged re-vendor (cached)", timed(lambda: vendor(root, args.tag), args.rounds)))
        rows.append(("rollback (atomic swap with the snapshot)", timed(lambda: rollback(root), args.rounds)))
        rows.append(("--check", timed(lambda: check(root), args.rounds)))
    print(f"vendor-moshi timings ({args.rounds} rounds, median / min):")
    for name, times in rows:
        print(f"  {name:<45} {statistics.median(times) * 1000:8.1f} ms  {min(times) * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
