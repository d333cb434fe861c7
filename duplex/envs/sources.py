"""Where packages come from: the user's pip find-links (honoured by uv too) and the PyTorch index."""

from __future__ import annotations

import configparser
import os
import sys
from pathlib import Path

from .torch import INDEX


def pip_config_files(environ: dict[str, str]) -> list[Path]:
    """pip's own search order: site-wide, then per user, then PIP_CONFIG_FILE."""
    home = Path(environ.get("HOME") or Path.home())
    xdg = [Path(p) / "pip" / "pip.conf" for p in (environ.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(":") if p]
    files = [*xdg, Path("/etc/pip.conf"), home / ".pip" / "pip.conf",
             Path(environ.get("XDG_CONFIG_HOME") or home / ".config") / "pip" / "pip.conf",
             Path(sys.prefix) / "pip.conf"]
    if environ.get("PIP_CONFIG_FILE"):
        files.append(Path(environ["PIP_CONFIG_FILE"]))
    return files


def find_links(environ: dict[str, str] | None = None) -> list[str]:
    """Local wheel folders / pages the user gave pip (PIP_FIND_LINKS, pip.conf), so uv sees them too."""
    environ = dict(os.environ if environ is None else environ)
    links: list[str] = []
    for path in pip_config_files(environ):
        parser = configparser.ConfigParser()
        try:
            parser.read(path)
        except (configparser.Error, OSError):
            continue
        for section in ("global", "install"):
            links += parser.get(section, "find-links", fallback="").split()
    links += environ.get("PIP_FIND_LINKS", "").split()
    return [link for i, link in enumerate(links) if link not in links[:i]]


def torch_index(variant: str | None, environ: dict[str, str] | None = None) -> str | None:
    """The index serving torch for a variant; DUPLEX_TORCH_INDEX overrides ('{variant}' is filled in,
    'none' means: take torch from the ordinary sources, e.g. a local wheelhouse)."""
    if not variant or variant == "none":
        return None
    environ = dict(os.environ if environ is None else environ)
    custom = environ.get("DUPLEX_TORCH_INDEX", "").strip()
    if custom.lower() == "none":
        return None
    return (custom or INDEX).format(variant=variant)
