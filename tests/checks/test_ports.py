"""ports: real listeners on service ports, named through /proc."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from checks import ports
from tests.support.net import free_port

from .conftest import by_name, make


def test_free_ports_pass(tmp_path):
    _, _, ctx = make(tmp_path, api_port=free_port())
    facts = {s.port: ports.probe_port(s.port) for s in ctx.services()}
    results = by_name(ports.check(ctx, facts))
    assert results["ports.api"].status == "pass"


def test_a_listener_in_this_process_is_named_with_its_pid(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        _, _, ctx = make(tmp_path, api_port=port)
        fact = ports.probe_port(port)
        assert not fact.free and fact.error == "Address already in use"
        result = by_name(ports.check(ctx, {port: fact}))["ports.api"]
    assert result.status == "fail"
    assert str(port) in result.detail and f"(pid {os.getpid()})" in result.detail and "pytest" in result.detail
    assert "DUPLEX_PORT_API" in result.fix and "inv stop" in result.fix


def test_another_process_on_all_interfaces_is_named(tmp_path):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "0.0.0.0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if not ports.probe_port(port).free:
                break
            time.sleep(0.05)
        fact = ports.probe_port(port)
        _, _, ctx = make(tmp_path, api_port=port)
        result = by_name(ports.check(ctx, {port: fact}))["ports.api"]
    finally:
        server.terminate()
        server.wait(5)
    assert result.status == "fail"
    assert f"(pid {server.pid})" in result.detail and "http.server" in result.detail


def test_our_persistent_container_on_its_port_is_reused(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        _, _, ctx = make(tmp_path, services=["voice"], voice_port=port)
        fact = ports.probe_port(port)
        results = by_name(ports.check(ctx, {port: fact}, own={"voice": "duplex-pf-voice"}))
    assert results["ports.voice"].status == "pass" and "duplex-pf-voice" in results["ports.voice"].detail


def test_holders_of_a_port_nobody_uses_is_empty():
    assert ports.holders(free_port()) == []
