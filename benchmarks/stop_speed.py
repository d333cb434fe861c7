"""How long stopping the default stack takes natively: Ctrl-C on `inv run --native`, the same
signal sent to `inv` alone (SIGINT or SIGTERM), and `inv stop` after `inv run --native --detach`
(issues 18 and 33: everything ends within 1 s when the services exit promptly on SIGTERM;
dependents first).

Each round starts the stack, waits until every service answers its health URL, then sends the
signal or runs `inv stop`: "ctrl-c" is SIGINT to `inv run`'s process group, as a terminal's Ctrl-C
does; "kill -INT" and "kill -TERM" go to the `inv` process alone, as an IDE's stop button, a CI
timeout or a process manager send them. It measures (a) until the `inv` process exits and (b)
until no process of any service is left (zombies waiting for init to reap them do not count). It
also records the order in which the services' last processes ended, which must be dependents first
(frontend before asr), and that the run state is cleared.

Usage: python benchmarks/stop_speed.py [--root CHECKOUT] [--rounds 3] [--services asr,frontend]
       [--how ctrl-c,kill -INT,kill -TERM,inv stop] [--page]
(--page: the dashboard's event stream is held open during each stop, as a browser tab on its link
holds it.)
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
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))
from tests.support.event_stream import open_event_stream  # noqa: E402

GOAL = 1.0  # seconds from the signal (or from typing `inv stop`) until `inv` has exited (issues 18, 33)


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


def wait_healthy(root: Path, urls: dict[str, str], proc: subprocess.Popen | None, output: list[str] | None = None,
                 timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while not all(healthy(u) for u in urls.values()):
        if proc is not None and proc.poll() is not None:
            time.sleep(0.2)  # its last lines
            raise SystemExit(f"inv run exited with {proc.returncode}:\n{''.join(output or [])}")
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


SIGNALS = {  # how: (signal, whether to the whole process group)
    "ctrl-c": (signal.SIGINT, True),  # what the terminal sends its foreground group on Ctrl-C
    "kill -INT": (signal.SIGINT, False),  # to `inv` alone: an IDE's stop button, `kill -INT PID`
    "kill -TERM": (signal.SIGTERM, False),  # to `inv` alone: a CI timeout, a process manager
}


def _default_sigint() -> None:
    """A benchmark started in the background by a script (`python stop_speed.py &`) has SIGINT
    ignored (POSIX), and so would `inv run`: it is a terminal's, an IDE's `inv` that is measured."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def open_page(root: Path) -> None:
    """Hold the dashboard's event stream open, as a browser tab on the printed link does."""
    open_event_stream(json.loads((root / ".duplex" / "run" / "dashboard.json").read_text()))


def one_round(root: Path, services: str, urls: dict[str, str], how: str,
              page: bool = False) -> tuple[float, float, list[str]]:
    inv = [sys.executable, "-m", "invoke", "--search-root", str(root)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DUPLEX_STACK", None)
    ended: dict[str, float] = {}
    if how in SIGNALS:
        sig, group = SIGNALS[how]
        proc = subprocess.Popen([*inv, "run", "--native", "--skip-preflight", "--services", services], cwd=root,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True, preexec_fn=_default_sigint)
        # its output is read all along: a full pipe would stall the run being measured
        output: list[str] = []
        threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True).start()
        groups = wait_healthy(root, urls, proc, output)
        if page:
            open_page(root)
        began = time.perf_counter()
        if group:
            os.killpg(proc.pid, sig)
        else:
            os.kill(proc.pid, sig)
        watcher = threading.Thread(target=lambda: ended.update(watch_until_gone(groups, began)))
        watcher.start()
        proc.wait(60)
        cli = time.perf_counter() - began
        watcher.join()
    else:
        subprocess.run([*inv, "run", "--native", "--detach", "--skip-preflight", "--services", services],
                       cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)
        groups = wait_healthy(root, urls, None)
        if page:
            open_page(root)
        began = time.perf_counter()
        watcher = threading.Thread(target=lambda: ended.update(watch_until_gone(groups, began)))
        watcher.start()
        subprocess.run([*inv, "stop"], cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)
        cli = time.perf_counter() - began
        watcher.join()
    if len(ended) < len(groups):
        raise SystemExit(f"{how}: {sorted(set(groups) - set(ended))} still running after 30 s")
    if (root / ".duplex" / "run" / "state.json").exists():
        raise SystemExit(f"{how}: the run state is still there after the stop")
    gone = max(ended.values())
    return cli, gone, sorted(ended, key=ended.get)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(HERE))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--services", default="asr,frontend")
    parser.add_argument("--page", action="store_true",
                        help="hold the dashboard's event stream open, as a browser tab on its link does")
    parser.add_argument("--how", default=",".join([*SIGNALS, "inv stop"]),
                        help="comma-separated: " + ", ".join([*SIGNALS, "inv stop"]))
    args = parser.parse_args()
    root = Path(args.root).resolve()
    sys.path.insert(0, str(root))
    from duplex.host import probe_machine
    from duplex.plan import plan
    from duplex.stack import load_stack
    the_plan = plan(load_stack(root / "stack.toml"), probe_machine(gpus=0), native=True,
                    services=args.services.split(","))
    urls = {n: s.health.url for n, s in the_plan.services.items()}
    hows = [h for h in args.how.split(",") if h]
    unknown = [h for h in hows if h not in (*SIGNALS, "inv stop")]
    if unknown:
        raise SystemExit(f"--how: unknown {', '.join(unknown)} (known: {', '.join([*SIGNALS, 'inv stop'])})")
    print(f"checkout {root} (commit {_commit(root)}), services {', '.join(the_plan.start_order)}, "
          f"{args.rounds} rounds each, interleaved{'; the dashboard page open' if args.page else ''}; load average {os.getloadavg()[0]:.2f} at start")
    results: dict[str, list[tuple[float, float, str]]] = {h: [] for h in hows}
    for _ in range(args.rounds):  # one of each per round: a load that comes and goes hits them alike
        for how in hows:
            cli, gone, order = one_round(root, args.services, urls, how, args.page)
            results[how].append((cli, gone, " then ".join(order)))
    width = max(len(h) for h in hows)
    for how, rows in results.items():
        clis, gones = [r[0] for r in rows], [r[1] for r in rows]
        median = statistics.median(clis)
        print(f"{how:>{width}}: inv exits {median:.2f} s median ({min(clis):.2f}-{max(clis):.2f}), "
              f"{'within' if median <= GOAL else 'OVER'} the {GOAL:g} s goal; every service process gone "
              f"{statistics.median(gones):.2f} s median ({min(gones):.2f}-{max(gones):.2f}); "
              f"ended: {'; '.join(sorted({r[2] for r in rows}))}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


def _commit(root: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip() or "?"
    except OSError:
        return "?"


if __name__ == "__main__":
    main()
