"""The names a stack is reached by: this machine's host names and LAN address, and which names a
certificate of the local CA may carry (concrete hosts and addresses, never a wildcard)."""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Callable

HOST_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def host_problem(name: str) -> str | None:
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


def machine_names(extra: list[str] = (), *, hostname: Callable[[], str] = socket.gethostname,
                  outbound_ip: Callable[[], str | None] | None = None) -> tuple[list[str], list[str]]:
    """DNS names and IPs the stack is reached by: loopback, this machine's names and LAN IP, extras."""
    dns, ips = ["localhost"], ["127.0.0.1", "::1"]
    host = hostname()
    candidates = [host, socket.getfqdn(host) if host else "", *extra]
    lan = (outbound_ip or _outbound_ip)()
    if lan:
        candidates.append(lan)
    for name in candidates:
        name = name.strip().lower().rstrip(".")
        if not name or host_problem(name):  # a hostname we cannot vouch for is simply left out
            continue
        try:
            ip = str(ipaddress.ip_address(name.strip("[]")))
            if ip not in ips:
                ips.append(ip)
        except ValueError:
            if name not in dns:
                dns.append(name)
    return dns, ips


def _outbound_ip() -> str | None:
    """The address this machine's default route uses (a UDP 'connect' sends nothing)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed, never sent to
            ip = sock.getsockname()[0]
        return None if ip.startswith("127.") or ip == "0.0.0.0" else ip
    except OSError:
        return None
