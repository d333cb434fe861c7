"""The project's own modules: which the preload pinned, and dropping the others for a fresh import."""

from __future__ import annotations

import importlib
import linecache
import os
import site
import sys

HERE = os.path.dirname(os.path.realpath(__file__))


class Modules:
    """Project modules are those whose file lies under `root` but outside the venv and the reloader."""

    def __init__(self, root: str):
        self.root = os.path.join(os.path.realpath(root), "")
        outside = {sys.prefix, sys.base_prefix, sys.exec_prefix, HERE, *_site_dirs()}
        self.outside = tuple(os.path.join(os.path.realpath(p), "") for p in outside)
        self.pinned: dict[str, str] = {}  # module name -> resolved file: loaded by the preload

    def own(self, module) -> str | None:
        """The module's resolved file (a namespace package: its folder) if it is the project's."""
        file = getattr(module, "__file__", None)
        paths = [file] if file else list(getattr(module, "__path__", None) or [])
        for path in paths:
            real = os.path.realpath(path)
            if real.startswith(self.root) and not real.startswith(self.outside):
                return real
        return None

    def project(self) -> dict[str, str]:
        return {name: file for name, module in list(sys.modules.items())
                if name not in ("__main__", "__mp_main__") and (file := self.own(module))}

    def pin(self) -> None:
        """Call right after the preload: what it imported holds the warm objects' code."""
        self.pinned = self.project()

    def pinned_files(self) -> set[str]:
        return set(self.pinned.values())

    def purge(self) -> list[str]:
        """Forget every unpinned project module, so the next import reads each one from disk."""
        gone = sorted(name for name in self.project() if name not in self.pinned)
        for name in gone:
            module = sys.modules.pop(name, None)
            parent, _, child = name.rpartition(".")
            # `from pkg import mod` returns pkg.mod as an attribute when it exists: a pinned parent
            # package would hand back the old module without importing the new one.
            if parent and getattr(sys.modules.get(parent), child, None) is module:
                delattr(sys.modules[parent], child)
        importlib.invalidate_caches()  # new files in known folders
        linecache.checkcache()  # tracebacks quote the current source
        return gone


def _site_dirs() -> list[str]:
    dirs = [p for p in sys.path if p.rstrip(os.sep).endswith(("site-packages", "dist-packages"))]
    try:
        dirs += site.getsitepackages()
    except AttributeError:  # pragma: no cover - old virtualenv's site module
        pass
    return dirs
