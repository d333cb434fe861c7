"""Certificates: a local CA and per-stack certs, verified by a real TLS client against the frontend."""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import stat
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509

from duplex.certs import make_certs
from duplex.hostnames import machine_names
from duplex.layout import Layout
from duplex.report import trust_instructions
from tests.support.envs import ROOT, ensure_env
from tests.support.net import free_port

NAMES = (["localhost", "devbox.lan"], ["127.0.0.1", "::1", "10.1.2.3"])


def test_names_cover_loopback_hostname_lan_ip_and_extras():
    dns, ips = machine_names(["gpu.example.org", "192.168.7.9", "GPU.example.org."],
                             hostname=lambda: "devbox", outbound_ip=lambda: "10.0.0.5")
    assert dns[0] == "localhost" and "devbox" in dns and "gpu.example.org" in dns
    assert dns.count("gpu.example.org") == 1
    assert {"127.0.0.1", "::1", "10.0.0.5", "192.168.7.9"} <= set(ips)


def test_makes_a_ca_and_a_cert_with_private_keys_0600_and_reuses_them(tmp_path):
    first = make_certs(tmp_path, "demo", names=NAMES)
    assert first.made == ["ca", "cert"]
    assert first.folder == tmp_path / ".duplex" / "certs" / "demo"  # moshi --ssl DIR
    assert {p.name for p in first.folder.iterdir()} == {"cert.pem", "key.pem", "bundle.pem"}
    assert Layout(tmp_path).ca.read_bytes() in (first.folder / "bundle.pem").read_bytes()
    for key in (first.key, tmp_path / ".duplex" / "certs" / "ca" / "ca-key.pem"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(first.folder.stat().st_mode) == 0o700
    assert set(first.dns) == {"localhost", "devbox.lan"} and "10.1.2.3" in first.ips
    assert make_certs(tmp_path, "demo", names=NAMES).made == []  # nothing changed: reused
    # A new name reissues the server cert under the same CA (users trust the CA once).
    ca_before = Layout(tmp_path).ca.read_bytes()
    more = make_certs(tmp_path, "demo", names=(NAMES[0] + ["gpu.example.org"], NAMES[1]))
    assert more.made == ["cert"] and "gpu.example.org" in more.dns
    assert Layout(tmp_path).ca.read_bytes() == ca_before
    # Close to expiry: reissued.
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=820)
    assert make_certs(tmp_path, "demo", names=NAMES, now=later).made == ["cert"]
    leaf = x509.load_pem_x509_certificate(more.cert.read_bytes())
    assert leaf.issuer == x509.load_pem_x509_certificate(ca_before).subject


def test_trust_instructions_name_each_platform(tmp_path):
    text = "\n".join(trust_instructions(tmp_path / "ca.pem", "demo"))
    for word in ("update-ca-certificates", "security add-trusted-cert", "certutil -user -addstore Root",
                 "Firefox", "nssdb"):
        assert word in text


@pytest.fixture
def tls_frontend(tmp_path):
    """The real frontend app, served natively by uvicorn with the certificates `inv certs` made."""
    certs = make_certs(tmp_path, "demo", ["devbox.lan"])
    port = free_port()
    python = ensure_env("frontend") / "bin" / "python"
    log = open(tmp_path / "frontend.log", "w")
    proc = subprocess.Popen([str(python), "-m", "uvicorn", "servers.frontend.app:app", "--host", "127.0.0.1",
                             "--port", str(port), "--ssl-certfile", str(certs.cert),
                             "--ssl-keyfile", str(certs.key)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE",)})
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "frontend.log").read_text()
            time.sleep(0.1)
    yield certs, port
    proc.terminate()
    proc.wait(10)
    log.close()


def _get(port: int, server_hostname: str, ca: Path) -> tuple[str, dict]:
    """GET /health over TLS with the local CA as the only trust anchor."""
    context = ssl.create_default_context(cafile=str(ca))  # no system roots: only ours
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=server_hostname) as tls:
            tls.sendall(f"GET /health HTTP/1.1\r\nHost: {server_hostname}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
            return data.split(b"\r\n", 1)[0].decode(), tls.getpeercert()


def test_real_tls_client_verifies_the_frontend_and_refuses_a_wrong_name(tls_frontend):
    certs, port = tls_frontend
    for name in ("localhost", "127.0.0.1", socket.gethostname().lower(), "devbox.lan"):
        status, peer = _get(port, name, certs.ca)
        assert status == "HTTP/1.1 200 OK", name
        assert peer["issuer"]
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch|doesn't match"):
        _get(port, "not-this-host.example", certs.ca)
    # A client given bundle.pem (SSL_CERT_FILE for services calling a TLS service) verifies it too.
    assert _get(port, "localhost", certs.folder / "bundle.pem")[0] == "HTTP/1.1 200 OK"
    # And a client trusting only the system roots refuses the local CA's certificate.
    with pytest.raises(ssl.SSLCertVerificationError, match="self-signed|unable to get local issuer"):
        context = ssl.create_default_context()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            context.wrap_socket(raw, server_hostname="localhost")
