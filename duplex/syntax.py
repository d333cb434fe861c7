"""The shapes of what users type: names, model repos, endpoints, Python versions, host names, secrets.
The stack file, the .env and the CLI's flags check against the same rules; standard library only, so
`inv --list` loads neither the stack model nor packaging."""

from __future__ import annotations

import ipaddress
import re

# The one rule for the names duplex turns into paths here, container, network and image names,
# Kubernetes objects and DNS hosts (stack, env and service names, and the names flags take): an
# RFC 1035 label. The stack file's model applies it (duplex.stack), layout.py guards paths with it.
NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
NAME_RULE = "lower-case letters, digits and '-', starting with a letter, at most 63 characters"
MAX_REPLICAS = 64  # one machine's ports and processes; a cluster scales past it with max_replicas
# A replica of a service (`inv run --replicas asr=2`): replica 0 keeps the service's own name, the
# others are NAME_K ("asr_1"): '_' is outside NAME, so no replica is ever taken for a service.
INSTANCE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?(_[1-9][0-9]?)?$")
URL = re.compile(r"^https?://[^/\s]+(/\S*)?$")  # an http(s) endpoint such as an OTLP collector
# ORG/NAME[@REVISION]; no `..` anywhere (the revision names a file under the cache's refs/), kept
# equal to duplex.models.refs._REF
REPO = re.compile(r"^(?!.*\.\.)[A-Za-z0-9][\w.-]*/[A-Za-z0-9_][\w.-]*(@\w[\w./-]*)?$")
VERSION_ONLY = re.compile(r"^\d+\.\d+(\.\d+)?$")
HOST_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def name_error(name: str) -> str | None:
    """Why `name` breaks the one naming rule, or None when it keeps it."""
    if NAME.fullmatch(name):  # fullmatch: `$` also matches before a trailing newline
        return None
    return f"expected {NAME_RULE}"


def instance_name(service: str, replica: int) -> str:
    """The name a service's replica runs under (processes, logs, containers, the run state)."""
    return service if replica == 0 else f"{service}_{replica}"


def service_of_instance(name: str) -> str:
    """The service a replica's name belongs to ("asr_1" -> "asr"; "asr" -> "asr")."""
    return name.partition("_")[0]


def cert_host_problem(name: str) -> str | None:
    """Why `name` cannot go into the stack's certificate, or None. Only concrete host names and
    addresses: the CA is one the user trusts, so it never signs a wildcard (`*`, `*.lan`)."""
    text = name.strip().lower().rstrip(".")
    if not text:
        return "an empty name; give a host name or an IP address"
    if "*" in text:
        return ("a wildcard; the local CA (which this machine trusts) signs only the hosts the stack "
                "is reached by: name each one")
    try:
        ip = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        if len(text) > 253 or not all(HOST_LABEL.fullmatch(label) for label in text.split(".")):
            return "not a host name (letters, digits and '-', dot-separated) nor an IP address"
        return None
    if ip.is_unspecified or ip.is_multicast:
        return f"{ip} is not an address a browser reaches a server at"
    return None


def secret_problem(value: str) -> str | None:
    """Why `value` cannot be a secret in .env (and in a request header), or None."""
    if not value.strip():
        return "it is empty"
    if value != value.strip():
        return "it starts or ends with white space (a copy-and-paste slip?)"
    bad = next((c for c in value if ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        return f"it holds a control character ({bad!r}): a newline would write another line into .env"
    bad = next((c for c in value if ord(c) > 255), None)
    if bad is not None:  # HTTP headers carry Latin-1 only; tokens are plain ASCII
        return f"it holds {bad!r}, a character no HTTP header can carry (a copy-and-paste slip?)"
    return None
