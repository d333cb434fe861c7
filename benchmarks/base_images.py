"""Base images from a registry: the first `inv run` (container) on an engine that has pulled
nothing, time to healthy with the base image pull shown apart; and `inv publish --push` of the
default stack (asr + frontend) to a registry.

    python benchmarks/base_images.py [--skip-first-run] [--skip-push]

A real registry (docker-registry) on 127.0.0.1 plays Docker Hub: the air-gapped base image is
pushed into it as library/python:3.11-slim-bookworm, and a second engine of its own (empty: no
image, no build cache) takes it as its --registry-mirror. The push goes from the shared engine
(builds cached, as on a developer's machine after a run). Run under `flock /tmp/duplex-engine.lock`.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.publish.conftest import copy_default  # noqa: E402
from tests.support.gpu_engine import GpuEngine  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.registry import AIR_GAPPED, OFFICIAL, Registry, push_as  # noqa: E402


def inv(stack: Path, *args: str, env: dict) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args], cwd=stack.parent,
                          env={**env, "DUPLEX_STACK": str(stack)}, capture_output=True, text=True, timeout=3600)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"inv {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return took, proc


def first_run(tmp: Path, registry: Registry) -> None:
    engine = GpuEngine(tmp / "engine").start(None, ("--registry-mirror", registry.url))
    stack = copy_default(tmp / "first", "dx23first")
    env = {k: v for k, v in os.environ.items() if k != "DUPLEX_BASE_IMAGE"}
    env.update(DOCKER_HOST=engine.host, DUPLEX_BUILD_NETWORK="host", DUPLEX_PORT_ASR=str(free_port()),
               DUPLEX_PORT_FRONTEND=str(free_port()))
    try:
        took, proc = inv(stack, "run", "--detach", "--services", "frontend", env=env)
        out = proc.stdout + proc.stderr
        pulls = [float(s) for s in re.findall(r"base image pulled in ([\d.]+)s", out)]
        sizes = re.findall(r"base image pulled in [\d.]+s \(([\d.]+ MB)\)", out)
        healthy = re.search(r"all \d+ services healthy in ([\d.]+)s", out)
        print(f"first `inv run --detach` (asr + frontend), nothing pulled: {took:.1f} s to healthy "
              f"(base image pull {sum(pulls):.1f} s{f', {sizes[0]}' if sizes else ''}; "
              f"containers healthy {healthy.group(1) if healthy else '?'} s after start; the rest: builds)")
        inv(stack, "stop", env=env)
        took3, _ = inv(stack, "run", "--detach", "--services", "frontend", env=env)
        print(f"second `inv run --detach` (everything cached): {took3:.1f} s")
        inv(stack, "stop", "--all", env=env)
    finally:
        engine.stop()


def push(tmp: Path, registry: Registry) -> None:
    stack = copy_default(tmp / "push", "dx23push")
    env = {**os.environ, "DUPLEX_BASE_IMAGE": os.environ.get("DUPLEX_BASE_IMAGE", AIR_GAPPED)}  # the shared engine has no mirror
    for round_ in ("first (nothing in the registry)", "again (registry has every layer)"):
        took, proc = inv(stack, "publish", "--registry", f"{registry.host}/bench", "--push", "--services",
                         "frontend", env=env)
        print(f"`inv publish --push` default stack (asr + frontend), {round_}: {took:.1f} s")
    pushed = re.findall(r"pushed (\S+)@sha256", proc.stdout + proc.stderr)  # the shared engine: leave no tags of ours
    subprocess.run(["docker", "rmi", *pushed, "duplex-dx23push-asr:dev", "duplex-dx23push-frontend:dev"],
                   capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-first-run", action="store_true")
    parser.add_argument("--skip-push", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="duplex-bench-") as tmp_name:
        tmp = Path(tmp_name)
        registry = Registry(tmp / "registry").start()
        try:
            t0 = time.perf_counter()
            push_as(AIR_GAPPED, f"{registry.host}/library/{OFFICIAL}")
            print(f"seeding the registry with the base image: {time.perf_counter() - t0:.1f} s")
            if not args.skip_first_run:
                first_run(tmp, registry)
            if not args.skip_push:
                push(tmp, registry)
        finally:
            registry.stop()


if __name__ == "__main__":
    main()
