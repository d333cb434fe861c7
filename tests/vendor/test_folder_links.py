"""Folder sources (--from DIR, a git checkout) get the archive rules: no links out, no absolute
links, no special files; the refusal names the link and leaves the vendored tree untouched."""

from __future__ import annotations

import os

import pytest

from duplex.vendor import TARGET, UnsafeSourceError, check, vendor

from .conftest import live_tree, release_files
from .test_sources import _git


def folder(tmp_path, version="0.2.13", name="src"):
    top = tmp_path / name / f"moshi-{version}"
    for rel, text in release_files(version).items():
        (top / rel).parent.mkdir(parents=True, exist_ok=True)
        (top / rel).write_text(text)
    return top


CASES = {  # link (relative to the source folder) -> target, words in the refusal
    "out-of-tree": ("moshi/evil.py", "../../../secret.txt", "link moshi/evil.py -> ../../../secret.txt points outside"),
    "absolute": ("moshi/evil.py", "/etc/passwd", "link moshi/evil.py -> /etc/passwd is absolute"),
    "outside-the-package": ("moshi/readme.md", "../README.md", "link moshi/readme.md -> ../README.md points outside the moshi package"),
    "folder-out": ("moshi/models/up", "../../..", "link moshi/models/up -> ../../.. points outside"),
    "licence-out": ("LICENSE", "../../secret.txt", "link LICENSE -> ../../secret.txt points outside the source"),
    # loops (issue 18): a link to itself, and a folder link to a folder that holds it
    "self-loop": ("moshi/self.py", "self.py", "link moshi/self.py -> self.py does not resolve (a loop of links"),
    "dangling": ("moshi/gone.py", "nowhere.py", "link moshi/gone.py -> nowhere.py does not resolve"),
    "ancestor": ("moshi/models/up", "..", "link moshi/models/up -> .. makes a loop"),
    "itself": ("moshi/models/here", ".", "link moshi/models/here -> . makes a loop"),
}


@pytest.fixture
def vendored(bare_project, tmp_path):
    """A project with moshi 0.2.12 vendored from a clean folder: what a refused update must keep."""
    vendor(bare_project, "v0.2.12", from_path=folder(tmp_path, "0.2.12", "old"))
    return bare_project, live_tree(bare_project)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_link_in_a_folder_is_refused_by_name(vendored, tmp_path, case):
    project, before = vendored
    link, target, words = CASES[case]
    (tmp_path / "secret.txt").write_text("not for the repo\n")
    src = folder(tmp_path)
    (src / link).unlink(missing_ok=True)
    os.symlink(target, src / link)
    with pytest.raises(UnsafeSourceError) as err:
        vendor(project, "v0.2.13", from_path=src)
    assert words in str(err.value) and "unchanged" in err.value.fix
    assert live_tree(project) == before and check(project).ok
    assert "not for the repo" not in "".join(p.read_text() for p in (project / TARGET).rglob("*") if p.is_file())


def test_a_chain_of_links_is_judged_where_it_really_ends(vendored, tmp_path):
    """Each link alone looks inside; followed together they leave the package."""
    project, before = vendored
    src = folder(tmp_path)
    os.symlink("..", src / "moshi" / "models" / "up")  # -> moshi/ itself (a loop, refused too, but later)
    os.symlink("models/up/..", src / "moshi" / "esc")  # reads as moshi/models, really the source top
    with pytest.raises(UnsafeSourceError, match="link moshi/esc -> models/up/.. points outside"):
        vendor(project, "v0.2.13", from_path=src)
    assert live_tree(project) == before


def test_a_loop_of_two_links_and_a_from_path_that_loops_are_refused(vendored, tmp_path):
    from tests.conftest import run_inv
    project, before = vendored
    src = folder(tmp_path)
    os.symlink("b.py", src / "moshi" / "a.py")
    os.symlink("a.py", src / "moshi" / "b.py")
    with pytest.raises(UnsafeSourceError, match="does not resolve"):
        vendor(project, "v0.2.13", from_path=src)
    assert live_tree(project) == before
    os.symlink("loop-b", tmp_path / "loop-a")
    os.symlink("loop-a", tmp_path / "loop-b")
    proc = run_inv("vendor-moshi", "--tag", "v0.2.13", "--from", str(tmp_path / "loop-a"),
                   env={"DUPLEX_STACK": str(project / "stack.toml")})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "loop-a: cannot be followed" in proc.stderr and "loop of links" in proc.stderr
    assert live_tree(project) == before


def test_a_fifo_is_refused_instead_of_hanging_the_copy(vendored, tmp_path):
    project, before = vendored
    src = folder(tmp_path)
    os.mkfifo(src / "moshi" / "pipe")
    with pytest.raises(UnsafeSourceError, match="moshi/pipe is a device, FIFO or socket"):
        vendor(project, "v0.2.13", from_path=src)
    assert live_tree(project) == before


def test_links_inside_the_package_are_kept_as_links(bare_project, tmp_path):
    src = folder(tmp_path)
    os.symlink("server.py", src / "moshi" / "alias.py")
    os.symlink("../server.py", src / "moshi" / "models" / "server.py")
    vendor(bare_project, "v0.2.13", from_path=src)
    vendored = bare_project / TARGET / "moshi"
    assert os.readlink(vendored / "alias.py") == "server.py"
    assert (vendored / "models" / "server.py").read_text() == (vendored / "server.py").read_text()
    assert check(bare_project).ok


def test_a_git_checkout_with_a_link_out_is_refused(bare_project, tmp_path):
    repo = tmp_path / "upstream"
    for rel, text in {"LICENSE": "MIT\n", "moshi/__init__.py": '__version__ = "0.2.13"\n'}.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    os.symlink("/etc/hostname", repo / "moshi" / "host.txt")
    _git(tmp_path, "init", "-q", str(repo))
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "release")
    _git(repo, "tag", "moshi-v0.2.13")
    with pytest.raises(UnsafeSourceError, match="link moshi/host.txt -> /etc/hostname is absolute"):
        vendor(bare_project, "v0.2.13", source="git", url=repo.as_uri())
    assert not (bare_project / TARGET).exists()
