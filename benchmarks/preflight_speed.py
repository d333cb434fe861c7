"""How long `inv preflight` takes on this machine: in-process (probes + checks) and as a fresh process.

    python benchmarks/preflight_speed.py [--repeat 5]

Cases: the shipped stack in container mode, in native mode, and with moshi named (a model to look up on a
hub that does not answer: HF_ENDPOINT's default here has no DNS, a closed local port, and a port that
accepts and never answers, the worst case: it costs the hub timeout, DUPLEX_PREFLIGHT_TIMEOUT).
Last, the real CLI as a user runs it (`python -m invoke preflight --json`) with that hanging hub.
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
from duplex.host import probe_machine
from duplex.stack import load_stack
stack = load_stack()
report = run_preflight(stack, plan(stack, probe_machine(), native={native}, services={services!r}))
print(f"{{time.perf_counter() - t:.3f}} {{report.exit_code}}")
"""


def _silent_port() -> int:
    """A port that accepts connections and never answers: the worst hub (a proxy that swallows requests)."""
    import socket
    if hasattr(_silent_port, "sock"):
        return _silent_port.sock.getsockname()[1]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    _silent_port.sock = sock  # keep it open for the whole run
    return sock.getsockname()[1]


def in_process(repeat: int) -> None:
    from duplex.host import probe_machine
    from duplex.plan import plan
    from duplex.preflight import run_preflight
    from duplex.stack import load_stack
    stack = load_stack(ROOT / "stack.toml")
    print(f"in-process run_preflight, {repeat} runs each (median / max):")
    cases = {**CASES, "moshi, hub accepts and never answers": _hanging()}
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


def _hanging() -> dict:
    return dict(native=False, services=["moshi"], environ={"HF_ENDPOINT": f"http://127.0.0.1:{_silent_port()}"})


def fresh_process(repeat: int) -> None:
    print(f"fresh python process (imports + plan + preflight), {repeat} runs each (median / max):")
    for label, case in {**CASES, "moshi, hub accepts and never answers": _hanging()}.items():
        code = FRESH.format(native=case["native"], services=case["services"])
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **case["environ"]},
                           capture_output=True, text=True, check=False)
            times.append(time.perf_counter() - started)
        print(f"  {label:<44} {statistics.median(times):6.3f} s / {max(times):6.3f} s")


def real_cli(repeat: int) -> None:
    """`inv preflight` end to end: invoke's start-up, tasks.py, .env, the checks, the JSON."""
    print(f"`python -m invoke preflight --json --services moshi`, hub hanging, {repeat} runs (median / max):")
    environ = {**os.environ, **_hanging()["environ"]}
    times, codes = [], set()
    for _ in range(repeat):
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "invoke", "preflight", "--json", "--services", "moshi"],
                              cwd=ROOT, env=environ, capture_output=True, text=True, check=False, timeout=60)
        times.append(time.perf_counter() - started)
        codes.add(proc.returncode)
    print(f"  {'inv preflight, hub accepts and never answers':<44} {statistics.median(times):6.3f} s / "
          f"{max(times):6.3f} s   exit {sorted(codes)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    in_process(args.repeat)
    fresh_process(args.repeat)
    real_cli(args.repeat)
