"""DUPLEX_CA_BUNDLE: the user's explicit CA bundle for image builds must be a readable PEM file."""

from __future__ import annotations

import pytest

from duplex.errors import RunError
from duplex.run.build_context import ca_bundle

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_a_readable_pem_bundle_is_used_and_wins_over_the_system_one(tmp_path):
    mine, system = tmp_path / "proxy-ca.pem", tmp_path / "system.pem"
    mine.write_bytes(PEM)
    system.write_bytes(PEM + b"# system\n")
    assert ca_bundle({"DUPLEX_CA_BUNDLE": str(mine), "SSL_CERT_FILE": str(system)}) == PEM
    assert ca_bundle({"SSL_CERT_FILE": str(system)}) == PEM + b"# system\n"
    assert ca_bundle({"SSL_CERT_FILE": str(tmp_path / "gone.pem")}) == b""  # the ambient one is only a hint


@pytest.mark.parametrize("what, expected", [
    ("missing", "cannot be read: No such file or directory"),
    ("folder", "cannot be read: Is a directory"),
    ("not-pem", "holds no PEM certificate"),
])
def test_a_bundle_that_is_set_but_unusable_is_an_error_with_a_fix(tmp_path, what, expected):
    path = {"missing": tmp_path / "typo.pem", "folder": tmp_path, "not-pem": tmp_path / "key.txt"}[what]
    if what == "not-pem":
        path.write_text("not a certificate\n")
    system = tmp_path / "system.pem"
    system.write_bytes(PEM)
    with pytest.raises(RunError) as err:  # never silently replaced by SSL_CERT_FILE
        ca_bundle({"DUPLEX_CA_BUNDLE": str(path), "SSL_CERT_FILE": str(system)})
    assert f"DUPLEX_CA_BUNDLE={path} {expected}" in str(err.value)
    assert "readable PEM bundle" in err.value.fix and "unset it" in err.value.fix
