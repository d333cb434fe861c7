"""After an install, import every package the env asked for; name any missing undeclared dependency."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import EnvError
from .commands import Progress, run

# Import names whose distribution is called something else.
DISTS = {"yaml": "PyYAML", "cv2": "opencv-python", "PIL": "Pillow", "sklearn": "scikit-learn",
         "google": "protobuf", "attr": "attrs", "dateutil": "python-dateutil", "jwt": "PyJWT",
         "multipart": "python-multipart", "dotenv": "python-dotenv", "OpenSSL": "pyOpenSSL"}
_SCRIPT = r"""
import importlib, importlib.metadata as md, json, re, sys, traceback
wanted = json.loads(sys.argv[1])
def norm(n): return re.sub(r"[-_.]+", "-", n).lower()
tops = {}
for dist in md.distributions():
    name = norm(dist.metadata["Name"] or "")
    if name not in wanted:
        continue
    text = dist.read_text("top_level.txt")
    mods = text.split() if text else sorted({f.parts[0].removesuffix(".py") for f in dist.files or []
        if f.parts and not f.parts[0].endswith((".dist-info", ".data", ".pth")) and f.parts[0] not in
        ("bin", "Scripts", "__pycache__", "..") and (len(f.parts) > 1 or f.parts[0].endswith(".py"))})
    tops[name] = [m for m in mods if m.isidentifier() and not m.startswith("_")
                  and m not in ("tests", "test", "docs", "examples", "benchmarks")]
out = []
for dist, mods in sorted(tops.items()):
    for mod in mods:
        try:
            importlib.import_module(mod)
        except BaseException as exc:
            out.append({"dist": dist, "module": mod, "type": type(exc).__name__, "error": str(exc),
                        "missing": getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None})
print(json.dumps(out))
"""


def check_imports(python: Path, dists: list[str], env: str, requirements: str, progress: Progress) -> None:
    """Raise EnvError naming each package that does not import, and the fix."""
    if not dists:
        return
    progress(f"{env}: importing {len(dists)} top-level package(s) to check the env")
    proc = run([python, "-c", _SCRIPT, json.dumps(dists)], what=f"checking imports in env {env!r}", timeout=600)
    failures = json.loads(proc.stdout.strip().splitlines()[-1])
    if not failures:
        return
    lines, adds = [], []
    for f in failures:
        if f["missing"] and f["missing"].split(".")[0] != f["module"]:
            dep = DISTS.get(f["missing"].split(".")[0], f["missing"].split(".")[0])
            lines.append(f"`import {f['module']}` ({f['dist']}) fails: {f['error']} -- {f['dist']} needs "
                         f"{dep} but does not declare it")
            adds.append(dep)
        else:
            lines.append(f"`import {f['module']}` ({f['dist']}) fails: {f['type']}: {f['error']}")
    fix = (f"add {', '.join(sorted(set(adds)))} to {requirements}, then `inv lock --env {env}` and "
           f"`inv setup --env {env}`" if adds else
           f"pin versions that work together in {requirements}, then `inv lock --env {env}`")
    raise EnvError(f"env {env!r} installed but is broken; the previous env is kept:\n  - " + "\n  - ".join(lines),
                   fix=fix)
