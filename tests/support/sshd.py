"""A real OpenSSH server on a loopback port for remote-machine tests and benchmarks: generated
host and client keys, and an ssh client config (the file DUPLEX_SSH_CONFIG names) that trusts the
host key and offers the client key. A folder under it plays the remote machine's disk."""

from __future__ import annotations

import getpass
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from duplex.run.dashboard import port_free
from tests.support.net import free_port
from tests.support.tools import find_tool


@dataclass
class Sshd:
    base: Path
    port: int
    user: str
    process: subprocess.Popen
    host_key: Path
    client_key: Path

    def client_config(self, name: str = "config", *, known_hosts: str | None = None,
                      identity: Path | None = None) -> Path:
        """An ssh config for this server: its host key known (or `known_hosts`' text instead), the
        client key offered (or `identity`), and nothing else (IdentitiesOnly, no agent)."""
        known = self.base / f"{name}.known_hosts"
        known.write_text(self.known_line() if known_hosts is None else known_hosts)
        path = self.base / name
        path.write_text(f"Host *\n  IdentityFile {identity or self.client_key}\n  IdentitiesOnly yes\n"
                        f"  IdentityAgent none\n  UserKnownHostsFile {known}\n  GlobalKnownHostsFile /dev/null\n"
                        "  StrictHostKeyChecking yes\n")
        return path

    def restricted(self, name: str, tools: tuple[str, ...]) -> Path:
        """A client config whose key's commands run with a PATH holding only `tools` (a remote
        without rsync, without python3), as a `command=` line in authorized_keys forces."""
        bare = self.base / f"{name}-bin"
        bare.mkdir()
        for tool in tools:
            (bare / tool).symlink_to(shutil.which(tool))
        wrapper = self.base / f"{name}-shell"
        wrapper.write_text(f'#!/bin/sh\nPATH={bare} exec sh -c "$SSH_ORIGINAL_COMMAND"\n')
        wrapper.chmod(0o755)
        key = keygen(self.base / f"{name}-key")
        with open(self.base / "authorized_keys", "a") as keys:
            keys.write(f'command="{wrapper}" {key.with_suffix(".pub").read_text()}')
        return self.client_config(name, identity=key)

    def known_line(self, key: Path | None = None) -> str:
        kind, blob = (key or self.host_key).with_suffix(".pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {blob}\n"

    def url(self, path: Path | str) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{path if str(path).startswith('/') else '/~/' + str(path)}"


def port_pair(offset: int) -> tuple[int, int]:
    """Two ports here (p, p+1: asr and frontend) whose twins `offset` higher are free too: the
    "remote" of `inv run --on` is this machine, binding each port + its port_offset."""
    for _ in range(50):
        port = free_port()
        if all(port_free(p) for p in (port + 1, port + offset, port + offset + 1)):
            return port, port + 1
    raise RuntimeError("no four free ports")


def keygen(path: Path) -> Path:
    subprocess.run([find_tool("ssh-keygen") or "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "duplex-test",
                    "-f", str(path)], check=True)
    return path


# How this machine reaches package indexes (a TLS-intercepting proxy's CA, pip's and uv's index
# settings): a real GPU box has its own in its profile; the stand-in gets this machine's.
NETWORK = re.compile(r"^(SSL_CERT_\w+|\w*CA_BUNDLE|PIP_\w+|UV_\w+|\w*_proxy|\w*_PROXY)$")


def network_env(more: dict[str, str] | None = None) -> str:
    """sshd's SetEnv line giving every session this machine's network settings and `more` (or nothing)."""
    chosen = {**{k: v for k, v in os.environ.items() if NETWORK.match(k)}, **(more or {})}
    pairs = [f'"{k}={v}"' for k, v in sorted(chosen.items()) if '"' not in v]
    return f"SetEnv {' '.join(pairs)}\n" if pairs else ""


def start(base: Path, env: dict[str, str] | None = None) -> Sshd:
    """Start sshd in the foreground of its own process (stopped by `stop`), answering on a free port.
    `env`: variables every session gets (the remote machine's own settings: a stand-in GPU, say)."""
    sshd = find_tool("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
    if sshd is None:
        raise FileNotFoundError("sshd not found (apt-get install openssh-server); bash .ci/run installs it")
    base.mkdir(parents=True, exist_ok=True)
    host_key, client_key = keygen(base / "host_key"), keygen(base / "client_key")
    shutil.copy(client_key.with_suffix(".pub"), base / "authorized_keys")
    if os.getuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # the privilege separation folder sshd wants
    port = free_port()
    config = base / "sshd_config"
    config.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
                      f"AuthorizedKeysFile {base / 'authorized_keys'}\nPidFile {base / 'sshd.pid'}\n"
                      "StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                      "PermitRootLogin prohibit-password\nMaxStartups 100\nMaxSessions 100\nLogLevel ERROR\n"
                      + network_env(env))
    subprocess.run([os.path.abspath(sshd), "-t", "-f", str(config)], check=True)
    log = open(base / "sshd.log", "wb")  # open for the server's whole life
    proc = subprocess.Popen([os.path.abspath(sshd), "-D", "-e", "-f", str(config)], stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL)
    log.close()
    server = Sshd(base=base, port=port, user=getpass.getuser(), process=proc, host_key=host_key,
                  client_key=client_key)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        probe = subprocess.run(["ssh", "-F", str(server.client_config("probe")), "-o", "BatchMode=yes",
                                "-p", str(port), "-l", server.user, "--", "127.0.0.1", "true"],
                               capture_output=True, stdin=subprocess.DEVNULL, timeout=15)
        if probe.returncode == 0:
            return server
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    stop(server)
    raise RuntimeError(f"sshd did not accept a login: {(base / 'sshd.log').read_text()[-2000:]}")


def stop(server: Sshd) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
