"""How long `inv preflight` takes on this machine: in-process (probes + checks) and as a fresh process.

    python benchmarks/preflight_speed.py [--repeat 5]

Cases: the shipped stack in container mode, in native mode, and with moshi named (a model to look up on a
hub that does not answer: HF_ENDPOINT's default here has no DNS, plus a closed local port).
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
sys.path.insert(0, str(ROOT))

CASES = {
    "container": dict(native=False, services=None, environ={}),
    "native": dict(native=True, services=None, environ={}),
    "moshi, hub unreachable (default endpoint)": dict(native=False, services=["moshi"], environ={}),
    "moshi, hub port closed": dict(native=False, services=["moshi"], environ={"HF_ENDPOINT": "http://127.0.0.1:9"}),
}

FRESH = """
import sys, time
t = time.perf_counter()
from duplex.plan import plan
from duplex.preflight import run_preflight
from duplex.probe import probe_machine
from duplex.stack import load_stack
stack = load_stack()
report = run_preflight(stack, plan(stack, probe_machine(), native={native}, services={services!r}))
print(f"{{time.perf_counter() - t:.3f}} {{report.exit_code}}")
"""


def _silent_port() -> int:
    """A port that accepts connections and never answers: the worst hub (a proxy that swallows requests)."""
    import socket
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    _silent_port.sock = sock  # keep it open for the whole run
    return sock.getsockname()[1]


def in_process(repeat: int) -> None:
    from duplex.plan import plan
    from duplex.preflight import run_preflight
    from duplex.probe import probe_machine
    from duplex.stack import load_stack
    stack = load_stack(ROOT / "stack.toml")
    print(f"in-process run_preflight, {repeat} runs each (median / max):")
    cases = {**CASES, "moshi, hub accepts and never answers": dict(
        native=False, services=["moshi"], environ={"HF_ENDPOINT": f"http://127.0.0.1:{_silent_port()}"})}
    for label, case in cases.items():
        environ = {**os.environ, **case["environ"]}
        the_plan = plan(stack, probe_machine(environ), native=case["native"], services=case["services"])
        times, codes = [], set()
        for _ in range(repeat):
            started = time.perf_counter()
            report = run_preflight(stack, the_plan, environ=environ)
            times.append(time.perf_counter() - started)
            codes.add(report.exit_code)
        print(f"  {label:<44} {statistics.median(times):6.3f} s / {max(times):6.3f} s   exit {sorted(codes)}  "
              f"({len(report.results)} results)")


def fresh_process(repeat: int) -> None:
    print(f"fresh python process (imports + plan + preflight), {repeat} runs each (median / max):")
    for label, case in CASES.items():
        code = FRESH.format(native=case["native"], services=case["services"])
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **case["environ"]},
                           capture_output=True, text=True, check=False)
            times.append(time.perf_counter() - started)
        print(f"  {label:<44} {statistics.median(times):6.3f} s / {max(times):6.3f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    in_process(args.repeat)
    fresh_process(args.repeat)
