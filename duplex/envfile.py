"""Secrets (the Hugging Face token) in the project's .env, read and written as dotenv and Compose do.

`.env` files are written by many tools (`HF_TOKEN="hf_..."`, `export HF_TOKEN=...`, comments after
values), so they are parsed by python-dotenv, the parser those tools follow, not by hand. Writing
keeps every other line as it was, replaces every line that sets the key (with or without `export`),
and goes through a 0600 temporary file renamed into place: the token is never readable by others,
never half written, and never printed.
"""

from __future__ import annotations

import errno
import io
import os
import re
from pathlib import Path
from typing import Iterable

from .errors import DuplexError
from .machine import hf_home
from .redact import MIN_LENGTH, declare, secret_values_env
from .syntax import secret_problem
from .textfile import read_text

DOTENV = ".env (saved by `inv setup --hf-token`)"  # where a token came from, as advice names it
_PLAIN = re.compile(r"^[A-Za-z0-9_./:@+-]*$")  # written unquoted; anything else is quoted


def dotenv_path(root: Path | str) -> Path:
    return Path(root) / ".env"


def read_env(root: Path | str) -> dict[str, str]:
    """Every KEY=value of <root>/.env as dotenv reads it (quotes removed, `export` allowed, comments
    dropped; no `${VAR}` expansion: a secret is taken literally). Empty when there is no .env."""
    try:
        text = read_text(dotenv_path(root), limit=2**20, what=".env file")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise DuplexError(f"{dotenv_path(root)}: cannot read it ({exc.strerror})",
                          fix="check its permissions (`ls -l .env`), or remove it") from None
    from dotenv import dotenv_values  # lazy: `inv --list` imports this module, and most projects have no .env
    return {k: v for k, v in dotenv_values(stream=io.StringIO(text), interpolate=False).items()
            if v is not None}


def read_secret(root: Path | str, key: str) -> str | None:
    """The value KEY has in <root>/.env, or None when it is unset or empty."""
    value = (read_env(root).get(key) or "").strip()
    return value or None


def write_secret(root: Path, key: str, value: str) -> Path:
    """Set KEY=value in <root>/.env with mode 0600, keeping other lines; the value is never printed."""
    from dotenv.parser import parse_stream  # lazy: `inv --list` imports this module
    why = secret_problem(value)
    if why:
        raise DuplexError(f"refusing to save {key}: {why}", fix=f"pass the {key} value exactly as issued")
    path = dotenv_path(root)
    try:
        old = read_text(path, limit=2**20, what=".env file")
    except FileNotFoundError:
        old = ""
    line = f"{key}={_quoted(value)}\n"
    out, placed = [], False
    for binding in parse_stream(io.StringIO(old)):
        if binding.key == key:  # `KEY=`, `export KEY=`, quoted or not: all replaced by one line
            if not placed:
                out.append(line)
                placed = True
            continue
        text = binding.original.string
        out.append(text if text.endswith("\n") else text + "\n")
    if not placed:
        out.append(line)
    _replace(path, "".join(out))
    return path


def _quoted(value: str) -> str:
    if _PLAIN.fullmatch(value):
        return value
    if "'" not in value:
        return f"'{value}'"  # literal in dotenv and Compose
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _replace(path: Path, text: str) -> None:
    """Write a 0600 temporary file beside `path`, flush it to disk, rename it over `path`."""
    tmp = path.with_name(f".env.{os.getpid()}.{os.urandom(3).hex()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)  # whatever the umask
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        raise DuplexError(f"cannot write {path} ({exc.strerror or exc}); it is unchanged",
                          fix="free disk space there" if full else "make the project folder writable by you") from None


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


def use_project_secrets(root: Path | str, names: Iterable[str]) -> None:
    """Once a stack is loaded: the host variables it declares as `secrets` are masked in every output,
    and the token `inv setup --hf-token` saved goes into HF_TOKEN when the environment has none (for the
    hub client and the services)."""
    declare(names)
    load_hf_token(root)


def secret_values(environ: dict[str, str] | None = None, root: Path | str | None = None,
                  names: Iterable[str] = ()) -> set[str]:
    """Every secret value this process can know of: variables named like secrets or declared as
    `secrets` (`names`), credentials inside any URL-valued variable, the project's .env values of
    such names, and the stored Hugging Face login."""
    environ = dict(os.environ if environ is None else environ)
    names = set(names)
    found = secret_values_env(environ, names)
    if root is not None:
        try:
            found |= secret_values_env(read_env(root), names)
        except Exception:  # noqa: BLE001 - an unreadable .env is reported where it is read
            pass
    token_file = environ.get("HF_TOKEN_PATH") or _hf_token_file(environ)
    try:
        found.add(read_text(Path(token_file).expanduser(), limit=64 * 1024).strip())
    except Exception:  # noqa: BLE001 - missing or not a token file: nothing to hide from it
        pass
    return {v for v in found if len(v) >= MIN_LENGTH}


def _hf_token_file(environ: dict[str, str]) -> str:
    return str(Path(hf_home(environ)) / "token")
