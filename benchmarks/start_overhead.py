"""What duplex adds to starting a stack natively: time to all healthy vs the services' own starts.

Each service's own start is measured by launching exactly the plan's command and environment by
hand and polling its health every 10 ms. Then `inv run --native --detach` starts the same services;
its overhead is its wall time minus the critical path of own start times (a dependent cannot start
before what it depends on is healthy). Target (issue 6): under 0.5 s.

Usage: python benchmarks/start_overhead.py [--services asr,frontend] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from duplex.host import probe_machine  # noqa: E402
from duplex.layout import Layout  # noqa: E402
from duplex.plan import plan  # noqa: E402
from duplex.run.native import argv, process_env, stop_group  # noqa: E402
from duplex.stack import load_stack  # noqa: E402


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status < 300
    except OSError:
        return False


def own_start(svc, root: Path) -> float:
    python = Layout(root).env_python(svc.env)
    began = time.perf_counter()
    proc = subprocess.Popen(argv(svc, python), cwd=root, env=process_env(svc, python),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while not healthy(svc.health.url):
            if proc.poll() is not None:
                raise SystemExit(f"{svc.name} exited while measuring its own start")
            time.sleep(0.01)
        return time.perf_counter() - began
    finally:
        stop_group(proc.pid, 10, waiter=proc.wait)


def duplex_start(services: str) -> float:
    inv = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]
    began = time.perf_counter()
    subprocess.run([*inv, "run", "--native", "--detach", "--services", services],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    took = time.perf_counter() - began
    subprocess.run([*inv, "stop"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", default="asr,frontend")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    stack = load_stack(ROOT / "stack.toml")
    the_plan = plan(stack, probe_machine(gpus=0), native=True, services=args.services.split(","))
    own = {n: statistics.median(own_start(the_plan.services[n], ROOT) for _ in range(args.rounds))
           for n in the_plan.start_order}
    memo: dict[str, float] = {}

    def chain(n: str) -> float:
        if n not in memo:
            memo[n] = own[n] + max((chain(d) for d in the_plan.services[n].depends_on), default=0.0)
        return memo[n]
    critical = max(chain(n) for n in own)
    total = statistics.median(duplex_start(args.services) for _ in range(args.rounds))
    for name, secs in own.items():
        print(f"own start {name:<10} {secs:6.2f} s  (plain command, health polled every 10 ms)")
    print(f"critical path           {critical:6.2f} s  ({' -> '.join(the_plan.start_order)})")
    print(f"inv run --native --detach {total:5.2f} s  (CLI wall time, median of {args.rounds})")
    print(f"start overhead          {total - critical:6.2f} s  (target < 0.5 s; includes CLI start-up)")
    print(f"vs slowest own start    {total - max(own.values()):6.2f} s")


if __name__ == "__main__":
    main()
