"""The torch index only when the wheelhouse lacks the locked build: locks pinning `+cpu` builds
install offline from pip's find-links (what makes `inv setup --all` work where the PyTorch index
is unreachable), and images get the same wheels staged."""

from __future__ import annotations

import hashlib
from pathlib import Path

from duplex.envs.sources import index_needed, local_builds, wheels_for


def _lock(wheel: Path | None, version: str = "2.13.0+cpu") -> str:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest() if wheel else "0" * 64
    return (f"numpy==2.4.6 \\\n    --hash=sha256:{'1' * 64}\n"
            f"torch=={version} \\\n    --hash=sha256:{digest}\n    # via -r requirements.in\n")


def test_local_builds_are_the_pins_with_a_local_label():
    assert local_builds(_lock(None)) == {"torch": "2.13.0+cpu"}
    assert local_builds("numpy==2.4.6 \\\n    --hash=sha256:" + "1" * 64 + "\n") == {}


def test_the_wheelhouse_serves_the_locked_build(tmp_path):
    wheel = tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    wheel.write_bytes(b"a wheel")
    lock = _lock(wheel)
    assert wheels_for(lock, [str(tmp_path)]) == {wheel.name: wheel}
    assert wheels_for(lock, [f"file://{tmp_path}"]) == {wheel.name: wheel}
    assert not index_needed(lock, [str(tmp_path)])


def test_a_wheel_with_another_hash_or_version_does_not_count(tmp_path):
    wheel = tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    wheel.write_bytes(b"a wheel")
    assert index_needed(_lock(None), [str(tmp_path)])  # same name, other bytes
    assert index_needed(_lock(wheel, "2.13.0+cu130"), [str(tmp_path)])
    assert index_needed(_lock(wheel), [])  # no wheelhouse at all
    assert index_needed(_lock(wheel), [str(tmp_path / "missing")])


def test_a_lock_without_local_builds_never_needs_the_index():
    assert not index_needed("fastapi==0.1 \\\n    --hash=sha256:" + "2" * 64 + "\n", [])
