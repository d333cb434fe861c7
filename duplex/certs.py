"""`inv certs`: a local CA and per-stack server certificates, so browsers give remote pages the mic."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DuplexError
from .hostnames import machine_names
from .layout import Layout
from .syntax import cert_host_problem

CA_DAYS = 3650
CERT_DAYS = 825  # the longest validity Apple platforms accept for a TLS server certificate
RENEW_BEFORE = dt.timedelta(days=30)


class CertError(DuplexError):
    """Certificates cannot be made or read."""


@dataclass
class CertSet:
    ca: Path
    cert: Path
    key: Path
    folder: Path
    dns: list[str]
    ips: list[str]
    not_after: str
    made: list[str] = field(default_factory=list)  # "ca", "cert": what this call created

    def as_dict(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v for k, v in self.__dict__.items()}


def make_certs(root: Path, stack: str, extra: list[str] = (), *, force: bool = False,
               now: dt.datetime | None = None, names: tuple[list[str], list[str]] | None = None) -> CertSet:
    """Reuse the CA (users trust it once); (re)issue the stack's cert when names, CA or dates changed."""
    bad = [(n, why) for n in extra if (why := cert_host_problem(n))]
    if bad:
        raise CertError("; ".join(f"{n!r}: {why}" for n, why in bad),
                        fix="pass the host names and IP addresses the stack is reached by, one per --name")
    try:
        return _make_certs(root, stack, extra, force=force, now=now, names=names)
    except OSError as exc:  # a read-only or full disk, a folder owned by someone else
        raise CertError(f"cannot write the certificates under {Layout(root).certs} ({exc.strerror or exc}: "
                        f"{exc.filename or ''})",
                        fix="make that folder writable by you (or free space), then `inv certs` again; "
                            "files already there are kept") from exc


def make_stack_certs(stack, extra: list[str], *, force: bool = False) -> CertSet:
    """`inv certs`: the stack's certificate, also for its service names and host.docker.internal,
    by which containers and native services reach each other."""
    return make_certs(stack.root, stack.name, [*extra, *stack.services, "host.docker.internal"], force=force)


def _make_certs(root: Path, stack: str, extra, *, force: bool, now, names) -> CertSet:
    from cryptography import x509  # heavy: cryptography loads only when a certificate is made or read
    now = now or dt.datetime.now(dt.timezone.utc)
    dns, ips = names or machine_names(list(extra))
    ca_dir, folder = Layout(root).certs / "ca", Layout(root).stack_certs(stack)
    for d in (Layout(root).certs, ca_dir, folder):
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
    made: list[str] = []
    ca_cert_file, ca_key_file = ca_dir / "ca.pem", ca_dir / "ca-key.pem"
    if not (ca_cert_file.exists() and ca_key_file.exists()):
        ca_key, ca_cert = _new_ca(stack, now)
        write_atomically(ca_key_file, _key_pem(ca_key), private=True)
        write_atomically(ca_cert_file, _cert_pem(ca_cert))
        made.append("ca")
    ca_cert, ca_key = _load(ca_cert_file, ca_key_file)
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    why = "forced" if force else _stale(cert_file, key_file, ca_cert, dns, ips, now)
    if why:
        key, cert = _new_server_cert(ca_cert, ca_key, stack, dns, ips, now)
        write_atomically(key_file, _key_pem(key), private=True)
        write_atomically(cert_file, _cert_pem(cert) + _cert_pem(ca_cert))  # full chain: leaf, then CA
        made.append("cert")
    write_atomically(folder / "bundle.pem", _system_roots() + _cert_pem(ca_cert))  # SSL_CERT_FILE for clients
    leaf = x509.load_pem_x509_certificate(cert_file.read_bytes())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return CertSet(ca=ca_cert_file, cert=cert_file, key=key_file, folder=folder,
                   dns=san.get_values_for_type(x509.DNSName),
                   ips=[str(i) for i in san.get_values_for_type(x509.IPAddress)],
                   not_after=leaf.not_valid_after_utc.isoformat(), made=made)


def _stale(cert_file: Path, key_file: Path, ca_cert, dns: list[str], ips: list[str], now) -> str | None:
    from cryptography import x509  # heavy: cryptography loads only when a certificate is made or read
    if not (cert_file.exists() and key_file.exists()):
        return "missing"
    try:
        leaf = x509.load_pem_x509_certificate(cert_file.read_bytes())
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return "unreadable"
    have = set(san.get_values_for_type(x509.DNSName)) | {str(i) for i in san.get_values_for_type(x509.IPAddress)}
    if not set(dns) | {str(ipaddress.ip_address(i)) for i in ips} <= have:
        return "new names"
    if leaf.issuer != ca_cert.subject:
        return "another CA"
    if leaf.not_valid_after_utc - now < RENEW_BEFORE:
        return "expiring"
    return None


def _name(common: str):
    from cryptography import x509  # heavy: cryptography loads only when a certificate is made or read
    from cryptography.x509.oid import NameOID
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "duplex local development"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _new_ca(stack: str, now):
    from cryptography import x509  # heavy: cryptography loads only when a certificate is made or read
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(f"duplex local CA ({socket.gethostname()})")
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _new_server_cert(ca_cert, ca_key, stack: str, dns: list[str], ips: list[str], now):
    from cryptography import x509  # heavy: cryptography loads only when a certificate is made or read
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID
    key = ec.generate_private_key(ec.SECP256R1())
    alt = [x509.DNSName(n) for n in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (x509.CertificateBuilder().subject_name(_name(f"{stack} ({dns[0]})")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=CERT_DAYS))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                         content_commitment=False, data_encipherment=False,
                                         key_agreement=False, crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def _load(cert_file: Path, key_file: Path):
    from cryptography import x509  # heavy: cryptography loads only when a certificate is made or read
    from cryptography.hazmat.primitives import serialization
    try:
        return (x509.load_pem_x509_certificate(cert_file.read_bytes()),
                serialization.load_pem_private_key(key_file.read_bytes(), password=None))
    except (ValueError, TypeError) as exc:
        raise CertError(f"the local CA in {cert_file.parent} cannot be read ({exc})",
                        fix=f"remove {cert_file.parent} and run `inv certs` again (then trust the new CA)") from exc


def _system_roots() -> bytes:
    """The roots this machine trusts (proxy CAs included), so a client given bundle.pem loses none."""
    import ssl  # heavy: ssl (OpenSSL) loads only to check a certificate against its CA
    for path in (os.environ.get("SSL_CERT_FILE"), ssl.get_default_verify_paths().cafile):
        if path and Path(path).is_file():
            data = Path(path).read_bytes()
            return data if data.endswith(b"\n") else data + b"\n"
    return b""


def _key_pem(key) -> bytes:
    # heavy: cryptography loads only when a certificate is made or read
    from cryptography.hazmat.primitives import serialization
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert) -> bytes:
    # heavy: cryptography loads only when a certificate is made or read
    from cryptography.hazmat.primitives import serialization
    return cert.public_bytes(serialization.Encoding.PEM)


def write_atomically(path: Path, data: bytes, private: bool = False) -> None:
    """Atomically; a private key is created 0600 from the start, never readable by others."""
    # a name of its own: replicas' containers start at once and stage the same files side by side
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600
    try:
        if not private:
            os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


CERT_FILES = ("cert.pem", "key.pem", "bundle.pem")


def require_certs(root: Path, stack: str) -> Path:
    """The stack's cert folder, or CertError naming what `inv certs` has not made yet."""
    folder = Layout(root).stack_certs(stack)
    missing = [name for name in CERT_FILES if not (folder / name).is_file()]
    if missing:
        raise CertError(f"tls is on but {folder} lacks {', '.join(missing)}", fix="run `inv certs` first")
    return folder


