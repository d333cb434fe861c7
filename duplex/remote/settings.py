"""`[remote]` in `duplex.local.toml` beside stack.toml: this developer's GPU box, never committed
(.gitignore lists the file; the sync never sends it). Read by `inv run --on` and the `--on` of
stop/status/logs when no target is given.

    [remote]
    on = "ssh://ana@gpu-box"   # the default target
    port_offset = 0            # the remote binds each port + this (a GPU box shared by several people)
    grace = 30                 # seconds without word from this machine before the remote run stops
    send_token = true          # pass this machine's HF_TOKEN to the remote run (in memory there, never on its disk)
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import DuplexError
from ..stack import tomllib

FILE = "duplex.local.toml"


class RemoteSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    on: str | None = None
    port_offset: int = Field(default=0, ge=0, le=60000)
    grace: float = Field(default=30.0, gt=0, le=3600)
    send_token: bool = True


def load_settings(root: Path) -> RemoteSettings:
    """The `[remote]` table (defaults when the file or table is absent); a broken file is one
    DuplexError line per problem."""
    path = Path(root) / FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return RemoteSettings()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DuplexError(f"{path}: TOML syntax error: {exc}", fix="fix the line named") from None
    unknown = sorted(set(data) - {"remote"})
    if unknown:
        raise DuplexError(f"{path}: unknown table {unknown[0]!r}: this file holds only [remote]",
                          fix="move it to stack.toml, or remove it")
    try:
        return RemoteSettings(**data.get("remote", {}))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise DuplexError(f"{path} [remote]: {problems}",
                          fix="keys: on (ssh://user@host[:port][/path]), port_offset (0-60000), grace "
                          "(seconds), send_token (true/false)") from None
