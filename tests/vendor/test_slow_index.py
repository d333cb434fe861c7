"""`inv vendor-moshi` against a package index that trickles its answer (a byte every 0.5 s): the
command ends at the deadline (3 x DUPLEX_VENDOR_TIMEOUT) with one line naming the index and what
to do. Before: each read had its own 60 s timeout, so the command waited as long as the trickle
went on (here: the test's timeout)."""

from __future__ import annotations

import shutil
import time

import pytest

from tests.conftest import ROOT, run_inv
from tests.support.trickle import TrickleServer

from .conftest import make_sdist, sha256

VERSION = "0.2.99"


@pytest.fixture
def slow_index(tmp_path):
    server = TrickleServer(pause=0.5)
    yield server
    server.close()


def _project(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(ROOT / "stack.toml", repo / "stack.toml")
    shutil.copytree(ROOT / "third_party", repo / "third_party")
    return repo


@pytest.mark.parametrize("what", ["page", "archive"])
def test_a_trickling_index_ends_at_the_deadline_with_one_line(tmp_path, slow_index, what):
    repo = _project(tmp_path)
    sdist = make_sdist(tmp_path / f"moshi-{VERSION}.tar.gz", VERSION)
    name = sdist.name
    page = (f'<!DOCTYPE html><html><body>\n<a href="../../files/{name}#sha256={sha256(sdist)}">{name}</a><br/>\n'
            "</body></html>\n").encode()
    slow_index.serve("/simple/moshi/", page, trickle=what == "page")
    slow_index.serve(f"/files/{name}", sdist.read_bytes(), "application/gzip", trickle=what == "archive")
    before = (repo / "third_party" / "moshi" / "MOSHI_VERSION").read_text()

    started = time.monotonic()
    proc = run_inv("vendor-moshi", "--tag", f"v{VERSION}", timeout=60, env={
        "DUPLEX_STACK": str(repo / "stack.toml"), "DUPLEX_VENDOR_INDEX": f"{slow_index.url}/simple",
        "DUPLEX_VENDOR_TIMEOUT": "2"})
    took = time.monotonic() - started

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert took < 30, took  # a 6 s deadline, plus starting the CLI
    lines = [line for line in proc.stderr.splitlines() if "did not finish its answer within 6 s" in line]
    assert len(lines) == 1, proc.stderr
    if what == "page":
        assert f"the package index {slow_index.url}/simple is too slow" in lines[0]
        assert f"no copy of moshi {VERSION} is cached" in lines[0]
        assert "DUPLEX_VENDOR_INDEX" in proc.stderr and "--from PATH" in proc.stderr
    else:
        assert f"downloading {slow_index.url}/files/{name} failed" in lines[0]
        assert "--from PATH" in proc.stderr
    assert (repo / "third_party" / "moshi" / "MOSHI_VERSION").read_text() == before  # untouched
    assert not list((repo / ".duplex" / "cache" / "vendor").glob("*/moshi-*"))  # nothing half-downloaded kept


def test_an_index_page_cut_short_is_said_as_such(tmp_path, slow_index):
    """A server that closes the connection before the body its Content-Length announced: http.client
    hands back the short body without a word, and half a page read as a whole one said "moshi X is
    not on the package index". Now the cut is named."""
    repo = _project(tmp_path)
    sdist = make_sdist(tmp_path / f"moshi-{VERSION}.tar.gz", VERSION)
    page = (f'<!DOCTYPE html><html><body>\n<a href="../../files/{sdist.name}#sha256={sha256(sdist)}">'
            f"{sdist.name}</a><br/>\n</body></html>\n").encode()
    slow_index.serve("/simple/moshi/", page, cut=20)
    proc = run_inv("vendor-moshi", "--tag", f"v{VERSION}", timeout=60, env={
        "DUPLEX_STACK": str(repo / "stack.toml"), "DUPLEX_VENDOR_INDEX": f"{slow_index.url}/simple",
        "DUPLEX_VENDOR_TIMEOUT": "2"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert f"closed the connection after 20 of the {len(page)} bytes it announced" in proc.stderr, proc.stderr
    assert "not on the package index" not in proc.stderr
