"""Merge duplex's attach configurations into .vscode/launch.json, keeping the user's text as it is.

VS Code reads launch.json as JSONC (comments, trailing commas). Rather than load-and-dump (which
would drop comments and reformat), duplex edits the text in place: it finds the `configurations`
array, replaces the entries it owns (named "duplex: ...") and appends the new ones. Every edit is
verified by re-reading the result: the user's entries must come out identical, or nothing is written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import DuplexError
from .textfile import read_text

PREFIX = "duplex: "


class LaunchJsonError(DuplexError):
    """.vscode/launch.json is not something duplex can merge into safely."""


def mask(text: str) -> str:
    """The same text, same length, with comments and trailing commas blanked out: plain JSON."""
    out, i, n, comma = list(text), 0, len(text), None
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            i, comma = j + 1, None
            continue
        if text.startswith("//", i) or text.startswith("/*", i):
            end = (text.find("\n", i) if text[i + 1] == "/" else text.find("*/", i + 2) + 2)
            end = n if end < (1 if text[i + 1] == "/" else 2) else end
            out[i:end] = [ch if ch == "\n" else " " for ch in text[i:end]]
            i = end
            continue
        if c == ",":
            comma = i
        elif c in "}]":
            if comma is not None:
                out[comma] = " "
            comma = None
        elif not c.isspace():
            comma = None
        i += 1
    return "".join(out)


def _ws(s: str, i: int) -> int:
    while i < len(s) and s[i].isspace():
        i += 1
    return i


def _members(s: str, start: int, close: str) -> list[tuple[str | None, int, int]]:
    """Spans (key, start, end) of an object's values or an array's items; `start` is after the bracket."""
    dec, items, i = json.JSONDecoder(), [], _ws(s, start)
    while s[i] != close:
        key = None
        if close == "}":
            key, i = dec.raw_decode(s, i)
            i = _ws(s, _ws(s, i) + 1)  # past ':'
        _, end = dec.raw_decode(s, i)
        items.append((key, i, end))
        i = _ws(s, end)
        if s[i] == ",":
            i = _ws(s, i + 1)
    return items


def _render(entry: dict, column: int) -> str:
    return json.dumps(entry, indent=4).replace("\n", "\n" + " " * column)


def merge(text: str, entries: list[dict]) -> str:
    """The new launch.json text: duplex's `entries` replaced or appended, everything else untouched."""
    if not text.strip():
        return json.dumps({"version": "0.2.0", "configurations": entries}, indent=4) + "\n"
    try:
        plain = mask(text)
        before = json.loads(plain)
    except ValueError as exc:
        raise LaunchJsonError(f".vscode/launch.json is not valid JSON(C): {exc}",
                              fix="fix the file in your editor, then run again") from exc
    if not isinstance(before, dict) or not isinstance(before.get("configurations", []), list):
        raise LaunchJsonError(".vscode/launch.json has no object with a `configurations` list",
                              fix="add `\"configurations\": []` to it, then run again")
    top = _ws(plain, 0)
    edits: list[tuple[int, int, str]] = []
    members = {k: (a, b) for k, a, b in _members(plain, top + 1, "}")}
    if "configurations" not in members:
        column = 4
        edits.append((top + 1, top + 1, "\n    \"configurations\": [\n        "
                      + ",\n        ".join(_render(e, 8) for e in entries) + "\n    ]"
                      + ("," if members else "\n")))
    else:
        start, end = members["configurations"]
        items = _members(plain, start + 1, "]")
        column = (items[0][1] - plain.rfind("\n", 0, items[0][1]) - 1) if items else 8
        names = {}
        for _, a, b in items:
            value = json.loads(plain[a:b])
            if isinstance(value, dict):
                names.setdefault(value.get("name"), (a, b))
        tail = []
        for entry in entries:
            if entry["name"] in names:
                a, b = names[entry["name"]]
                edits.append((a, b, _render(entry, column)))
            else:
                tail.append(_render(entry, column))
        if tail:
            joined = (",\n" + " " * column).join(tail)
            if items:
                edits.append((items[-1][2], items[-1][2], ",\n" + " " * column + joined))
            else:
                edits.append((start + 1, start + 1, "\n" + " " * column + joined + "\n" + " " * (column - 4)))
    out = text
    for a, b, new in sorted(edits, reverse=True):
        out = out[:a] + new + out[b:]
    _verify(before, json.loads(mask(out)), entries)
    return out


def _verify(before: dict, after: dict, entries: list[dict]) -> None:
    ours = {e["name"] for e in entries}
    kept_before = [c for c in before.get("configurations", []) if not (isinstance(c, dict) and c.get("name") in ours)]
    kept_after = [c for c in after["configurations"] if not (isinstance(c, dict) and c.get("name") in ours)]
    others_same = {k: v for k, v in before.items() if k != "configurations"} == \
        {k: v for k, v in after.items() if k != "configurations"}
    if kept_before != kept_after or not others_same or not all(e in after["configurations"] for e in entries):
        raise LaunchJsonError("merging into .vscode/launch.json would change entries that are not duplex's; "
                              "left it as it was", fix="add the attach configuration by hand: "
                              + json.dumps(entries))


def write_launch_json(root: Path, entries: list[dict]) -> Path:
    """Merge `entries` (named "duplex: <service>") into ROOT/.vscode/launch.json, atomically."""
    path = root / ".vscode" / "launch.json"
    text = read_text(path, what="VS Code launch.json") if path.exists() else ""
    new = merge(text, entries)
    if new != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name("launch.json.duplex-tmp")
        try:
            tmp.write_text(new, encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:  # a full disk: the old launch.json stays whole, no temp file is left
            tmp.unlink(missing_ok=True)
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
    return path
