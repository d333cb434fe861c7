"""The connection through the real ssh client to a real sshd: commands with their arguments kept
whole, one master per target, and every failure one line with its fix."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from duplex.remote.ssh import Connection, SshError, control_dir, port_taken
from duplex.remote.target import TargetError, parse_target
from tests.support import sshd as sshd_support
from tests.support.net import free_ports, stop_process, wait_answer


def connect(sshd, tmp_path, path="/tmp", **kwargs) -> Connection:
    return Connection(parse_target(sshd.url(path), "demo"), tmp_path / "project", **kwargs)


def test_a_command_runs_there_with_every_argument_whole(sshd, tmp_path):
    odd = ["it's", "$(touch pwned)", "a b", "*", ";id", "", "-n"]
    with connect(sshd, tmp_path) as conn:
        proc = conn.run(["python3", "-c", "import sys, os; print(repr(sys.argv[1:])); print(os.getcwd())", *odd],
                        cwd=str(tmp_path))
    out = proc.stdout.splitlines()
    assert out == [repr(odd), str(tmp_path)]
    assert not (tmp_path / "pwned").exists() and not (tmp_path.parent / "pwned").exists()


def test_the_sockets_live_in_a_private_folder_of_the_project(tmp_path):
    short = Path(tempfile.mkdtemp(prefix="dx-"))
    try:
        folder = control_dir(short)
        assert folder == short / ".duplex" / "remote" / "ssh"
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    finally:
        shutil.rmtree(short)
    deep = control_dir(tmp_path / ("long-" * 12))  # a socket's path holds 108 bytes at most
    assert deep == Path(tempfile.gettempdir()) / f"duplex-ssh-{os.getuid()}"
    assert control_dir(Path("/tmp/a%h b")) == deep  # ssh would expand %h; rsync's -e splits on spaces
    assert stat.S_IMODE(deep.stat().st_mode) == 0o700 and deep.stat().st_uid == os.getuid()


def test_one_master_serves_every_command_and_closes_cleanly(sshd, tmp_path):
    conn = connect(sshd, tmp_path).open()
    pid = conn.master_pid
    assert pid and conn.alive() == pid
    begin = time.monotonic()
    for _ in range(5):
        assert conn.run(["true"]).returncode == 0
    per_command = (time.monotonic() - begin) / 5
    joined = connect(sshd, tmp_path).open()  # a second command of the same project joins it
    assert joined.master_pid is None and joined.alive() == pid
    joined.close()  # not its master: left running
    assert conn.alive() == pid
    conn.close()
    assert not conn.socket.exists()
    state = Path(f"/proc/{pid}/stat")
    assert not state.exists() or state.read_text().rpartition(")")[2].split()[0] == "Z"  # init reaps it
    assert per_command < 0.5, per_command  # no new handshake per command


def test_an_unknown_host_key_is_refused_with_the_fix(sshd, tmp_path, monkeypatch):
    monkeypatch.setenv("DUPLEX_SSH_CONFIG", str(sshd.client_config("empty", known_hosts="")))
    with pytest.raises(SshError) as caught:
        connect(sshd, tmp_path).open()
    err = caught.value
    assert err.kind == "host-key-unknown" and "\n" not in str(err)
    assert "not in known_hosts" in str(err) and f"ssh -l {sshd.user} -p {sshd.port} 127.0.0.1" in err.fix


def test_a_changed_host_key_is_refused_with_the_fix(sshd, tmp_path, monkeypatch):
    other = sshd.known_line(sshd.client_key)  # another key recorded for this host and port
    monkeypatch.setenv("DUPLEX_SSH_CONFIG", str(sshd.client_config("changed", known_hosts=other)))
    with pytest.raises(SshError) as caught:
        connect(sshd, tmp_path).open()
    assert caught.value.kind == "host-key-changed" and "\n" not in str(caught.value)
    assert f"ssh-keygen -R '[127.0.0.1]:{sshd.port}'" in caught.value.fix


def test_a_key_the_server_does_not_know_is_refused_with_the_fix(sshd, tmp_path, monkeypatch):
    stranger = sshd_support.keygen(tmp_path / "stranger")
    monkeypatch.setenv("DUPLEX_SSH_CONFIG", str(sshd.client_config("stranger", identity=stranger)))
    with pytest.raises(SshError) as caught:
        connect(sshd, tmp_path).open()
    assert caught.value.kind == "auth" and "never asks for a password" in str(caught.value)
    assert "ssh-copy-id" in caught.value.fix and "\n" not in str(caught.value)


def test_a_closed_port_and_a_silent_one_are_each_one_line(sshd, tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: refused
        conn = Connection(parse_target(f"ssh://127.0.0.1:{port}", "demo"), tmp_path)
        with pytest.raises(SshError) as caught:
            conn.open()
    assert caught.value.kind == "refused" and f"127.0.0.1:{port}" in str(caught.value)
    with socket.socket() as silent:  # accepts (the kernel's backlog), never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        conn = Connection(parse_target(f"ssh://127.0.0.1:{silent.getsockname()[1]}", "demo"), tmp_path,
                          connect_timeout=1)
        begin = time.monotonic()
        with pytest.raises(SshError) as caught:
            conn.open()
    assert caught.value.kind == "timeout" and time.monotonic() - begin < 10
    assert "\n" not in str(caught.value) and caught.value.fix


def test_a_missing_remote_command_names_what_to_install(sshd, tmp_path):
    with connect(sshd, tmp_path) as conn:
        with pytest.raises(SshError) as caught:
            conn.run(["no-such-python3", "-V"])
        assert caught.value.kind == "missing-command" and "no-such-python3 is not installed" in str(caught.value)
        assert "apt-get install no-such-python3" in caught.value.fix
        failed = conn.run(["sh", "-c", "echo why >&2; exit 3"], check=False)  # a command's own failure
        assert failed.returncode == 3
        with pytest.raises(SshError) as caught:
            conn.run(["sh", "-c", "echo why >&2; exit 3"])
        assert caught.value.kind == "command" and str(caught.value).endswith("exited 3: why")


def test_an_injection_attempt_is_refused_before_any_ssh_runs(tmp_path, monkeypatch):
    # an ssh on PATH that would record being run: it never is
    (tmp_path / "bin").mkdir()
    spy = tmp_path / "bin" / "ssh"
    spy.write_text(f"#!/bin/sh\ntouch {tmp_path / 'ran'}\n")
    spy.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    for text in ("ssh://-oProxyCommand=touch%20pwned", "ssh://-oProxyCommand=sh/x", "ssh://box;sh"):
        with pytest.raises(TargetError):
            Connection(parse_target(text, "demo"), tmp_path).open()
    assert subprocess.run(["ssh"]).returncode == 0 and (tmp_path / "ran").exists()  # the spy works
    (tmp_path / "ran").unlink()
    assert not (tmp_path / "ran").exists()


def test_a_port_forward_reaches_the_remote_and_a_taken_port_is_one_line(sshd, tmp_path):
    (tmp_path / "page.html").write_text("served there\n")
    remote_port, local_port = free_ports(2)
    server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(remote_port)],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_answer(server, f"http://127.0.0.1:{remote_port}/page.html", "http.server", time.monotonic() + 10,
                    lambda: "")
        with connect(sshd, tmp_path) as conn:
            conn.forward(local_port, remote_port)
            with urllib.request.urlopen(f"http://127.0.0.1:{local_port}/page.html", timeout=10) as page:
                assert page.read() == b"served there\n"
            with socket.socket() as taken:
                taken.bind(("127.0.0.1", 0))
                taken.listen()
                busy = taken.getsockname()[1]
                with pytest.raises(SshError) as caught:
                    conn.forward(busy, remote_port)
            assert caught.value.kind == "port-taken" and "\n" not in str(caught.value)
            assert f"sport = :{busy}" in caught.value.fix
            conn.cancel_forward(local_port, remote_port)
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", local_port), timeout=2).close()
    finally:
        stop_process(server)


@pytest.mark.parametrize("platform, names", [("linux", "ss -ltnp 'sport = :8010'"),
                                             ("darwin", "lsof -nP -iTCP:8010 -sTCP:LISTEN")])
def test_a_taken_port_names_the_tool_this_system_has(monkeypatch, platform, names):
    """macOS has no `ss`: its laptops are told lsof (the Linux branch is run for real above)."""
    monkeypatch.setattr(sys, "platform", platform)
    err = port_taken("forwarding 127.0.0.1:8010 to gpu-box", 8010)
    assert err.kind == "port-taken" and f"`{names}` names it" in err.fix
