"""The log pump of a detached native service: starts the service, reads its output to the end and
appends it to its log file, whatever happens to the file (a full or read-only disk: lines are
dropped and counted, never does the service block or fail a write), with the service's secrets
masked; exits with the service's exit status.

    python -I logpump.py LOG -- ARGV...    (the service's environment is this process's)

Run by path with the interpreter duplex runs on, never imported: a detached run has no duplex
process left to read a pipe, so this small process is the reader. duplex starts it in a new session,
so it leads the service's process group and `inv stop` signals both; it ignores SIGTERM and SIGINT
itself and ends when the service's output ends, so no line written before the service exits is
lost. Stdlib only. The values to mask come in DUPLEX_LOG_MASK (a JSON list), as duplex.redact's.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

URL_CREDENTIALS = re.compile(rb"(?i)\b([a-z][a-z0-9+.-]*://)([^/\s@'\"<>]+)@")  # as duplex.redact's
BEARER = re.compile(rb"(?i)\b(bearer\s+|basic\s+|(?:access_|api_|auth_)?token=|api_?key=|password=|passwd=|secret=)"
                    rb"(?!\*\*\*)([^\s&\"',;]{4,})")
RETRY = 5.0


def mask(line: bytes, values: list) -> bytes:
    for value in values:
        line = line.replace(value, b"***")
    line = URL_CREDENTIALS.sub(rb"\1***@", line)
    return BEARER.sub(rb"\1***", line)


def _service_signals() -> None:
    """The service gets the default actions back: an ignored SIGTERM survives exec."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def main() -> int:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    path, argv = sys.argv[1], sys.argv[sys.argv.index("--") + 1:]
    values = sorted((v.encode() for v in json.loads(os.environ.pop("DUPLEX_LOG_MASK", "") or "[]")),
                    key=len, reverse=True)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, preexec_fn=_service_signals)
    except OSError as exc:
        print(f"cannot start {argv[0]}: {exc.strerror}", file=sys.stderr)
        return 127
    out, failed_at, lost = None, None, 0
    for line in proc.stdout:
        if out is None and (failed_at is None or time.monotonic() - failed_at >= RETRY):
            try:
                out = open(path, "ab", buffering=0)
                if failed_at is not None:
                    out.write(f"[duplex: {lost} lines of this log were not saved: the file could not be "
                              "written]\n".encode())
                    failed_at, lost = None, 0
            except OSError:
                out, failed_at = None, time.monotonic()
        if out is None:
            lost += 1
            continue
        try:
            out.write(mask(line, values))
        except OSError:
            lost += 1
            try:
                out.close()
            except OSError:
                pass
            out, failed_at = None, time.monotonic()
    code = proc.wait()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
