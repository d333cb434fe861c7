"""The remote machine of these tests: a real sshd on a loopback port (tests/support/sshd.py)."""

from __future__ import annotations

import pytest

from tests.support import sshd as sshd_support


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    server = sshd_support.start(tmp_path_factory.mktemp("sshd"))
    yield server
    sshd_support.stop(server)


@pytest.fixture(autouse=True)
def ssh_config(sshd, monkeypatch):
    """The client config that reaches the server, as users point duplex at one (DUPLEX_SSH_CONFIG);
    a test that wants another sets the variable again."""
    config = sshd.client_config()
    monkeypatch.setenv("DUPLEX_SSH_CONFIG", str(config))
    return config
