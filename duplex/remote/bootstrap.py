"""duplex on the remote, in its own venv: `python3 -m venv .venv` and `pip install -e .` in the
synced folder, once (again only when pyproject.toml changes). Nothing else is installed there: the
remote needs Python 3.10+ with its venv module, and a package index its pip reaches."""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

from ..errors import DuplexError
from .ssh import Connection, by_hand, reason

MARK = ".duplex/bootstrap"  # in the remote folder: the pyproject hash its venv was installed from
VENV_INV = ".venv/bin/inv"
# $1 the folder, $2 the pyproject's hash. Exit codes name the failure; tagged lines the state.
SCRIPT = f"""cd -- "$1" || exit 90
command -v python3 >/dev/null 2>&1 || exit 91
python3 -c 'import sys; print("duplex-python=%d.%d" % sys.version_info[:2]); sys.exit(sys.version_info < (3, 10))' || exit 92
if [ -x {VENV_INV} ] && [ "$(cat {MARK} 2>/dev/null)" = "$2" ]; then echo duplex-bootstrap=ready; exit 0; fi
echo duplex-bootstrap=installing
[ -x .venv/bin/python ] || python3 -m venv .venv >&2 || exit 93
.venv/bin/python -m pip install --progress-bar off --disable-pip-version-check -e . || exit 94
mkdir -p .duplex && printf %s "$2" > {MARK}
"""


def carries_duplex(root: Path) -> bool:
    """Whether the project is duplex's own checkout (the remote installs duplex from it)."""
    try:
        return (root / "duplex" / "__init__.py").is_file() and 'name = "duplex"' in (root / "pyproject.toml").read_text()
    except OSError:
        return False


def bootstrap(conn: Connection, say: Callable[[str], None]) -> bool:
    """Make duplex runnable in the remote folder; True when it had to install. One round trip when
    it is already there."""
    root, target = conn.root, conn.target
    if not carries_duplex(root):
        raise DuplexError(f"{root} does not hold duplex's own source (duplex/ and its pyproject.toml), which "
                          f"`--on` installs on {target.host} from the synced copy",
                          fix="run `inv run --on` from the duplex checkout that holds your stack.toml")
    key = hashlib.sha256((root / "pyproject.toml").read_bytes()).hexdigest()[:16]
    start = time.monotonic()
    argv = ["sh", "-c", SCRIPT, "sh", target.path, key]
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = conn.popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True)
        tags = {}
        for line in proc.stdout:
            if line.startswith("duplex-"):
                key_, _, value = line.strip().partition("=")
                tags[key_] = value
                if line.startswith("duplex-bootstrap=installing"):
                    say(f"installing duplex in {target.path} on {target.host} (a venv, then `pip install -e .`: "
                        "the first time only, a minute or two)")
            elif line.startswith("Collecting "):  # pip's progress, a line a package
                say(f"  pip: {line.strip()[:120]}")
            elif line.startswith("Successfully installed"):
                say(f"  pip: installed {len(line.split()) - 2} packages")
        proc.wait()
        err.seek(0)
        proc.stderr = err.read()
    where, version = f"{target.host}:{target.path}", tags.get("duplex-python", "?")
    problems = {
        90: (f"the folder {target.path} is missing on {target.host} after the sync", "run again"),
        91: (f"no python3 on {target.host} (duplex runs there in a venv of its own)",
             f"install Python 3.10+ there (Debian/Ubuntu: `sudo apt-get install python3 python3-venv`); "
             f"`{by_hand(target)} python3 -V` must find it"),
        92: (f"python3 on {target.host} is {version}: duplex needs 3.10 or newer",
             f"install Python 3.10+ there and make it `python3` on the PATH of `{by_hand(target)}`"),
        93: (f"`python3 -m venv` failed on {where}: {reason(proc.stderr) or 'no message'}",
             "install the venv module there (Debian/Ubuntu: `sudo apt-get install python3-venv`)"),
        94: (f"`pip install -e .` failed on {where}: {reason(proc.stderr) or 'no message'}",
             f"run `.venv/bin/pip install -e .` in {target.path} there by hand to see why (a package index "
             "its pip reaches is needed)"),
    }
    if proc.returncode in problems:
        message, fix = problems[proc.returncode]
        raise DuplexError(message, fix=fix)
    conn.raise_for(["sh", "-c", "bootstrap"], proc.returncode, proc.stderr)
    installed = tags.get("duplex-bootstrap") == "installing"
    if installed:
        say(f"installed duplex on {target.host} (Python {version}) in {time.monotonic() - start:.1f} s")
    return installed
