"""The CLI's start-up: `inv --list`, `inv config`, a no-op `inv setup` and `inv preflight`, whole process,
each against its goal and beside bare Python and bare invoke measured in the same run.

Goals (issue 33): `inv --list` <= 0.15 s, no-op `inv setup` <= 0.25 s, `inv preflight` <= 0.5 s (wall,
medians), `inv config` <= 1,400M instructions. Usage: python benchmarks/cli_startup.py [-n 10]
[--instructions]. Wall-clock times swing by tens of percent on a busy 2-core machine (the load average
is printed before and after); with --instructions each command also runs once under valgrind's
callgrind, whose instruction count is the same from run to run whatever else the machine does: the
figure to compare two versions by.

Commands run as a checkout runs them: duplex's bytecode written (PYTHONDONTWRITEBYTECODE is dropped for
them; without bytecode every command compiles duplex's sources again, ~270M instructions more for
`inv config`), each run once unmeasured first. That first `inv setup` sets up any env that is not, so
the measured ones are no-ops. `inv preflight` may report failures (no GPU, no engine): its exit status
is not a failure here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INV = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
# name -> (command, goal in seconds (wall median) or None, goal in instructions or None)
CASES = {
    "python -c pass (floor)": ([sys.executable, "-c", "pass"], None, None),
    "invoke --version (baseline)": ([*INV, "--version"], None, None),
    "inv --list": ([*INV, "--list"], 0.15, None),
    "inv config": ([*INV, "config"], None, 1400e6),
    "inv setup (no-op)": ([*INV, "setup"], 0.25, None),
    "inv preflight": ([*INV, "preflight"], 0.5, None),
}
MAY_FAIL = {"inv preflight"}  # its exit status says what it found


def run(name: str, cmd: list[str], prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    proc = subprocess.run([*prefix, *cmd], cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    if proc.returncode and name not in MAY_FAIL:
        sys.exit(f"{name} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc


def measure(name: str, cmd: list[str], n: int) -> list[float]:
    run(name, cmd)  # unmeasured: writes bytecode; makes `inv setup` a no-op
    times = []
    for _ in range(n):
        began = time.perf_counter()
        run(name, cmd)
        times.append(time.perf_counter() - began)
    return times


def instructions(name: str, cmd: list[str]) -> int:
    """Instructions one run executes (callgrind counts them; repeatable under load)."""
    proc = run(name, cmd, ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"))
    return int(proc.stderr.rsplit("Collected :", 1)[1].split()[0])


def verdict(value: float, goal: float | None, unit: str) -> str:
    if goal is None:
        return ""
    shown = f"{goal:.2f} s" if unit == "s" else f"{goal / 1e6:,.0f}M"
    return f"goal <= {shown}: " + ("ok" if value <= goal else "MISSED")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10, help="measured runs of each command (median shown)")
    parser.add_argument("--instructions", action="store_true", help="also count instructions (valgrind)")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    results = {name: measure(name, cmd, args.n) for name, (cmd, _, _) in CASES.items()}
    print(f"load average (1 min) {load:.2f} before, {os.getloadavg()[0]:.2f} after; {os.cpu_count()} cores; "
          f"medians of {args.n}")
    base = statistics.median(results["invoke --version (baseline)"])
    print(f"{'command':<30} {'median':>8} {'min':>8} {'vs invoke':>10}  goal")
    for name, times in results.items():
        med = statistics.median(times)
        print(f"{name:<30} {med:>7.3f}s {min(times):>7.3f}s {med / base:>9.2f}x  {verdict(med, CASES[name][1], 's')}")
    if args.instructions:
        print(f"\n{'command':<30} {'instructions':>14}  goal")
        for name, (cmd, _, goal) in CASES.items():
            count = instructions(name, cmd)
            print(f"{name:<30} {count / 1e6:>12,.0f} M  {verdict(count, goal, 'M')}")


if __name__ == "__main__":
    main()
