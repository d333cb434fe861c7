"""The lock holds the torch build asked for: `uv pip compile --index-strategy unsafe-best-match` lets a
newer torch from another source (PyPI's CUDA 13 build, a local wheel) beat the chosen index, so every
lock is verified after resolving. Tested on the real CUDA 13 lock resolved from PyPI (envs/moshi) and
on real uv runs against a local index and a local "PyPI" made of tiny wheels."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import pytest

from duplex.envs.lock import lock_env, pins, torch_build, verify_torch
from duplex.errors import EnvError
from tests.conftest import ROOT
from tests.support.envs import Spec

from .conftest import make_project

CU130 = ROOT / "envs" / "moshi" / "requirements.cu130.lock"


def test_the_committed_cuda13_lock_from_pypi_is_the_cu130_build():
    text = CU130.read_text()
    assert torch_build(text) == ("2.13.0", "cu130")  # untagged: PyPI's build, told by nvidia-cuda-runtime 13.0
    assert pins(text)["nvidia-cuda-runtime"].startswith("13.0.")
    verify_torch(text, "cu130", "moshi", "inv lock --env moshi --torch cu130")
    with pytest.raises(EnvError) as err:  # the same lock passed off as CUDA 12: refused with the reason
        verify_torch(text, "cu126", "moshi", "inv lock --env moshi --torch cu126", "https://download.pytorch.org/whl/cu126")
    assert "took torch 2.13.0 (PyPI's plain torch, a cu130 build) for the cu126 lock" in str(err.value)
    assert "beat https://download.pytorch.org/whl/cu126" in str(err.value)
    assert "inv lock --env moshi --torch cu130" in err.value.fix
    cpu = (ROOT / "envs" / "moshi" / "requirements.cpu.lock").read_text()
    assert torch_build(cpu)[1] == "cpu"
    verify_torch(cpu, "cpu", "moshi", "x")


def _wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """A minimal valid wheel (metadata only): enough for uv to resolve and hash it."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name.replace('-', '_')}-{version}"
    path = folder / f"{dist}-py3-none-any.whl"
    files = {f"{dist}.dist-info/METADATA": "Metadata-Version: 2.1\nName: %s\nVersion: %s\n%s" % (
                 name, version, "".join(f"Requires-Dist: {r}\n" for r in requires)),
             f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{k},sha256={base64.urlsafe_b64encode(hashlib.sha256(v.encode()).digest()).rstrip(b'=').decode()},"
                     f"{len(v)}\n" for k, v in files.items()) + f"{dist}.dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as z:
        for k, v in {**files, f"{dist}.dist-info/RECORD": record}.items():
            z.writestr(k, v)
    return path


def _simple_index(folder: Path, wheels: list[Path]) -> str:
    """A PEP 503 index (file://) serving `wheels`, like download.pytorch.org/whl/<variant>."""
    for wheel in wheels:
        project = folder / wheel.name.split("-")[0].replace("_", "-")
        project.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        (project / wheel.name).write_bytes(wheel.read_bytes())
        (project / "index.html").write_text(f'<a href="{wheel.name}#sha256={digest}">{wheel.name}</a>\n')
    (folder / "index.html").write_text("".join(f'<a href="{p.name}/">{p.name}</a>\n' for p in folder.iterdir() if p.is_dir()))
    return folder.as_uri()


@pytest.fixture
def sources(tmp_path, monkeypatch):
    """A cu126 index with torch 2.13.0+cu126, and a 'PyPI' (find-links) with a newer untagged torch
    2.13.1 that pulls CUDA 13 libraries, as PyPI's torch does."""
    index = _simple_index(tmp_path / "whl-cu126", [_wheel(tmp_path / "built", "torch", "2.13.0+cu126")])
    pypi = tmp_path / "pypi"
    _wheel(pypi, "torch", "2.13.1", ("nvidia-cuda-runtime==13.0.96",))
    _wheel(pypi, "nvidia-cuda-runtime", "13.0.96")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no pip.conf find-links of this machine
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PIP_FIND_LINKS", str(pypi))
    monkeypatch.setenv("DUPLEX_TORCH_INDEX", index.replace("whl-cu126", "whl-{variant}"))
    monkeypatch.setenv("UV_OFFLINE", "1")  # nothing but these two sources
    return tmp_path


def test_a_newer_torch_from_another_source_is_caught_and_the_old_lock_kept(sources):
    root = make_project(sources / "proj", "gpu", "torch>=2.13,<2.14\n")
    lock = root / "envs/gpu/requirements.cu126.lock"
    lock.write_text("# the lock from before\n")
    with pytest.raises(EnvError) as err:
        lock_env(root, "gpu", Spec(torch="cu126"), variant="cu126")
    assert "took torch 2.13.1 (PyPI's plain torch, a cu130 build) for the cu126 lock" in str(err.value)
    assert lock.read_text() == "# the lock from before\n"  # never replaced by the wrong build


def test_the_chosen_index_build_passes(sources):
    root = make_project(sources / "proj", "gpu", "torch==2.13.0\n")
    lock = lock_env(root, "gpu", Spec(torch="cu126"), variant="cu126")
    assert torch_build(lock.read_text()) == ("2.13.0+cu126", "cu126")


def test_the_narrowing_constraint_reaches_the_resolver(sources):
    """`inv lock` passes the torch choice's constraint (torch==X.Y.*) to uv: here it rules out 2.13.1."""
    root = make_project(sources / "proj", "gpu", "torch>=2.13,<2.14\n")
    lock = lock_env(root, "gpu", Spec(torch="cu126"), variant="cu126", constraint="torch==2.13.0")
    assert pins(lock.read_text())["torch"] == "2.13.0+cu126"
