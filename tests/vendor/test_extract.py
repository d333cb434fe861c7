"""Malicious archives are refused whole: traversal, absolute paths, links out, devices; nothing lands."""

from __future__ import annotations

import stat
import tarfile
import zipfile

import pytest

from duplex.vendor import UnsafeArchiveError, vendor
from duplex.vendor.extract import extract

from .conftest import live_tree, make_sdist


def _member(name, kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = 5 if kind == tarfile.REGTYPE else 0
    return info


TAR_CASES = {
    "dotdot": (_member("moshi-0.2.13/../../escaped.txt"), "climbs out"),
    "absolute": (_member("/tmp/duplex-absolute-escape.txt"), "absolute path"),
    "symlink-out": (_member("moshi-0.2.13/moshi/evil", tarfile.SYMTYPE, "../../../../etc/passwd"), "outside"),
    "symlink-absolute": (_member("moshi-0.2.13/moshi/evil", tarfile.SYMTYPE, "/etc/passwd"), "absolute"),
    "hardlink-out": (_member("moshi-0.2.13/moshi/evil", tarfile.LNKTYPE, "../outside"), "climbs out"),
    "device": (_member("moshi-0.2.13/moshi/dev", tarfile.CHRTYPE), "device"),
    "fifo": (_member("moshi-0.2.13/moshi/fifo", tarfile.FIFOTYPE), "FIFO"),
}


@pytest.mark.parametrize("case", sorted(TAR_CASES))
def test_malicious_tar_is_refused_and_nothing_is_written(tmp_path, case):
    member, words = TAR_CASES[case]
    archive = make_sdist(tmp_path / "moshi-0.2.13.tar.gz", "0.2.13", members=[member])
    dest = tmp_path / "out" / "unpacked"
    with pytest.raises(UnsafeArchiveError, match=words) as err:
        extract(archive, dest)
    assert err.value.fix
    assert list(dest.rglob("*")) == []  # checked before anything was written
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "out" / "escaped.txt").exists()


ZIP_CASES = {
    "dotdot": ("../escaped.txt", 0o100644, "climbs out"),
    "absolute": ("/tmp/duplex-zip-escape.txt", 0o100644, "absolute"),
    "symlink": ("moshi/evil", stat.S_IFLNK | 0o777, "symlink"),
    "backslash": ("..\\escaped.txt", 0o100644, "backslash"),
}


@pytest.mark.parametrize("case", sorted(ZIP_CASES))
def test_malicious_wheel_is_refused(tmp_path, case):
    name, mode, words = ZIP_CASES[case]
    archive = tmp_path / "moshi-0.2.13-py3-none-any.whl"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("moshi/__init__.py", '__version__ = "0.2.13"\n')
        info = zipfile.ZipInfo(name)
        info.external_attr = mode << 16
        zf.writestr(info, "../../etc/passwd" if stat.S_ISLNK(mode) else "evil")
    with pytest.raises(UnsafeArchiveError, match=words):
        extract(archive, tmp_path / "out")
    assert list((tmp_path / "out").rglob("*")) == []
    assert not (tmp_path / "escaped.txt").exists()


def test_links_inside_the_archive_are_fine(tmp_path):
    inner = _member("moshi-0.2.13/moshi/alias.py", tarfile.SYMTYPE, "server.py")
    archive = make_sdist(tmp_path / "moshi-0.2.13.tar.gz", "0.2.13", members=[inner])
    out = extract(archive, tmp_path / "out")
    assert (out / "moshi-0.2.13" / "moshi" / "alias.py").read_text().startswith("line 1")


def test_vendoring_a_malicious_archive_leaves_the_tree_untouched(bare_project, tmp_path):
    good = make_sdist(tmp_path / "moshi-0.2.12.tar.gz", "0.2.12")
    vendor(bare_project, "v0.2.12", from_path=good)
    before = live_tree(bare_project)
    evil = make_sdist(tmp_path / "moshi-0.2.13.tar.gz", "0.2.13",
                      members=[_member("moshi-0.2.13/../../../pwned.txt")])
    with pytest.raises(UnsafeArchiveError):
        vendor(bare_project, "v0.2.13", from_path=evil)
    assert live_tree(bare_project) == before
    assert not (bare_project.parent / "pwned.txt").exists()
    assert list((bare_project / ".duplex" / "vendor").glob("staging-*")) == []


def test_a_truncated_archive_is_a_clear_error(bare_project, tmp_path):
    good = make_sdist(tmp_path / "moshi-0.2.13.tar.gz", "0.2.13")
    cut = tmp_path / "cut" / good.name
    cut.parent.mkdir()
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(Exception, match="not a readable archive"):
        vendor(bare_project, "v0.2.13", from_path=cut)
    assert not (bare_project / "third_party" / "moshi").exists()
