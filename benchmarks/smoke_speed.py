"""How long the daily-loop extras take: `smoke` on the running default stack (per check), making
certificates (first CA + cert, reuse, reissue), and debugpy's cost on a native service's start.

    python benchmarks/smoke_speed.py [--repeat 5]

Starts the default stack natively (asr + frontend) in a temporary copy on free ports, like the tests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from duplex.certs import make_certs  # noqa: E402
from duplex.debug import debug_command, debugpy_dir  # noqa: E402
from duplex.host import probe_machine  # noqa: E402
from duplex.plan import base_image, plan  # noqa: E402
from duplex.run.smoke import smoke, targets_at  # noqa: E402
from duplex.run.smoke_gpu import gpu_check  # noqa: E402
from duplex.stack import load_stack  # noqa: E402
from tests.support.envs import ensure_env  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.stackcopy import copy_stack  # noqa: E402


def med(xs: list[float]) -> str:
    return f"median {statistics.median(xs):.3f}s  min {min(xs):.3f}s"


def bench_smoke(tmp: Path, repeat: int) -> None:
    root = copy_stack(tmp / "stack", "smokebench")
    env = {**os.environ, "DUPLEX_STACK": str(root / "stack.toml"),
           "DUPLEX_PORT_ASR": str(free_port()), "DUPLEX_PORT_FRONTEND": str(free_port())}
    inv = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]
    up = subprocess.run([*inv, "run", "--native", "--detach", "--skip-preflight"], cwd=root, env=env,
                        capture_output=True, text=True, timeout=300)
    if up.returncode:
        raise SystemExit(up.stdout + up.stderr)
    try:
        stack = load_stack(root / "stack.toml")
        the_plan = plan(stack, probe_machine(env, gpus=0), native=True)
        totals, per = [], {}
        for _ in range(repeat):
            t = time.perf_counter()
            report = smoke(targets_at(root, the_plan), gpu=gpu_check(False, base_image(stack, probe_machine(env, gpus=0))))
            totals.append(time.perf_counter() - t)
            assert report.ok, report.lines()
            for r in report.results:
                per.setdefault(f"{r.name}/{r.check}", []).append(r.seconds)
        print(f"smoke, whole report (status + plan + checks in parallel): {med(totals)}")
        for name, xs in per.items():
            print(f"  {name:<22} {med(xs)}")
    finally:
        subprocess.run([*inv, "stop", "--all"], cwd=root, env=env, capture_output=True, timeout=120)


def bench_certs(tmp: Path, repeat: int) -> None:
    first, reuse, reissue = [], [], []
    for i in range(repeat):
        root = tmp / f"certs{i}"
        t = time.perf_counter()
        make_certs(root, "demo")
        first.append(time.perf_counter() - t)
        t = time.perf_counter()
        make_certs(root, "demo")
        reuse.append(time.perf_counter() - t)
        t = time.perf_counter()
        make_certs(root, "demo", ["another.example"])
        reissue.append(time.perf_counter() - t)
    print(f"certs: CA + cert {med(first)}; reuse {med(reuse)}; new name -> reissue {med(reissue)}")


def _serve_time(argv: list[str], env: dict, port: int, cwd: Path) -> float:
    t = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                return time.perf_counter() - t
            except OSError:
                time.sleep(0.02)
    finally:
        os.killpg(proc.pid, 15)
        proc.wait()


def bench_debug(tmp: Path, repeat: int) -> None:
    python = ensure_env("frontend") / "bin" / "python"
    t = time.perf_counter()
    tools = debugpy_dir(tmp, python)
    fetch = time.perf_counter() - t
    plain, debug = [], []
    for _ in range(repeat):
        port = free_port()
        argv = [str(python), "-m", "uvicorn", "servers.frontend.app:app", "--host", "127.0.0.1",
                "--port", str(port), "--reload", "--reload-dir", "servers/frontend"]
        plain.append(_serve_time(argv, dict(os.environ), port, ROOT))
        port = free_port()
        argv[argv.index("--port") + 1] = str(port)
        wrapped = debug_command(argv, free_port())
        debug.append(_serve_time(wrapped, {**os.environ, "PYTHONPATH": str(tools)}, port, ROOT))
    print(f"debugpy fetch for {python.name} (uv, first time): {fetch:.2f}s")
    print(f"frontend start to first /health, --reload: plain {med(plain)}; under debugpy {med(debug)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_certs(Path(tmp), args.repeat)
        bench_debug(Path(tmp), args.repeat)
        bench_smoke(Path(tmp), args.repeat)


if __name__ == "__main__":
    main()
