"""The development loop: time from saving a change in the asr service's source to it being served.

Side by side, in one run, on a copy of the shipped stack:
  plain uvicorn --reload (the baseline)  vs  duplex native (uvicorn --reload under duplex)
  vs  duplex container (image rebuild with dependencies cached, source copied last, + restart),
for the asr service on pocketsphinx and on faster-whisper (the real Whisper base model, served
through an olah mirror and downloaded into a temporary shared cache).

Targets (issue 6): duplex adds < 0.2 s to plain uvicorn's reload natively; the container path stays
within 1 s of the native path.

Usage: python benchmarks/dev_loop.py [--rounds 3] [--backends pocketsphinx,whisper]
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
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from duplex.containers import ContainerRunner  # noqa: E402
from duplex.health import wait_healthy  # noqa: E402
from duplex.native import argv, process_env, stop_group, venv_python  # noqa: E402
from duplex.plan import plan  # noqa: E402
from duplex.probe import probe_machine  # noqa: E402
from duplex.stack import load_stack  # noqa: E402
from tests.support.stackcopy import copy_stack  # noqa: E402

WHISPER_REPO = "Systran/faster-whisper-base"
INV = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]


def fetch_token(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.read().decode()
    except OSError:
        return None


class Source:
    """Edits servers/asr/app.py the way a developer does: a new route with a fresh answer."""

    def __init__(self, root: Path):
        self.path = root / "servers" / "asr" / "app.py"
        self.original = self.path.read_text()

    def edit(self) -> str:
        token = uuid.uuid4().hex
        self.path.write_text(self.original + f'\n\n@app.get("/__bench")\ndef _bench():\n    return "{token}"\n')
        return token


def wait_token(port: int, token: str, timeout: float = 120) -> float:
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        if (fetch_token(f"http://127.0.0.1:{port}/__bench") or "").strip('"') == token:
            return time.perf_counter() - began
        time.sleep(0.01)
    raise SystemExit(f"the edit was not served within {timeout}s")


def plain_uvicorn(root: Path, svc, source: Source, rounds: int) -> list[float]:
    python = venv_python(root, svc.env)
    proc = subprocess.Popen(argv(svc, python), cwd=root, env=process_env(svc, python),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_healthy(svc.health, lambda: proc.poll() is None)
        return [wait_token(svc.port, source.edit()) for _ in range(rounds)]
    finally:
        stop_group(proc.pid, 10, waiter=proc.wait)


def duplex_native(root: Path, env: dict, svc, source: Source, rounds: int) -> list[float]:
    subprocess.run([*INV, "run", "--native", "--detach", "--services", "asr"], cwd=root, env=env,
                   check=True, stdout=subprocess.DEVNULL)
    try:
        return [wait_token(svc.port, source.edit()) for _ in range(rounds)]
    finally:
        subprocess.run([*INV, "stop"], cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)


def duplex_container(root: Path, the_plan, source: Source, rounds: int) -> list[float]:
    svc = the_plan.services["asr"]
    runner = ContainerRunner(root, the_plan.stack)
    quiet = lambda _line: None  # noqa: E731
    runner.prepare([svc], quiet)
    handle = runner.start(svc, None)
    times = []
    try:
        wait_healthy(svc.health, lambda: handle.exit_code() is None)
        for _ in range(rounds):
            token = source.edit()
            began = time.perf_counter()
            runner.prepare([svc], quiet)  # rebuild: only the source layer changes
            handle.stop(10)
            handle = runner.start(svc, None)
            wait_token(svc.port, token)
            times.append(time.perf_counter() - began)
    finally:
        handle.stop(10)
    return times


def whisper_cache(base: Path, root: Path) -> Path:
    """The real Whisper base model, through a real HF-compatible mirror, prefetched and pinned."""
    from duplex.models import prefetch
    from tests.support.hub import Mirror
    from tests.support.whisper_model import FILES, whisper_base_dir
    model = whisper_base_dir()
    hf_home = base / "hf"
    with Mirror(base / "mirror") as mirror:
        mirror.repo(WHISPER_REPO).commit({name: model / name for name in FILES})
        prefetch(root, [WHISPER_REPO], hf_home=hf_home, token_present=False, endpoint=mirror.endpoint)
    return hf_home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="pocketsphinx,whisper")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for backend in args.backends.split(","):
            root = copy_stack(base / backend, f"bench-{backend}", envs=("asr",))
            env = {**os.environ, "DUPLEX_STACK": str(root / "stack.toml"), "DUPLEX_PORT_ASR": "18711"}
            if backend == "whisper":
                env["HF_HOME"] = str(whisper_cache(base, root))
                stack_file = root / "stack.toml"
                stack_file.write_text(stack_file.read_text().replace(
                    '[services.asr.environment]\nASR_BACKEND = "pocketsphinx"',
                    f'models = ["{WHISPER_REPO}"]\n[services.asr.environment]\nASR_BACKEND = "whisper"\n'
                    f'ASR_MODEL = "{WHISPER_REPO}"\nASR_MODEL_REVISION = "{{revision:{WHISPER_REPO}}}"\n'
                    'ASR_LANGUAGE = "en"'))
            os.environ.update({k: v for k, v in env.items() if k.startswith(("HF_", "DUPLEX_"))})
            stack = load_stack(root / "stack.toml")
            machine = probe_machine(gpus=0)
            from duplex.models import pinned_revision
            pins = {m: pinned_revision(root, m) for m in stack.services["asr"].models}
            native_plan = plan(stack, machine, native=True, services=["asr"], pins=pins)
            container_plan = plan(stack, machine, services=["asr"], pins=pins)
            source = Source(root)
            plain = plain_uvicorn(root, native_plan.services["asr"], source, args.rounds)
            native = duplex_native(root, env, native_plan.services["asr"], source, args.rounds)
            container = duplex_container(root, container_plan, source, args.rounds)
            rows.append((backend, statistics.median(plain), statistics.median(native),
                         statistics.median(container)))
            for key in [k for k in os.environ if k.startswith(("HF_", "DUPLEX_"))]:
                del os.environ[key]
    print(f"save-to-served, median of {args.rounds} edits (seconds)")
    print(f"{'backend':<13} {'uvicorn --reload':>17} {'duplex native':>14} {'+overhead':>10} "
          f"{'duplex container':>17} {'container - native':>19}")
    for backend, plain, native, container in rows:
        print(f"{backend:<13} {plain:>17.2f} {native:>14.2f} {native - plain:>+10.2f} "
              f"{container:>17.2f} {container - native:>+19.2f}")
    print("targets: native overhead < 0.2 s; container within 1 s of native")


if __name__ == "__main__":
    main()
