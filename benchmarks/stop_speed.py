"""How long stopping the default stack takes natively: Ctrl-C on `inv run --native`, and `inv stop`
after `inv run --native --detach` (issue 18: everything ends within 1 s when the services exit
promptly on SIGTERM; dependents first).

Each round starts the stack, waits until every service answers its health URL, then sends the
signal (SIGINT to `inv run`'s process group, as a terminal's Ctrl-C does) or runs `inv stop`, and
measures (a) until the `inv` process exits and (b) until no process of any service is left (zombies
waiting for init to reap them do not count). It also records the order in which the services'
last processes ended, which must be dependents first (frontend before asr).

Usage: python benchmarks/stop_speed.py [--root CHECKOUT] [--rounds 3] [--services asr,frontend]
(--root: another checkout, to measure an older commit the same way; it needs `inv setup` there.)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status < 300
    except OSError:
        return False


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def wait_healthy(root: Path, urls: dict[str, str], proc: subprocess.Popen | None, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while not all(healthy(u) for u in urls.values()):
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"inv run exited with {proc.returncode}:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            raise SystemExit("the stack never became healthy")
        time.sleep(0.1)
    time.sleep(0.5)  # the state file is written right after each start
    state = json.loads((root / ".duplex" / "run" / "state.json").read_text())
    return {n: r["pid"] for n, r in state["services"].items() if r.get("mode") == "native"}


def watch_until_gone(groups: dict[str, int], began: float, limit: float = 30) -> dict[str, float]:
    """Seconds from `began` until each service's group had no live process left."""
    ended: dict[str, float] = {}
    while len(ended) < len(groups) and time.perf_counter() - began < limit:
        for name, pgid in groups.items():
            if name not in ended and not group_members(pgid):
                ended[name] = time.perf_counter() - began
        time.sleep(0.005)
    return ended


def one_round(root: Path, services: str, urls: dict[str, str], how: str) -> tuple[float, float, list[str]]:
    inv = [sys.executable, "-m", "invoke", "--search-root", str(root)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DUPLEX_STACK", None)
    if how == "ctrl-c":
        proc = subprocess.Popen([*inv, "run", "--native", "--skip-preflight", "--services", services], cwd=root,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        groups = wait_healthy(root, urls, proc)
        began = time.perf_counter()
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal sends its foreground group on Ctrl-C
        ended = {}
        import threading
        watcher = threading.Thread(target=lambda: ended.update(watch_until_gone(groups, began)))
        watcher.start()
        proc.wait(60)
        cli = time.perf_counter() - began
        watcher.join()
    else:
        subprocess.run([*inv, "run", "--native", "--detach", "--skip-preflight", "--services", services],
                       cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)
        groups = wait_healthy(root, urls, None)
        began = time.perf_counter()
        import threading
        ended = {}
        watcher = threading.Thread(target=lambda: ended.update(watch_until_gone(groups, began)))
        watcher.start()
        subprocess.run([*inv, "stop"], cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)
        cli = time.perf_counter() - began
        watcher.join()
    if len(ended) < len(groups):
        raise SystemExit(f"{how}: {sorted(set(groups) - set(ended))} still running after 30 s")
    gone = max(ended.values())
    return cli, gone, sorted(ended, key=ended.get)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(HERE))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--services", default="asr,frontend")
    args = parser.parse_args()
    root = Path(args.root).resolve()
    sys.path.insert(0, str(root))
    from duplex.host import probe_machine
    from duplex.plan import plan
    from duplex.stack import load_stack
    the_plan = plan(load_stack(root / "stack.toml"), probe_machine(gpus=0), native=True,
                    services=args.services.split(","))
    urls = {n: s.health.url for n, s in the_plan.services.items()}
    print(f"checkout {root} (commit {_commit(root)}), services {', '.join(the_plan.start_order)}, "
          f"{args.rounds} rounds each")
    for how in ("ctrl-c", "inv stop"):
        clis, gones, orders = [], [], []
        for _ in range(args.rounds):
            cli, gone, order = one_round(root, args.services, urls, how)
            clis.append(cli)
            gones.append(gone)
            orders.append(" then ".join(order))
        print(f"{how:>8}: inv exits {statistics.median(clis):.2f} s median ({min(clis):.2f}-{max(clis):.2f}); "
              f"every service process gone {statistics.median(gones):.2f} s median "
              f"({min(gones):.2f}-{max(gones):.2f}); ended: {'; '.join(sorted(set(orders)))}")


def _commit(root: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip() or "?"
    except OSError:
        return "?"


if __name__ == "__main__":
    main()
