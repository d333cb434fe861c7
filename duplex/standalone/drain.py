"""Wait, bounded, until a server holds no live session: a Kubernetes preStop hook's drain.

A pod that is scaled down or rolled is first taken out of its Service (no new sessions reach it);
this script then keeps the container alive until the sessions it holds have ended, or until
`--timeout` seconds have passed, and only then does the kubelet send SIGTERM. Two ways to count:

- `--metrics URL`: the Prometheus text at URL (asr's and mt's /metrics); the sessions are the sum
  of the `active_sessions` samples. A page without that gauge has nothing to wait for.
- `--ws URL`: a moshi-style server that serves one conversation at a time and sends its ready byte
  0x00 only when free (wscheck.handshake): idle = the handshake answers, busy = it does not yet.

A server that no longer answers at all has nothing left to drain either. Exit 0 once drained,
1 when the timeout passed first (the kubelet records a failed hook and terminates the pod anyway).

Run in the service's own image (python is in every image, nothing else is assumed): Kubernetes
inlines it with `python -c` (duplex.publish.common.drain_command). It imports nothing from duplex.
"""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request

GAUGE = "active_sessions"


def sessions_in(text: str, name: str = GAUGE) -> float | None:
    """The sum of the samples named `name` in Prometheus text exposition; None when there are none."""
    total, seen = 0.0, False
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        rest = line[len(name):]
        if rest[:1] not in ("{", " ", "\t"):
            continue  # active_sessions_total and the like: another metric
        if rest.startswith("{"):
            rest = rest[rest.index("}") + 1:]
        try:
            total += float(rest.split()[0])
            seen = True
        except (IndexError, ValueError):
            continue
    return total if seen else None


def metrics_sessions(url: str, timeout: float) -> tuple[float | None, str]:
    """(live sessions, what was seen); sessions None: nothing to wait for (no gauge, or no server)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            text = reply.read(4 * 2**20).decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        return None, f"{url} answered {exc.code}: nothing to wait for"
    except (OSError, ValueError) as exc:
        return None, f"{url} does not answer ({exc}): nothing to wait for"
    found = sessions_in(text)
    if found is None:
        return None, f"{url} has no {GAUGE} gauge: nothing to wait for"
    return found, f"{found:g} live session(s)"


def ws_sessions(url: str, timeout: float) -> tuple[float | None, str]:
    from wscheck import handshake  # beside this file, or put in sys.modules by the inlined command
    problem = handshake(url, timeout)
    if problem is None:
        return 0.0, "the ready byte came: idle"
    if "no ready byte" in problem:
        return 1.0, "busy with a conversation"
    return None, f"{url}: {problem}: nothing to wait for"


def drain(count, limit: float, every: float, say=print) -> bool:
    """Poll `count()` until it is 0 or nothing (True) or `limit` seconds passed (False)."""
    deadline = time.monotonic() + limit
    while True:
        live, seen = count()
        if not live:
            say(f"drained: {seen}")
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            say(f"drain: gave up after {limit:g} s with {seen}")
            return False
        say(f"drain: {seen}; waiting (at most {left:.0f} s more)")
        time.sleep(min(every, left))


def main(args: list[str]) -> int:
    """(--metrics URL | --ws URL) [--timeout S] [--every S] [--probe-timeout S]"""
    opts = {"--timeout": "3900", "--every": "5", "--probe-timeout": "4"}
    it = iter(args)
    for arg in it:
        opts[arg] = next(it, "")
    probe = float(opts["--probe-timeout"])
    if opts.get("--metrics"):
        url, how = opts["--metrics"], metrics_sessions
    elif opts.get("--ws"):
        url, how = opts["--ws"], ws_sessions
    else:
        print("drain: give --metrics URL or --ws URL", file=sys.stderr)
        return 2
    done = drain(lambda: how(url, probe), float(opts["--timeout"]), float(opts["--every"]),
                 say=lambda line: print(line, flush=True))
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
