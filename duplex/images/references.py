"""What a well-formed digest, registry and image reference is: the one place that says so.

Pure (the plan, images.lock, the registry client, the engine's answers and the flags all ask here).
Everything a registry, the engine or a file says is checked before it is written or used: a digest
goes into URLs and Engine API paths (`sha256:../../x` would be a path), a registry name into
image names other tools parse. Full matches only: `$` also matches before a trailing newline.
"""

from __future__ import annotations

import ipaddress
import re

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
DIGEST_RULE = "sha256: and 64 lower-case hex digits"
# Registry HTTP API v2 answers that are an image: a manifest, or an index of them per platform
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json")
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")
LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")  # one DNS label (RFC 1123)
COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")  # one path component (distribution's grammar)
REGISTRY_RULE = "HOST[:PORT][/PREFIX], lower case, no scheme: e.g. ghcr.io/team or 127.0.0.1:5000/team"


def is_digest(value) -> bool:
    return isinstance(value, str) and DIGEST.fullmatch(value) is not None


def host_problem(host: str) -> str | None:
    """Why `host[:port]` cannot name a registry, or None: a DNS name (labels of 1-63 characters,
    253 in all), an IPv4 address or a bracketed IPv6 one, and a port from 1 to 65535."""
    name, port = host, None
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        if rest and not rest.startswith(":"):
            return f"{host!r} is not HOST[:PORT]"
        port = rest[1:] if rest else None
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return f"{name!r} is not an IPv6 address"
    elif ":" in host:
        name, _, port = host.rpartition(":")
    if port is not None and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        return f"port {port!r} is not a number from 1 to 65535"
    if host.startswith("["):
        return None
    if not name:
        return "no host name"
    if len(name) > 253:
        return f"a host name of {len(name)} characters (at most 253)"
    bad = next((label for label in name.split(".") if not LABEL.fullmatch(label)), None)
    if bad is not None:
        return (f"{name!r} is not a host name: {'an empty label' if not bad else repr(bad[:70])} "
                "(labels are 1-63 letters, digits or '-', not starting or ending with '-')")
    return None


def registry_problem(value: str) -> str | None:
    """Why `value` is not a registry prefix (`HOST[:PORT][/PREFIX]`), or None."""
    if not isinstance(value, str) or not value.strip():
        return "it is empty"
    if "://" in value:
        return "it has a scheme: leave out http:// or https://"
    host, _, prefix = value.rstrip("/").partition("/")
    if host != host.lower() or prefix != prefix.lower():
        return "it has upper-case letters (image names are lower case)"
    why = host_problem(host)
    if why:
        return why
    bad = next((c for c in prefix.split("/") if not COMPONENT.fullmatch(c)), None) if prefix else None
    if bad is not None:
        return f"{bad!r} is not a path component (lower-case letters and digits, joined by '.', '_' or '-')"
    if len(value.rstrip("/")) > 200:  # room for /duplex-STACK-SERVICE within the 255 of a repository name
        return "it is longer than 200 characters"
    return None


def image_problem(reference: str, pattern: re.Pattern) -> str | None:
    """Why an image reference (`[HOST[:PORT]/]PATH[:TAG][@DIGEST]`) is malformed, or None:
    `pattern` (duplex.stack.IMAGE) for its shape, `host_problem` for the registry it names."""
    if not isinstance(reference, str) or not pattern.fullmatch(reference):
        return "expected [HOST[:PORT]/]NAME[:TAG][@sha256:DIGEST], e.g. python:3.11-slim-bookworm"
    first, slash, _ = reference.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):  # as the engine tells a registry
        why = host_problem(first.lower())
        if why:
            return f"its registry {first!r}: {why}"
    return None
