"""The default evaluation set, synthesised once per test session (real flite, espeak-ng and sox)."""

from __future__ import annotations

import pytest

from duplex.evaluation import synth
from duplex.evaluation.data import Dataset


@pytest.fixture(scope="session")
def default_set(tmp_path_factory) -> Dataset:
    """Built as `inv eval` builds it, into a cache of its own (`.path` is cache/default-v1/manifest.json)."""
    return synth.default_set(tmp_path_factory.mktemp("eval-cache"), say=lambda line: None)
