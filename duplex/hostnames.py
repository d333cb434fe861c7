"""The names a stack is reached by: this machine's host names and LAN address, each one a certificate
of the local CA may carry (`syntax.cert_host_problem`: concrete hosts and addresses, never a wildcard)."""

from __future__ import annotations

import ipaddress
import socket
from typing import Callable

from .syntax import cert_host_problem


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
        if not name or cert_host_problem(name):  # a hostname we cannot vouch for is simply left out
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
