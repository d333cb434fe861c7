"""Where packages come from: the user's pip find-links (honoured by uv too) and the PyTorch index."""

from __future__ import annotations

import configparser
import hashlib
import os
import re
import sys
from pathlib import Path

from .torch_builds import INDEX


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


def local_builds(lock_text: str) -> dict[str, str]:
    """Pins whose version carries a local label (`torch==2.13.0+cpu`): builds that only an index
    such as PyTorch's, or a local wheelhouse, serves. Package -> version."""
    found = re.findall(r"^([A-Za-z0-9][\w.-]*)==([^\s;\\]+\+[\w.]+)", lock_text, flags=re.M)
    return {name.lower().replace("_", "-"): version for name, version in found}


def wheels_for(lock_text: str, links: list[str]) -> dict[str, Path]:
    """The wheels in local find-links folders whose sha256 the lock pins (the torch build a
    wheelhouse holds). File name -> path. Hashing reads each candidate once; only wheels whose
    name matches a pinned `name-version` are read."""
    pinned = set(re.findall(r"--hash=sha256:([0-9a-f]{64})", lock_text))
    pins_ = {(n.lower().replace("-", "_"), v) for n, v in
             re.findall(r"^([A-Za-z0-9][\w.-]*)==([^\s;\\]+)", lock_text, flags=re.M)}
    got: dict[str, Path] = {}
    for link in links:
        folder = Path(link.removeprefix("file://"))
        if not folder.is_dir():
            continue
        for wheel in sorted(folder.glob("*.whl")):
            name, _, rest = wheel.name.partition("-")
            if (name.lower(), rest.split("-", 1)[0]) not in pins_ or wheel.name in got:
                continue
            digest = hashlib.sha256()
            with open(wheel, "rb") as src:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    digest.update(chunk)
            if digest.hexdigest() in pinned:
                got[wheel.name] = wheel
    return got


def index_needed(lock_text: str, links: list[str]) -> bool:
    """Whether installing this lock needs the torch index: not when every local build it pins
    (`+cpu`, `+cu130`) lies in a local wheelhouse with the locked hash. Then an unreachable index
    (offline, air-gapped, this CI) does not stop an install that would never use it."""
    builds = local_builds(lock_text)
    if not builds:
        return False
    have = {(w.partition("-")[0].lower(), w.partition("-")[2].split("-", 1)[0])
            for w in wheels_for(lock_text, links)}
    return any((name.replace("-", "_"), version) not in have for name, version in builds.items())
