"""README command 1's install step on a fresh clone: before (`pip install -e '.[test]'`, the test
tools included) and after (`pip install -e .`, what running needs). Prints wall time, packages and
venv size for each; pip's download cache is warm for both (run it twice to be sure).

    python benchmarks/install_footprint.py [--runs 1]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = {"before: pip install -e '.[test]'": ".[test]", "after: pip install -e .": "."}


def measure(spec: str) -> tuple[float, int, int]:
    with tempfile.TemporaryDirectory(prefix="duplex-install-") as tmp:
        clone = Path(tmp) / "duplex"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "venv", ".venv"], cwd=clone, check=True)
        subprocess.run([".venv/bin/pip", "install", "-q", "--disable-pip-version-check", "-e", spec], cwd=clone,
                       check=True, capture_output=True)
        took = time.perf_counter() - t0
        count = len(subprocess.run([".venv/bin/pip", "list", "--format=freeze"], cwd=clone, capture_output=True,
                                   text=True, check=True).stdout.splitlines())
        size = int(subprocess.run(["du", "-sb", ".venv"], cwd=clone, capture_output=True, text=True,
                                  check=True).stdout.split()[0])
        return took, count, size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    for label, spec in CASES.items():
        for _ in range(args.runs):
            took, count, size = measure(spec)
            print(f"{label:<36} {took:6.1f} s  {count:3d} packages  {size / 1e6:6.0f} MB venv")


if __name__ == "__main__":
    main()
