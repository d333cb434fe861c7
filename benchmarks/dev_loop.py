"""The development loop: time from saving a change in the asr service's source to it being served.

Side by side, in one run, on a copy of the shipped stack, for the asr service on pocketsphinx and
on faster-whisper (the real Whisper base model, served through an olah mirror and prefetched by
duplex into a temporary shared cache):
  plain uvicorn --reload   `python -m uvicorn servers.asr.app:app --reload`, written out here, not
                           taken from the plan (the baseline must not depend on duplex)
  duplex native restart    `inv run --native` with reload = "restart" (uvicorn --reload under duplex)
  duplex native warm       `inv run --native` with reload = "warm" + the asr preload (the shipped stack)
  duplex container         image rebuild (dependencies cached, source copied last) + restart

An edit adds a route with a fresh answer; it counts as served once that answer comes back *and*
/health says the model is ready (a restarted uvicorn answers routes while the model still loads).

Targets: issue 6, duplex restart adds < 0.2 s to plain uvicorn; the container path stays within 1 s
of native. Issue 10, warm is under 0.3 s (benchmarks/warm_reload.py checks stale answers too).

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
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from duplex.host import probe_machine  # noqa: E402
from duplex.layout import Layout  # noqa: E402
from duplex.plan import plan  # noqa: E402
from duplex.run.containers import ContainerRunner  # noqa: E402
from duplex.run.health import wait_healthy  # noqa: E402
from duplex.run.native import process_env, stop_group  # noqa: E402
from duplex.stack import load_stack  # noqa: E402
from duplex.warm import RUNNER  # noqa: E402
from tests.support.net import http_answer  # noqa: E402
from tests.support.stackcopy import copy_stack  # noqa: E402

WHISPER_REPO = "Systran/faster-whisper-base"
INV = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]
PORT = 18711
APP, WATCH, PRELOAD = "servers.asr.app:app", "servers/asr", "servers.asr.loaders:preload"
MODES = ("uvicorn --reload", "duplex restart", "duplex warm", "duplex container")


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
    """Seconds until the new answer is served and /health is 200 (the model loaded)."""
    began = time.perf_counter()
    while http_answer(f"http://127.0.0.1:{port}/__bench", timeout=2) != (200, token):
        if time.perf_counter() - began > timeout:
            raise SystemExit(f"the edit was not served within {timeout}s")
        time.sleep(0.005)
    while (http_answer(f"http://127.0.0.1:{port}/health", timeout=2) or (0,))[0] != 200:
        time.sleep(0.005)
    return time.perf_counter() - began


def edits(port: int, source: Source, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        time.sleep(0.3)  # a developer does not save twice within a watcher's debounce
        times.append(wait_token(port, source.edit()))
    return times


def plain_uvicorn(root: Path, svc, source: Source, rounds: int) -> list[float]:
    """The baseline: uvicorn's own reloader, the command written out here; only the service's
    environment variables (backend, model, cache) come from the plan."""
    python = Layout(root).env_python(svc.env)
    cmd = [str(python), "-m", "uvicorn", APP, "--host", "127.0.0.1", "--port", str(PORT),
           "--reload", "--reload-dir", WATCH]
    proc = subprocess.Popen(cmd, cwd=root, env=process_env(svc, python),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        if wait_healthy(svc.health, lambda: proc.poll() is None) != "healthy":
            raise SystemExit(f"plain uvicorn did not become healthy: {' '.join(cmd)}")
        return edits(PORT, source, rounds)
    finally:
        stop_group(proc.pid, 10, waiter=proc.wait)


def duplex_native(root: Path, env: dict, source: Source, rounds: int) -> list[float]:
    subprocess.run([*INV, "run", "--native", "--detach", "--services", "asr"], cwd=root, env=env,
                   check=True, stdout=subprocess.DEVNULL)
    try:
        return edits(PORT, source, rounds)
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


def set_reload(stack_file: Path, reload: str) -> None:
    """The asr service's reload mode in the copied stack ("restart" takes no preload)."""
    lines = [ln for ln in stack_file.read_text().splitlines() if not ln.startswith(("reload =", "preload ="))]
    at = lines.index("[services.asr]") + 1
    extra = [f'reload = "{reload}"'] + ([f'preload = "{PRELOAD}"'] if reload == "warm" else [])
    stack_file.write_text("\n".join(lines[:at] + extra + lines[at:]) + "\n")


def native_plan(stack_file: Path, reload: str, pins: dict):
    """Plan the native run and check it runs what the row's label says (a mislabelled row is worse
    than none: the stack's default reload mode has changed before)."""
    set_reload(stack_file, reload)
    svc = plan(load_stack(stack_file), probe_machine(gpus=0), native=True, services=["asr"],
               pins=pins).services["asr"]
    runs = "warm" if str(RUNNER) in svc.command else "restart" if "--reload" in svc.command else "?"
    if runs != reload:
        raise SystemExit(f"reload = {reload!r} planned {' '.join(svc.command)}")
    return svc


def one_backend(base: Path, backend: str, rounds: int) -> list[float]:
    root = copy_stack(base / backend, f"bench-{backend}", envs=("asr",))
    stack_file = root / "stack.toml"
    env = {**os.environ, "DUPLEX_STACK": str(stack_file), "DUPLEX_PORT_ASR": str(PORT)}
    if backend == "whisper":
        env["HF_HOME"] = str(whisper_cache(base, root))
        stack_file.write_text(stack_file.read_text().replace(
            '[services.asr.environment]\nASR_BACKEND = "pocketsphinx"',
            f'models = ["{WHISPER_REPO}"]\n[services.asr.environment]\nASR_BACKEND = "whisper"\n'
            f'ASR_MODEL = "{WHISPER_REPO}"\nASR_MODEL_REVISION = "{{revision:{WHISPER_REPO}}}"\n'
            'ASR_LANGUAGE = "en"'))
    os.environ.update({k: v for k, v in env.items() if k.startswith(("HF_", "DUPLEX_"))})
    try:
        from duplex.models import pinned_revision
        pins = {m: pinned_revision(root, m) for m in load_stack(stack_file).services["asr"].models}
        source = Source(root)
        restart = native_plan(stack_file, "restart", pins)
        times = [plain_uvicorn(root, restart, source, rounds), duplex_native(root, env, source, rounds)]
        native_plan(stack_file, "warm", pins)
        times.append(duplex_native(root, env, source, rounds))
        container = plan(load_stack(stack_file), probe_machine(gpus=0), services=["asr"], pins=pins)
        times.append(duplex_container(root, container, source, rounds))
        return [statistics.median(t) for t in times]
    finally:
        for key in [k for k in os.environ if k.startswith(("HF_", "DUPLEX_"))]:
            del os.environ[key]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="pocketsphinx,whisper")
    args = parser.parse_args()
    load_at_start = os.getloadavg()[0]  # 2 shared cores: say how busy the machine was
    saved = {k: v for k, v in os.environ.items() if k.startswith(("HF_", "DUPLEX_"))}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            rows.append((backend, one_backend(Path(tmp), backend, args.rounds)))
            os.environ.update(saved)
    print(f"save-to-served with the model ready, median of {args.rounds} edits (seconds); "
          f"load average {load_at_start:.2f} at start, {os.getloadavg()[0]:.2f} at end")
    print(f"{'backend':<13}" + "".join(f"{m:>18}" for m in MODES) +
          f"{'restart - uvicorn':>18}{'uvicorn / warm':>16}{'container - restart':>21}")
    for backend, (plain, restart, warm, container) in rows:
        print(f"{backend:<13}" + "".join(f"{t:>18.3f}" for t in (plain, restart, warm, container)) +
              f"{restart - plain:>+18.2f}{plain / warm:>15.1f}x{container - restart:>+21.2f}")
    print("targets: restart adds < 0.2 s to uvicorn --reload; container within 1 s of native restart; "
          "warm < 0.3 s")


if __name__ == "__main__":
    main()
