"""MOSHI_VERSION: what was vendored, from where, with which hashes and patches (TOML)."""

from __future__ import annotations

import json
import os
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from ..textfile import TextFileError, read_text
from .errors import VendorError
from .tree import RECORD

HEADER = ("# Written by `inv vendor-moshi`; do not edit by hand.\n"
          "# `inv vendor-moshi --check` verifies third_party/moshi against the [files] table below.\n")
ORDER = ("tag", "version", "source", "url", "archive_sha256", "sha256_verified", "commit", "tree",
         "date", "patches", "licences", "previous", "rolled_back_from", "rolled_back_at", "notes")


def _value(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)


def dumps(meta: dict, files: dict[str, str]) -> str:
    keys = [k for k in ORDER if meta.get(k) not in (None, "")] + sorted(k for k in meta if k not in ORDER)
    lines = [HEADER] + [f"{k} = {_value(meta[k])}" for k in keys if meta.get(k) not in (None, "")]
    lines += ["", "[files]"] + [f"{json.dumps(rel)} = {json.dumps(h)}" for rel, h in sorted(files.items())]
    return "\n".join(lines) + "\n"


def write(tree: Path, meta: dict, files: dict[str, str]) -> None:
    """Write MOSHI_VERSION into ``tree`` (a staging tree or snapshot: never the live one half-way)."""
    path = Path(tree) / RECORD
    tmp = path.with_name(f".{RECORD}.tmp")
    tmp.write_text(dumps(meta, files), encoding="utf-8")
    os.replace(tmp, path)


def read(tree: Path) -> tuple[dict, dict[str, str]] | None:
    """(metadata, files) from a tree's MOSHI_VERSION; None when there is none."""
    path = Path(tree) / RECORD
    if not path.is_file():
        return None
    try:
        data = tomllib.loads(read_text(path, what="MOSHI_VERSION record"))
    except (tomllib.TOMLDecodeError, TextFileError, OSError) as exc:
        raise VendorError(f"{path}: unreadable ({exc})",
                          fix="restore it from git (`git checkout -- third_party/moshi/MOSHI_VERSION`) "
                              "or vendor again with `inv vendor-moshi --tag vX.Y.Z`") from exc
    files = data.pop("files", {})
    return data, files
