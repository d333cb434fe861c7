"""The patch queue: applied in order on every update, recorded; a stale patch stops the update cleanly."""

from __future__ import annotations

import subprocess

import pytest

from duplex.vendor import TARGET, PatchError, check, vendor
from duplex.vendor.record import read
from tests.support.tools import tool

from .conftest import live_tree, make_sdist

PATCHES = "third_party/patches/moshi"


def _patch(root, name, text):
    folder = root / PATCHES
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


# Made inside the vendored tree (paths a/moshi/...).
EDIT_LINE_5 = """\
--- a/moshi/server.py
+++ b/moshi/server.py
@@ -3,5 +3,5 @@
 line 3
 line 4
-line 5
+line 5 patched locally
 line 6
 line 7
"""
# Made from the repo root with `git diff` (paths a/third_party/moshi/moshi/...).
ADD_FILE = """\
diff --git a/third_party/moshi/moshi/local.py b/third_party/moshi/moshi/local.py
new file mode 100644
--- /dev/null
+++ b/third_party/moshi/moshi/local.py
@@ -0,0 +1 @@
+LOCAL = True
"""


def test_patches_apply_in_order_are_recorded_and_survive_an_update(bare_project, tmp_path):
    _patch(bare_project, "0001-edit.patch", EDIT_LINE_5)
    _patch(bare_project, "0002-add.patch", ADD_FILE)
    report = vendor(bare_project, "v0.2.12", from_path=make_sdist(tmp_path / "moshi-0.2.12.tar.gz", "0.2.12"))
    tree = bare_project / TARGET
    assert "line 5 patched locally\n" in (tree / "moshi" / "server.py").read_text()
    assert (tree / "moshi" / "local.py").read_text() == "LOCAL = True\n"
    assert [p["name"] for p in report.patches] == ["0001-edit.patch", "0002-add.patch"]
    meta, _ = read(tree)
    assert [p["name"] for p in meta["patches"]] == ["0001-edit.patch", "0002-add.patch"]
    assert all(len(p["sha256"]) == 64 for p in meta["patches"])
    assert check(bare_project).ok  # patched files are what MOSHI_VERSION records
    update = vendor(bare_project, "v0.2.13", from_path=make_sdist(tmp_path / "moshi-0.2.13.tar.gz", "0.2.13"))
    assert update.action == "vendored" and len(update.patches) == 2
    assert "line 5 patched locally\n" in (tree / "moshi" / "server.py").read_text()


def test_a_patch_that_no_longer_applies_names_the_hunk_and_keeps_the_old_tree(bare_project, tmp_path):
    _patch(bare_project, "0001-edit.patch", EDIT_LINE_5)
    vendor(bare_project, "v0.2.12", from_path=make_sdist(tmp_path / "moshi-0.2.12.tar.gz", "0.2.12"))
    before = live_tree(bare_project)
    changed = {"moshi/server.py": "".join(f"row {i}\n" for i in range(1, 21))}  # upstream rewrote it
    new = make_sdist(tmp_path / "moshi-0.2.13.tar.gz", "0.2.13", extra=changed)
    with pytest.raises(PatchError) as err:
        vendor(bare_project, "v0.2.13", from_path=new)
    assert err.value.patch == "0001-edit.patch"
    assert err.value.hunk == "moshi/server.py:3 (@@ -3,5 +3,5 @@)"
    assert "0001-edit.patch no longer applies: moshi/server.py:3" in str(err.value) and err.value.fix
    assert live_tree(bare_project) == before and read(bare_project / TARGET)[0]["version"] == "0.2.12"
    assert check(bare_project).ok


def test_a_patch_made_with_git_diff_in_the_repo(bare_project, tmp_path):
    """The documented workflow: edit the vendored tree, `git diff` it into the queue, re-vendor."""
    sdist = make_sdist(tmp_path / "moshi-0.2.13.tar.gz", "0.2.13")
    vendor(bare_project, "v0.2.13", from_path=sdist)
    git = [tool("git"), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=bare_project, check=True)
    subprocess.run([*git, "add", "third_party"], cwd=bare_project, check=True)
    server = bare_project / TARGET / "moshi" / "server.py"
    server.write_text(server.read_text().replace("line 10\n", "line 10 fixed\n"))
    assert not check(bare_project).ok
    diff = subprocess.run([*git, "diff", "third_party/moshi"], cwd=bare_project, check=True,
                          capture_output=True, text=True).stdout
    _patch(bare_project, "0001-fix.patch", diff)
    report = vendor(bare_project, "v0.2.13", from_path=sdist)
    assert report.action == "vendored" and report.patches[0]["name"] == "0001-fix.patch"
    assert "line 10 fixed\n" in server.read_text() and check(bare_project).ok
