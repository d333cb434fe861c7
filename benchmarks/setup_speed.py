"""How fast `inv setup` is: cold setup of one small env with uv vs virtualenv + pip, and a warm no-op.

Usage: python benchmarks/setup_speed.py [--repeat 3] [--requirements "fastapi uvicorn"]
Builds real venvs in a temporary project from one hash-pinned lock (locked once with uv). The no-op is
timed three ways: provision_env in-process, a bare Python process calling it, and the real whole-process
`inv setup` (`python -m invoke setup`) against that project's stack file, beside `invoke --version`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from duplex.envs import lock_env, provision_env  # noqa: E402
from tests.support.envs import Spec  # noqa: E402
from tests.support.timing import timed  # noqa: E402

SPEC = Spec(python="3.11")


NOOP = ("import sys, time; t = time.perf_counter(); sys.path.insert(0, sys.argv[1]);"
        "from pathlib import Path; from duplex.envs import provision_env\n"
        "class S: python='3.11'; requirements=None; torch='none'; fixes=[]; system_libs=[]\n"
        "r = provision_env(Path(sys.argv[2]), 'bench', S()); assert r.reused\n")


STACK = """[envs.bench]
python = "3.11"
[services.api]
env = "bench"
command = ["python", "-c", "pass"]
port = 9199
modes = ["native"]
"""


def whole_process(cmd: list[str], env: dict[str, str], repeat: int) -> list[float]:
    return timed(lambda: subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL), repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--requirements", default="fastapi uvicorn httpx")
    args = parser.parse_args()
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "envs/bench").mkdir(parents=True)
        (root / "envs/bench/requirements.in").write_text("\n".join(args.requirements.split()) + "\n")
        lock = lock_env(root, "bench", SPEC)
        packages = sum(1 for line in lock.read_text().splitlines() if "==" in line)
        print(f"env: {args.requirements} -> {packages} pinned packages, Python 3.11, {args.repeat} runs each")
        cold = {}
        for installer in ("uv", "pip"):
            provision_env(root, "bench", SPEC, installer=installer, force=True)  # warm the download caches
            runs = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                provision_env(root, "bench", SPEC, installer=installer, force=True)
                runs.append(time.perf_counter() - start)
            cold[installer] = statistics.median(runs)
            print(f"cold setup, {installer:<3}: median {cold[installer]:.2f} s  (runs: "
                  + ", ".join(f"{r:.2f}" for r in runs) + ")")
        print(f"uv is {cold['pip'] / cold['uv']:.1f}x faster than virtualenv + pip")
        calls, procs = [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            assert provision_env(root, "bench", SPEC).reused
            calls.append(time.perf_counter() - start)
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", NOOP, str(repo), str(root)], check=True)
            procs.append(time.perf_counter() - start)
        print(f"no-op (reuse) setup: {statistics.median(calls) * 1000:.1f} ms in-process, "
              f"{statistics.median(procs):.2f} s as a bare Python process calling it")
        (root / "stack.toml").write_text(STACK)
        env = {**os.environ, "DUPLEX_STACK": str(root / "stack.toml")}
        invoke = [sys.executable, "-m", "invoke", "--search-root", str(repo)]
        floor = whole_process([*invoke, "--version"], env, args.repeat)
        setup = whole_process([*invoke, "setup"], env, args.repeat)
        print(f"no-op `inv setup`, whole process: median {statistics.median(setup):.2f} s (runs: "
              + ", ".join(f"{r:.2f}" for r in setup) + f"); `invoke --version` alone {statistics.median(floor):.2f} s")


if __name__ == "__main__":
    main()
