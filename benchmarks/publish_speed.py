"""How long `inv publish` takes: plan + generation alone, and with each validator (Compose v2
`config` twice, base and CPU override; kubernetes-validate strict against two versions).

    python benchmarks/publish_speed.py [--repeat 5]

`--scaled`: the same default stack, then with replicas and autoscaling (asr 2-6 pods of 8 sessions,
moshi 2-4 of 1) from a capacity file: what the HPAs, budgets, drains and adapter rules cost.

Also times `docker compose up --wait` / `down -v` of the published file for the CPU services when
--run is given (needs the Docker engine and the base image; builds are cached after the first).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from duplex.publish import publish, target_plan  # noqa: E402
from duplex.publish.validate import compose_command  # noqa: E402
from duplex.stack import load_stack  # noqa: E402
from tests.support.timing import timed  # noqa: E402


def median_min(fn, repeat: int) -> tuple[float, float, object]:
    """The median and min seconds of `repeat` calls of `fn`, and what the last call returned."""
    results = []
    runs = timed(lambda: results.append(fn()), repeat)
    return statistics.median(runs), min(runs), results[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--run", action="store_true", help="also time compose up --wait / down -v")
    parser.add_argument("--scaled", action="store_true", help="compare with and without autoscaling")
    args = parser.parse_args()
    if args.scaled:
        return compare_scaled(args.repeat)
    stack = load_stack(ROOT / "stack.toml")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "deploy"
        cases = {
            "plan + generate + write (no validation)": lambda: publish(target_plan(stack, environ={}), out=out, check=False),
            "compose only, validated": lambda: publish(target_plan(stack, environ={}), out=out, k8s=False),
            "k8s only, validated": lambda: publish(target_plan(stack, environ={}), out=out, compose=False),
            "both, validated (inv publish)": lambda: publish(target_plan(stack, environ={}), out=out),
        }
        print(f"stack {stack.name!r}: {', '.join(stack.services)}; median of {args.repeat} (min)")
        for name, fn in cases.items():
            median, low, report = median_min(fn, args.repeat)
            print(f"  {name:<42} {median * 1000:8.1f} ms ({low * 1000:.1f})  {report.seconds}")
    fresh = subprocess.run([sys.executable, "-c", "import time; t = time.perf_counter(); "
                            "from duplex.stack import load_stack; from duplex.publish import publish, target_plan; "
                            "import tempfile, pathlib; d = tempfile.mkdtemp(); "
                            "publish(target_plan(load_stack(), environ={}), out=pathlib.Path(d)); "
                            "print(f'{time.perf_counter() - t:.3f}')"], cwd=ROOT, capture_output=True, text=True)
    print(f"  fresh process, both validated: {fresh.stdout.strip() or fresh.stderr[-300:]} s")
    if args.run:
        run_compose(stack)


SCALED = {"[services.moshi.environment]\n": "replicas = 2\nmax_replicas = 4\nsessions = 1\n\n[services.moshi.environment]\n",
          'preload = "servers.asr.loaders:preload"\n':
              'preload = "servers.asr.loaders:preload"\nreplicas = 2\nmax_replicas = 6\nsessions = 8\n'}


def compare_scaled(repeat: int) -> None:
    """Both outputs, validated, of the default stack as shipped and with replicas + autoscaling."""
    from duplex.capacity import ServiceCapacity, document, parse
    from duplex.publish.scaling import plan_scaling
    with tempfile.TemporaryDirectory() as tmp:
        text = (ROOT / "stack.toml").read_text()
        for old, new in SCALED.items():
            text = text.replace(old, new, 1)
        (Path(tmp) / "stack.toml").write_text(text)
        plain, scaled = load_stack(ROOT / "stack.toml"), load_stack(Path(tmp) / "stack.toml")
        measured = parse(document("duplex", [ServiceCapacity("asr", 2, 8, {}, 13, ""),
                                             ServiceCapacity("moshi", 2, 1, {}, 2, "")], {}, {}), "bench")
        out = Path(tmp) / "deploy"
        cases = {
            "default stack (1 pod each)": lambda: publish(
                target_plan(plain, environ={}), out=out,
                scaling=plan_scaling(plain, list(plain.services))),
            "with replicas + 2 HPAs (capacity file)": lambda: publish(
                target_plan(scaled, environ={}), out=out,
                scaling=plan_scaling(scaled, list(scaled.services), measured, "bench")),
        }
        print(f"inv publish, both outputs validated; median of {repeat} (min)")
        for name, fn in cases.items():
            median, low, report = median_min(fn, repeat)
            print(f"  {name:<42} {median * 1000:8.1f} ms ({low * 1000:.1f})  {report.seconds}  {len(report.files)} files")


def run_compose(stack) -> None:
    out = ROOT / ".duplex" / f"publish-bench-{uuid.uuid4().hex[:6]}"  # context: ../..
    publish(target_plan(stack, environ={}), out=out, k8s=False)
    project = f"pubbench-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "DOCKER_BUILDKIT": "0", "DUPLEX_PORT_ASR": "0", "DUPLEX_PORT_FRONTEND": "0"}
    cmd = [*compose_command(), "-p", project, "-f", "compose.yaml", "-f", "compose.cpu.yaml"]
    try:
        t = time.perf_counter()
        subprocess.run([*cmd, "up", "-d", "--wait"], cwd=out, env=env, check=True, capture_output=True)
        print(f"  compose up --wait (asr + frontend healthy): {time.perf_counter() - t:.1f} s")
    finally:
        t = time.perf_counter()
        subprocess.run([*cmd, "down", "-v"], cwd=out, env=env, capture_output=True)
        print(f"  compose down -v: {time.perf_counter() - t:.1f} s")
        subprocess.run(["rm", "-rf", str(out)])


if __name__ == "__main__":
    main()
