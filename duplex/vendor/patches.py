"""The local patch queue: third_party/patches/moshi/*.patch, applied in name order to a fresh tree."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from .errors import PatchError, VendorError
from .tree import file_sha256

PATCH_DIR = Path("third_party") / "patches" / "moshi"


def queue(root: Path) -> list[Path]:
    """The patches, in the order they apply (sorted by file name: 0001-..., 0002-...)."""
    folder = Path(root) / PATCH_DIR
    return sorted(folder.glob("*.patch")) if folder.is_dir() else []


def strip_level(text: str) -> int:
    """-p for a patch made in the vendored tree (a/moshi/x.py: 1) or from the repo root
    (a/third_party/moshi/moshi/x.py: 3)."""
    return 3 if re.search(r"^\+\+\+ b/third_party/moshi/", text, re.M) else 1


def apply_all(root: Path, tree: Path, progress=lambda _: None) -> list[dict]:
    """Apply every patch to ``tree`` (a staging copy); stop at the first that fails, naming the hunk."""
    applied = []
    for patch in queue(root):
        apply_one(patch, tree)
        progress(f"applied {patch.name}")
        applied.append({"name": patch.name, "sha256": file_sha256(patch)})
    return applied


def apply_one(patch: Path, tree: Path) -> None:
    text = patch.read_text(encoding="utf-8", errors="replace")
    strip = f"-p{strip_level(text)}"
    # The tree sits inside the project's git repo: stop git from finding it, so paths are the tree's own.
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(Path(tree).resolve().parent)}
    if shutil.which("git"):
        base = ["git", "apply", strip, "--whitespace=nowarn"]
        check = subprocess.run([*base, "--check", "-v", str(patch)], cwd=tree, env=env,
                               capture_output=True, text=True)
        if check.returncode == 0:
            subprocess.run([*base, str(patch)], cwd=tree, env=env, capture_output=True, text=True, check=True)
            return
        output = check.stderr + check.stdout
    elif shutil.which("patch"):
        base = ["patch", strip, "--batch", "--forward", "--silent", "-i", str(patch)]
        check = subprocess.run([*base, "--dry-run"], cwd=tree, capture_output=True, text=True)
        if check.returncode == 0:
            subprocess.run(base, cwd=tree, capture_output=True, text=True, check=True)
            return
        output = check.stdout + check.stderr
    else:
        raise VendorError("neither git nor patch is installed, so the patch queue cannot be applied",
                          fix="install git (or GNU patch)")
    hunk = failing_hunk(text, output, strip_level(text))
    raise PatchError(f"{patch.name} no longer applies: {hunk}\n{output.strip()}",
                     fix=f"refresh {patch.name} against the new release (apply it by hand in a copy, then "
                         "`diff -u`), or delete it if upstream fixed the same thing; the vendored tree is unchanged",
                     patch=patch.name, hunk=hunk)


def failing_hunk(text: str, output: str, strip: int = 1) -> str:
    """'moshi/server.py:174 (@@ -174,7 +174,8 @@ ...)' from git's 'patch failed: FILE:LINE'."""
    found = re.search(r"patch failed: (.+):(\d+)", output)
    if not found:
        missing = re.search(r"error: (.+): No such file or directory", output)
        return f"{missing.group(1)} (file missing)" if missing else "(see the output below)"
    name, line = found.group(1), found.group(2)
    current = None
    for row in text.splitlines():
        if row.startswith("+++ "):
            current = "/".join(row[4:].split("\t")[0].strip().split("/")[strip:])
        elif row.startswith("@@") and current == name and re.match(rf"@@ -{line}(,\d+)? ", row):
            return f"{name}:{line} ({row.strip()})"
    return f"{name}:{line}"
