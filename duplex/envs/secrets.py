"""Write secrets (the Hugging Face token) to the project's .env, readable only by the user."""

from __future__ import annotations

import os
from pathlib import Path


def write_secret(root: Path, key: str, value: str) -> Path:
    """Set KEY=value in <root>/.env with mode 0600, keeping other lines; the value is never printed."""
    path = Path(root) / ".env"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    lines = [line for line in lines if not line.startswith(f"{key}=")] + [f"{key}={value}"]
    tmp = path.with_name(f".env.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path
