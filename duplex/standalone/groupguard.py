"""The guard of an attached native service: ends the service's whole process group when `inv run`
dies, even by SIGKILL, as `inv stop` would (SIGTERM, then SIGKILL after the grace period).

    python -I groupguard.py PARENT_PID GRACE -- ARGV...    (the service's environment is this one's)

Run by path with the interpreter duplex runs on, never imported. duplex starts it in a new session,
so it leads the service's process group; the service is its child and writes straight to duplex's
pipe. Why a process of its own: PR_SET_PDEATHSIG gives one SIGTERM to the one process duplex forked
and nothing after it. uvicorn's reloader takes that SIGTERM and then waits, without a timeout, for its
worker to drain (and multiprocessing's resource tracker waits for both), a shell dies of it and leaves
its child serving (the death signal is cleared in every grandchild), and none of them is ever sent
SIGKILL. Here the death of duplex is noticed twice over (the death signal, and the parent pid polled,
so a signal lost to a race, such as duplex dying before prctl ran, changes nothing) and the whole
group is stopped. While duplex lives this process only waits: `inv stop` and Ctrl-C signal the group,
and the guard exits with the service's status. Stdlib only, Linux (prctl).
"""

import ctypes
import os
import select
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1
POLL = 0.2


def _service_signals() -> None:
    """The service gets the default actions back: an ignored SIGTERM survives exec."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)


def _members(pgid: int, live: bool = True) -> list[int]:
    """The group's processes other than this one (`live`: zombies, exited but not reaped, left out)."""
    me, found = os.getpid(), []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and not (live and fields[0] == b"Z"):
            found.append(int(entry.name))
    return found


def _end_group(grace: float) -> None:
    """duplex is gone: SIGTERM the group (this guard ignores it), SIGKILL what is left after `grace`."""
    pgid = os.getpgrp()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:  # reap our child, or it would count as alive
                pass
        except ChildProcessError:
            pass
        if not _members(pgid):
            return
        time.sleep(0.05)
    for pid in _members(pgid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _exit_notice(pid: int) -> int | None:
    """A descriptor that becomes readable the moment the service exits (Linux 5.3+), else None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _wait(proc: subprocess.Popen, exited: int | None) -> int | None:
    """The service's exit status, or None after POLL seconds. With a pidfd this returns as the
    service exits: the stop of a whole group waits for this leader, and `proc.wait(timeout)`
    only looks again every few tens of milliseconds."""
    if exited is None:
        try:
            return proc.wait(timeout=POLL)
        except subprocess.TimeoutExpired:
            return None
    select.select([exited], [], [], POLL)
    return proc.poll()


def main() -> int:
    parent, grace = int(sys.argv[1]), float(sys.argv[2])
    argv = sys.argv[sys.argv.index("--") + 1:]
    orphaned = []
    for sig in (signal.SIGTERM, signal.SIGINT):  # from `inv stop` (the service got it too) or the death signal
        signal.signal(sig, lambda *_: orphaned.append(os.getppid() != parent))
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # the parent pid is polled below all the same
    if os.getppid() != parent:  # duplex died before the death signal was asked for: start nothing
        return 143
    try:
        proc = subprocess.Popen(argv, preexec_fn=_service_signals)
    except OSError as exc:
        print(f"cannot start {argv[0]}: {exc.strerror}", file=sys.stderr, flush=True)
        return 127
    exited = _exit_notice(proc.pid)
    while True:
        code = _wait(proc, exited)
        if any(orphaned) or os.getppid() != parent:
            _end_group(grace)
            return 143
        if code is not None:
            if code < 0:  # killed by a signal: die of the same one, so duplex sees what the service saw
                signal.signal(-code, signal.SIG_DFL)
                os.kill(os.getpid(), -code)
            return code


if __name__ == "__main__":
    sys.exit(main())
