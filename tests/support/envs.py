"""Test envs: `.duplex/envs/<env>` built from `envs/<env>/requirements.lock`, reused while the lock is unchanged."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STAMP = ".duplex-lock-sha256"


def ensure_env(name: str, python: str = "3.11") -> Path:
    """Return `.duplex/envs/<name>`, (re)built with uv from its hash-pinned lock when stale."""
    lock = ROOT / "envs" / name / "requirements.lock"
    venv = ROOT / ".duplex" / "envs" / name
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    stamp = venv / STAMP
    if (venv / "bin" / "python").exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return venv
    uv = [sys.executable, "-m", "uv"]
    subprocess.run([*uv, "venv", "--quiet", "--allow-existing", "--python", python, str(venv)], check=True)
    subprocess.run([*uv, "pip", "install", "--quiet", "--require-hashes", "--python", str(venv / "bin" / "python"),
                    "-r", str(lock)], check=True)
    stamp.write_text(digest + "\n")
    return venv
