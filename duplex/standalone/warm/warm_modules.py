"""The project's own modules: which the preload pinned, and dropping the others for a fresh import."""

from __future__ import annotations

import importlib
import importlib.machinery
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
        # modules found not to be the project's: a module's file never changes, so each is resolved
        # once (resolving the ~560 modules of the asr server took 19 ms of every reload)
        self.foreign: dict[str, object] = {}

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
        found = {}
        for name, module in list(sys.modules.items()):
            if name in ("__main__", "__mp_main__") or self.foreign.get(name) is module:
                continue
            file = self.own(module)
            if file:
                found[name] = file
            elif getattr(module, "__file__", None):  # a namespace package's folders can grow: asked again
                self.foreign[name] = module
        return found

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


def compile_once(root: str) -> None:
    """Keep the code compiled from each of the project's source files, by its exact bytes: a
    re-import then compiles only the files whose content changed. Without it every reload compiled
    every project module again wherever no .pyc is written (PYTHONDONTWRITEBYTECODE, a read-only
    tree): 10 ms of the asr app's 18-35 ms re-import. Keyed by content, never by mtime, so it cannot
    hand back old code; one entry per file (its latest source)."""
    loader = importlib.machinery.SourceFileLoader
    compile_source = loader.source_to_code
    if getattr(compile_source, "warm_cache", False):
        return
    top = os.path.join(os.path.realpath(root), "")
    known: dict[str, tuple[bytes, object]] = {}

    def source_to_code(self, data, path, *, _optimize=-1):
        if _optimize != -1 or not isinstance(path, str) or not os.path.realpath(path).startswith(top):
            return compile_source(self, data, path, _optimize=_optimize)
        seen = known.get(path)
        if seen is not None and seen[0] == data:
            return seen[1]
        code = compile_source(self, data, path)
        known[path] = (bytes(data), code)
        return code
    source_to_code.warm_cache = True
    loader.source_to_code = source_to_code


def _site_dirs() -> list[str]:
    dirs = [p for p in sys.path if p.rstrip(os.sep).endswith(("site-packages", "dist-packages"))]
    try:
        dirs += site.getsitepackages()
    except AttributeError:  # pragma: no cover - old virtualenv's site module
        pass
    return dirs
