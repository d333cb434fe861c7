"""What the live dashboard costs and how live it is (issue 19's figures):

  1. start overhead: `inv run --native --detach` with and without the dashboard (median of rounds);
  2. log latency: a line a service writes, until it is drawn in the page (headless Chromium,
     MutationObserver time minus the time the service wrote it; median and p95; target <= 200 ms);
  3. a flood: the service writes 5,000 lines/s for --seconds (60) while the page is open: the page's
     update (render) time p50/p95/max (target < 100 ms), its JS heap and the dashboard process's
     memory before and after (bounded), and the service's own request latency with the page open
     vs without (the same flood, page closed).

It runs a throwaway one-service stack ("chatter", Python's stdlib only) in a temp folder, with the
frontend env's interpreter (`inv setup --env frontend` first).

Usage: python benchmarks/dashboard.py [--seconds 60] [--rate 5000] [--rounds 3] [--marks 40]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHATTER = r'''
import sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

def flood(rate, seconds):
    end, n, began = time.time() + seconds, 0, time.time()
    while time.time() < end:
        n += 1
        sys.stdout.write(f"INFO flood line {n} some ordinary payload text to look like a log line\n")
        if n % 50 == 0:
            sys.stdout.flush()
            time.sleep(max(0.0, began + n / rate - time.time()))
    sys.stdout.flush()

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def do_GET(self):
        url = urlparse(self.path)
        q = parse_qs(url.query)
        if url.path == "/mark":
            print(f"mark {q['id'][0]} {time.time() * 1000:.3f}", flush=True)
        elif url.path == "/flood":
            threading.Thread(target=flood, args=(float(q["rate"][0]), float(q["seconds"][0])), daemon=True).start()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}')

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
'''

STACK = '''[stack]
name = "dashbench"
[envs.frontend]
[services.chatter]
env = "frontend"
command = ["python", "chatter.py", "{port}"]
port = PORT
modes = ["native"]
health = "/health"
start_timeout = 20
'''


def make_stack() -> Path:
    root = Path(tempfile.mkdtemp(prefix="duplex-dashbench-"))
    (root / "chatter.py").write_text(CHATTER)
    from duplex.run.dashboard import free_port
    (root / "stack.toml").write_text(STACK.replace("PORT", str(free_port())))
    (root / "envs" / "frontend").mkdir(parents=True)
    for lock in (ROOT / "envs" / "frontend").iterdir():  # the lock the linked venv was built from
        if lock.is_file():
            (root / "envs" / "frontend" / lock.name).write_bytes(lock.read_bytes())
    venv = ROOT / ".duplex" / "envs" / "frontend"
    if not venv.exists():
        raise SystemExit("no frontend env: run `inv setup --env frontend` first")
    (root / ".duplex" / "envs").mkdir(parents=True)
    (root / ".duplex" / "envs" / "frontend").symlink_to(venv)
    return root


def inv(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DUPLEX_STACK": str(root / "stack.toml")}
    proc = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args], cwd=root,
                          env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"inv {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc


def get(url: str) -> float:
    began = time.perf_counter()
    with urllib.request.urlopen(url, timeout=10) as resp:
        resp.read()
    return time.perf_counter() - began


def start_overhead(root: Path, rounds: int) -> None:
    def once(*flags: str) -> float:
        began = time.perf_counter()
        inv(root, "run", "--native", "--detach", "--skip-preflight", *flags)
        took = time.perf_counter() - began
        inv(root, "stop")
        return took
    once()  # warm the caches
    plain, board = [], []
    for _ in range(rounds):  # interleaved: a shared machine's load drifts
        plain.append(once("--no-dashboard"))
        board.append(once())
    plain_s, board_s = statistics.median(plain), statistics.median(board)
    print(f"inv run --detach without dashboard {plain_s:6.3f} s (median of {rounds}, interleaved)")
    print(f"inv run --detach with dashboard    {board_s:6.3f} s")
    print(f"dashboard start overhead           {board_s - plain_s:+6.3f} s wall (target <= 0.1 s)")
    # what `inv run` itself spends on it: choosing the port, writing its file, spawning the process
    from duplex.run import dashboard as launch
    spent = []
    for _ in range(rounds):
        began = time.perf_counter()
        port, _why = launch.choose_port(None, set())
        launch.start(root, {"stack": "x", "native": True, "order": [], "services": {}, "left_out": {}},
                     port=port, detach=True)
        spent.append(time.perf_counter() - began)
        launch.stop(root)
    print(f"  of which in `inv run` itself     {statistics.median(spent) * 1000:6.1f} ms (port, file, spawn; median)")


OBSERVER = """
window.marks = {};
new MutationObserver(() => {
  for (const div of document.querySelectorAll('#logs div')) {
    const m = /mark (\\d+) ([\\d.]+)/.exec(div.textContent);
    if (m && !(m[1] in window.marks)) window.marks[m[1]] = Date.now() - parseFloat(m[2]);
  }
}).observe(document.getElementById('logs'), {childList: true, subtree: true});
"""


def rss(pid: int) -> int:
    import psutil
    return psutil.Process(pid).memory_info().rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--marks", type=int, default=40)
    args = parser.parse_args()
    from tests.support.browser import chromium, wait_for
    root = make_stack()
    start_overhead(root, args.rounds)
    out = inv(root, "run", "--native", "--detach", "--skip-preflight").stdout
    link = re.search(r"dashboard: (http://\S+)", out).group(1)
    service = re.search(r"chatter\s+(http://\S+)", out).group(1)
    board = json.loads((root / ".duplex" / "run" / "dashboard.json").read_text())["pid"]
    try:
        # the service's request latency under the flood, page closed
        get(f"{service}/flood?rate={args.rate}&seconds={args.seconds}")
        closed = [get(f"{service}/health") for _ in range(int(args.seconds * 5)) if time.sleep(0.2) is None]
        time.sleep(1)
        with chromium() as driver:
            driver.get(link)
            wait_for(lambda: driver.execute_script("return document.querySelectorAll('#logs div').length"), 20,
                     "the log lines", driver)
            driver.execute_script(OBSERVER)
            for i in range(args.marks):
                get(f"{service}/mark?id={i}")
                time.sleep(0.25)
            wait_for(lambda: len(driver.execute_script("return window.marks")) >= args.marks, 10, "every mark")
            lat = sorted(driver.execute_script("return Object.values(window.marks)"))
            print(f"log line to page                   median {statistics.median(lat):5.0f} ms, p95 "
                  f"{lat[int(len(lat) * 0.95) - 1]:5.0f} ms, max {lat[-1]:5.0f} ms over {len(lat)} lines "
                  "(target median <= 200 ms)")
            heap0 = driver.execute_script("return performance.memory.usedJSHeapSize")
            rss0 = rss(board)
            driver.execute_script("window.dashboardStats.renders = []")
            get(f"{service}/flood?rate={args.rate}&seconds={args.seconds}")
            opened = [get(f"{service}/health") for _ in range(int(args.seconds * 5)) if time.sleep(0.2) is None]
            renders = sorted(driver.execute_script("return window.dashboardStats.renders"))
            heap1 = driver.execute_script("return performance.memory.usedJSHeapSize")
            rss1 = rss(board)
            kept = driver.execute_script("return document.getElementById('counts').textContent")
        n = len(renders)
        print(f"flood {args.rate:.0f} lines/s for {args.seconds:.0f} s, page open: {n} updates, render p50 "
              f"{renders[n // 2]:.1f} ms, p95 {renders[int(n * 0.95) - 1]:.1f} ms, max {renders[-1]:.1f} ms "
              "(target < 100 ms)")
        print(f"page JS heap                       {heap0 / 2**20:6.1f} MiB -> {heap1 / 2**20:6.1f} MiB ({kept})")
        print(f"dashboard process memory           {rss0 / 2**20:6.1f} MiB -> {rss1 / 2**20:6.1f} MiB")
        ms = lambda xs: f"p50 {statistics.median(xs) * 1000:5.1f} ms, p95 {sorted(xs)[int(len(xs) * .95) - 1] * 1000:5.1f} ms"
        print(f"service GET /health under flood    page closed {ms(closed)}; page open {ms(opened)}")
    finally:
        inv(root, "stop")


if __name__ == "__main__":
    main()
