"""What the shipped servers share in reading their settings from the environment (no imports
beyond the standard library: a server's settings load before its heavy packages)."""

from __future__ import annotations

from typing import Mapping


class SettingsError(ValueError):
    """A setting the server cannot run with; the message names the variable and what it accepts."""


def positive(env: Mapping[str, str], name: str, default, kind=int):
    """`name` as a number greater than 0 (`kind`: int or float), or `default` when unset or empty."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not {'a whole number' if kind is int else 'a number'}") from None
    if value <= 0:
        raise SettingsError(f"{name}={raw!r} must be greater than 0")
    return value
