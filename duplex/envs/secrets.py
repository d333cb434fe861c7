"""Secrets (the Hugging Face token) in the project's .env: written readable only by the user, read back."""

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


DOTENV = ".env (saved by `inv setup --hf-token`)"  # where a token came from, as advice names it


def read_secret(root: Path | str, key: str) -> str | None:
    """The last non-empty KEY=value in <root>/.env (what write_secret keeps), or None."""
    try:
        lines = (Path(root) / ".env").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    values = [line[len(key) + 1:].strip() for line in lines if line.startswith(f"{key}=")]
    return next((v for v in reversed(values) if v), None)


def hf_token_origin(root: Path | str | None, value: str) -> str:
    """Where an HF_TOKEN value came from: tasks.py copies the .env token into an unset HF_TOKEN, so
    one equal to the .env token is named as the .env one (the advice then says `inv setup --hf-token`)."""
    return DOTENV if root is not None and read_secret(root, "HF_TOKEN") == value else "HF_TOKEN"


def load_hf_token(root: Path | str, environ=None) -> None:
    """HF_TOKEN from the environment, else the one `inv setup --hf-token` saved in <root>/.env."""
    environ = os.environ if environ is None else environ
    if not environ.get("HF_TOKEN"):
        token = read_secret(root, "HF_TOKEN")
        if token:
            environ["HF_TOKEN"] = token
