"""Other sources: a local index over HTTP (hash mismatch, no hash), --from files and folders, git tags."""

from __future__ import annotations

import subprocess
import tarfile

import pytest

from duplex.vendor import TARGET, HashMismatchError, UnknownReleaseError, VendorError, check, vendor
from duplex.vendor.index import parse_filename, version_of
from duplex.vendor.record import read
from tests.support.tools import tool

from .conftest import live_tree, make_sdist, make_wheel, sha256


def test_tags_and_file_names():
    assert version_of("v0.2.13") == version_of("moshi-v0.2.13") == version_of("0.2.13") == "0.2.13"
    assert parse_filename("moshi-0.2.13.tar.gz") == ("0.2.13", "sdist")
    assert parse_filename("moshi-0.2.12-py3-none-any.whl") == ("0.2.12", "wheel")
    assert parse_filename("moshi-0.2.12-cp311-cp311-linux_x86_64.whl") is None  # not pure Python
    assert parse_filename("moshi_mlx-0.2.12.tar.gz") is None


def test_hash_mismatch_is_refused_and_nothing_is_cached(bare_project, tmp_path, local_index):
    local_index.publish(make_sdist(tmp_path / "moshi-0.2.13.tar.gz", "0.2.13"), sha="0" * 64)
    with pytest.raises(HashMismatchError, match="does not match the index's 0000") as err:
        vendor(bare_project, "v0.2.13", index_url=local_index.url)
    assert "untouched" in err.value.fix
    assert not (bare_project / TARGET).exists()
    assert list((bare_project / ".duplex" / "cache" / "vendor").rglob("moshi-*")) == []


def test_index_html_api_wheel_only_release_and_missing_hash(bare_project, tmp_path, local_index):
    local_index.publish(make_wheel(tmp_path / "moshi-0.2.12-py3-none-any.whl", "0.2.12"))
    local_index.publish(make_sdist(tmp_path / "moshi-0.2.13.tar.gz", "0.2.13"), sha=None)
    wheel = vendor(bare_project, "v0.2.12", index_url=local_index.url)
    assert wheel.sha256_verified == "index" and wheel.licences == ["LICENSE"]
    assert (bare_project / TARGET / "LICENSE").is_file()
    nohash = vendor(bare_project, "v0.2.13", index_url=local_index.url)
    assert nohash.sha256_verified == "none" and any("publishes no sha256" in n for n in nohash.notes)
    with pytest.raises(UnknownReleaseError, match="0.3.0"):
        vendor(bare_project, "v0.3.0", index_url=local_index.url)


def test_from_a_local_sdist_file(bare_project, tmp_path):
    sdist = make_sdist(tmp_path / "moshi-0.2.13.tar.gz", "0.2.13")
    report = vendor(bare_project, "v0.2.13", from_path=sdist)
    assert (report.source, report.archive_sha256) == ("local", sha256(sdist))
    assert sorted(p.name for p in (bare_project / TARGET).iterdir()) == ["LICENSE", "MOSHI_VERSION", "moshi"]
    assert check(bare_project).ok


def test_from_a_folder(bare_project, tmp_path):
    sdist = make_sdist(tmp_path / "moshi-0.2.13.tar.gz", "0.2.13")
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    report = vendor(bare_project, "v0.2.13", from_path=tmp_path / "unpacked" / "moshi-0.2.13")
    assert report.source == "local" and report.archive_sha256 is None
    assert (bare_project / TARGET / "moshi" / "server.py").is_file()


def test_from_refuses_a_release_of_another_version(bare_project, tmp_path):
    with pytest.raises(UnknownReleaseError, match="holds moshi 0.2.12, not 0.2.13"):
        vendor(bare_project, "v0.2.13", from_path=make_sdist(tmp_path / "moshi-0.2.12.tar.gz", "0.2.12"))
    with pytest.raises(VendorError, match="no such file"):
        vendor(bare_project, "v0.2.13", from_path=tmp_path / "nope.tar.gz")


def _git(cwd, *args):
    return subprocess.run([tool("git"), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main",
                           *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _upstream(tmp_path):
    """A repo laid out like kyutai-labs/moshi: the Python package lives in moshi/moshi/."""
    repo = tmp_path / "upstream"
    for rel, text in {"LICENSE-MIT": "MIT\n", "rust/Cargo.toml": "[package]\n",
                      "moshi/LICENSE": "MIT License - fixture\n", "moshi/pyproject.toml": "[project]\n",
                      "moshi/moshi/__init__.py": '__version__ = "0.2.13"\n',
                      "moshi/moshi/server.py": "print('server')\n"}.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    _git(tmp_path, "init", "-q", str(repo))
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "release")
    _git(repo, "tag", "-a", "moshi-v0.2.13", "-m", "moshi 0.2.13")
    return repo, _git(repo, "rev-parse", "HEAD")


def test_git_tag_records_the_commit_and_refuses_a_moved_tag(bare_project, tmp_path):
    repo, commit = _upstream(tmp_path)
    url = repo.as_uri()
    report = vendor(bare_project, "v0.2.13", source="git", url=url)
    assert (report.source, report.tag, report.commit, report.sha256_verified) == ("git", "moshi-v0.2.13",
                                                                                   commit, "commit")
    meta, files = read(bare_project / TARGET)
    assert meta["commit"] == commit and meta["url"] == url
    assert sorted(files) == ["LICENSE", "moshi/__init__.py", "moshi/server.py"]
    before = live_tree(bare_project)

    (repo / "moshi" / "moshi" / "server.py").write_text("print('re-tagged')\n")
    _git(repo, "commit", "-q", "-am", "sneaky")
    _git(repo, "tag", "-f", "-a", "moshi-v0.2.13", "-m", "moved")
    with pytest.raises(HashMismatchError, match="moved") as err:
        vendor(bare_project, "v0.2.13", source="git", url=url)
    assert "--allow-moved-tag" in err.value.fix and live_tree(bare_project) == before
    moved = vendor(bare_project, "v0.2.13", source="git", url=url, allow_moved_tag=True)
    assert moved.commit == _git(repo, "rev-parse", "HEAD") != commit

    with pytest.raises(UnknownReleaseError, match="no tag 'v0.9.0'") as err:
        vendor(bare_project, "v0.9.0", source="git", url=url)
    assert "moshi-v0.2.13" in err.value.fix
    with pytest.raises(VendorError, match="needs --url"):
        vendor(bare_project, "v0.2.13", source="git")
