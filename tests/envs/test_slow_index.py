"""`inv setup` whose wheel check (is libopus moot because sphn ships a wheel?) meets a package index
that trickles its answer, a byte every 0.5 s: the check gives up at its deadline (3 x 10 s) with
one warning line and setup goes on. Before: the check's 10 s timeout bounded each read only, so
setup waited as long as the index trickled (here: the test's timeout).

libopus is hidden from ctypes.util.find_library (a sitecustomize on PYTHONPATH), as on a machine
without it; sphn comes from a local wheel folder (PIP_NO_INDEX), so only the check meets the index."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import zipfile
from pathlib import Path

import pytest

from tests.conftest import run_inv
from tests.support.trickle import TrickleServer

STACK = """
[envs.small]
system_libs = ["opus"]
[services.api]
env = "small"
command = ["python", "-c", "pass"]
port = 9199
modes = ["native"]
"""

HIDE_OPUS = """import ctypes.util
_find = ctypes.util.find_library
ctypes.util.find_library = lambda name: None if name == "opus" else _find(name)
"""


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def fake_sphn_wheel(folder: Path) -> Path:
    """A pure-Python stand-in for sphn 0.2.1 that pip installs offline."""
    folder.mkdir(parents=True)
    files = {"sphn/__init__.py": b"",
             "sphn-0.2.1.dist-info/METADATA": b"Metadata-Version: 2.1\nName: sphn\nVersion: 0.2.1\n",
             "sphn-0.2.1.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                           b"Tag: py3-none-any\n"}
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files.items())
    wheel = folder / "sphn-0.2.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr("sphn-0.2.1.dist-info/RECORD", record + "sphn-0.2.1.dist-info/RECORD,,\n")
    return wheel


@pytest.fixture
def slow_index():
    server = TrickleServer(pause=0.5, longest=300)
    yield server
    server.close()


def test_a_trickling_index_ends_the_wheel_check_at_its_deadline(tmp_path, slow_index):
    project = tmp_path / "proj"
    (project / "envs" / "small").mkdir(parents=True)
    (project / "stack.toml").write_text(STACK)
    wheel = fake_sphn_wheel(tmp_path / "wheels")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (project / "envs" / "small" / "requirements.lock").write_text(f"sphn==0.2.1 \\\n    --hash=sha256:{digest}\n")
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(HIDE_OPUS)
    page = {"meta": {"api-version": "1.0"}, "name": "sphn", "files": [
        {"filename": f"sphn-0.2.1-cp311-cp311-manylinux_2_17_x86_64.{i}.whl", "url": "x", "hashes": {}}
        for i in range(8)]}
    slow_index.serve("/simple/sphn/", json.dumps(page).encode(), "application/vnd.pypi.simple.v1+json", trickle=True)

    started = time.monotonic()
    proc = run_inv("setup", "--env", "small", "--installer", "pip", cwd=project, timeout=150, env={
        "DUPLEX_STACK": str(project / "stack.toml"), "PYTHONPATH": str(hide),
        "PIP_INDEX_URL": f"{slow_index.url}/simple", "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheel.parent)})
    took = time.monotonic() - started

    assert "/simple/sphn/" in slow_index.seen
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert took < 100, took  # the 30 s deadline, plus making the venv
    lines = [line for line in proc.stderr.splitlines() if "could not check whether sphn 0.2.1 has a wheel" in line]
    assert len(lines) == 1, proc.stderr
    assert "libopus is not installed" in lines[0] and "install it:" in lines[0]
