"""How long `inv --list` and `inv config` take, against bare Python and bare invoke in the same run.

Target (issue 2): each under 0.6 s on this machine. Usage: python benchmarks/cli_startup.py [-n 10]
[--instructions]. Wall-clock times swing by tens of percent on a busy 2-core machine; with
--instructions each command also runs once under valgrind's callgrind, whose instruction count is
the same from run to run whatever else the machine does: the figure to compare two versions by.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INV = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]
CASES = {
    "python -c pass (floor)": [sys.executable, "-c", "pass"],
    "invoke --version (baseline)": [*INV, "--version"],
    "inv --list": [*INV, "--list"],
    "inv config": [*INV, "config"],
    "inv config --native --json": [*INV, "config", "--native", "--json"],
}


def measure(cmd: list[str], n: int) -> list[float]:
    times = []
    for _ in range(n):
        began = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - began)
    return times


def instructions(cmd: list[str]) -> int:
    """Instructions one run executes (callgrind counts them; repeatable under load)."""
    proc = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd], cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
    return int(proc.stderr.rsplit("Collected :", 1)[1].split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=10)
    parser.add_argument("--instructions", action="store_true", help="also count instructions (valgrind)")
    args = parser.parse_args()
    results = {name: measure(cmd, args.n) for name, cmd in CASES.items()}
    base = statistics.median(results["invoke --version (baseline)"])
    print(f"{'command':<30} {'median':>8} {'min':>8} {'vs invoke':>10}  target")
    for name, times in results.items():
        med = statistics.median(times)
        target = "< 0.60 s " + ("ok" if med < 0.6 else "MISSED") if name.startswith("inv ") else ""
        print(f"{name:<30} {med:>7.3f}s {min(times):>7.3f}s {med / base:>9.2f}x  {target}")
    if args.instructions:
        print(f"\n{'command':<30} {'instructions':>14}")
        for name, cmd in CASES.items():
            print(f"{name:<30} {instructions(cmd) / 1e6:>12.0f} M")


if __name__ == "__main__":
    main()
