"""`inv run --on ssh://…` end to end: the real `inv` here, the real ssh/sshd, duplex bootstrapped in
the remote folder, the default stack natively there, its ports forwarded to 127.0.0.1 here, Chromium's
fake microphone through the tunnel, an edit synced and served, Ctrl-C, a killed connection,
--detach with stop/status/logs --on, and the errors (a port taken here, no python3 there, the
remote's own GPU failing its preflight).

The "remote" is this machine behind sshd, so it binds each port + `port_offset` (duplex.local.toml)
while this side forwards the plan's ports: the same numbers on both sides would collide here."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, run_inv
from tests.support import fakenvml
from tests.support import sshd as sshd_support
from tests.support.browser import chromium, wait_for
from tests.support.speech import synthesize
from tests.support.stackcopy import checkout_copy

OFFSET = 100
GRACE = 3
READY = "Ctrl-C stops both sides"
PHRASE = "hello world this is a test"


def ports_pair() -> tuple[int, int]:
    return sshd_support.port_pair(OFFSET)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def laptop(tmp_path_factory) -> Path:
    """This machine's copy of the project: what git would add of this checkout (as a user's clone)."""
    return checkout_copy(tmp_path_factory.mktemp("laptop") / "project")


@pytest.fixture(scope="module")
def remote(sshd, laptop, tmp_path_factory):
    """The remote folder and the settings that reach it (a [remote] default in duplex.local.toml)."""
    folder = tmp_path_factory.mktemp("gpu-box") / "app"
    url = sshd.url(folder)
    (laptop / "duplex.local.toml").write_text(f'[remote]\non = "{url}"\nport_offset = {OFFSET}\ngrace = {GRACE}\n')
    return url, folder


class Run:
    """`inv run --on` as a user starts it: its output collected as it comes."""

    def __init__(self, laptop: Path, *args: str, env: dict[str, str]):
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "invoke", "--search-root", str(ROOT), "run", *args],
                                     cwd=laptop, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()

    def end(self) -> None:
        """As a user would after a failure: Ctrl-C, then kill (the remote run ends after the grace)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, what: str, timeout: float = 240) -> None:
        wait_for(lambda: what in self.text or self.proc.poll() is not None, timeout, what)
        assert what in self.text, f"`inv run --on` ended ({self.proc.returncode}) before {what!r}:\n{self.text[-4000:]}"


def env_with(ports: tuple[int, int], **more) -> dict[str, str]:
    env = {**os.environ, "DUPLEX_PORT_ASR": str(ports[0]), "DUPLEX_PORT_FRONTEND": str(ports[1]), **more}
    env.pop("DUPLEX_STACK", None)
    return env


def remote_processes(folder: Path) -> list[str]:
    """Processes running from the remote folder (its venvs, its services, the agent)."""
    out = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(folder) in line and "ps -eo" not in line]


def ssh_clients(url: str) -> list[str]:
    """This side's ssh processes to the target (masters, tunnels, sessions)."""
    port = url.split("@127.0.0.1:")[1].split("/")[0]
    out = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if " ssh " in f" {line.split(None, 1)[1]}" and f"-p {port} " in line]


def assert_nothing_left(url: str, folder: Path, ports: tuple[int, int], timeout: float = 20) -> None:
    wanted = [*ports, *(p + OFFSET for p in ports)]
    wait_for(lambda: not remote_processes(folder) and not any(listening(p) for p in wanted) and not ssh_clients(url),
             timeout, f"nothing left: remote {remote_processes(folder)}, ports "
             f"{[p for p in wanted if listening(p)]}, ssh here {ssh_clients(url)}")


@contextmanager
def stopped_after(laptop: Path, url: str, env: dict[str, str]):
    """Whatever the test found, a detached run there and its tunnel here end with it."""
    try:
        yield
    finally:
        run_inv("stop", "--on", url, cwd=laptop, env=env, timeout=120)


@pytest.fixture(scope="module")
def speech_wav() -> Path:
    return synthesize(PHRASE, ROOT / ".duplex" / "testdata" / "remote-speech.wav")


def test_run_on_serves_the_microphone_here_syncs_edits_and_ctrl_c_stops_both_sides(laptop, remote, speech_wav):
    url, folder = remote
    ports = ports_pair()
    token = "hf_" + secrets.token_hex(16)  # this machine's token: the remote run gets it in memory only
    run = Run(laptop, "--native", "--on", url, env=env_with(ports, HF_TOKEN=token))
    try:
        run.wait_for(READY)
        # duplex bootstrapped itself there, ran setup and the plan there, on the remote's ports
        assert "installing duplex in" in run.text and (folder / ".venv" / "bin" / "inv").exists()
        [inv_run] = [line for line in remote_processes(folder) if "/.venv/bin/inv run" in line]
        assert f"HF_TOKEN={token}".encode() in Path(f"/proc/{inv_run.split()[0]}/environ").read_bytes()
        assert token not in subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout
        on_disk = subprocess.run(["grep", "-rl", "--exclude-dir=.venv", "--exclude-dir=envs", token, str(folder)],
                                 capture_output=True, text=True)
        assert on_disk.stdout == "" and on_disk.returncode == 1, on_disk.stdout
        assert f"asr {ports[0]}→{ports[0] + OFFSET}, frontend {ports[1]}→{ports[1] + OFFSET}" in run.text
        assert f"healthy at http://127.0.0.1:{ports[0] + OFFSET}" in run.text
        page = f"http://127.0.0.1:{ports[1]}"
        with chromium(fake_microphone=speech_wav) as browser:
            browser.get(page + "/")
            assert browser.execute_script("return window.isSecureContext") is True
            browser.find_element("id", "record").click()
            final = lambda: browser.execute_script(  # noqa: E731
                "return [...document.querySelectorAll('#transcript .final')].map(e => e.textContent).join(' ')")
            text = wait_for(final, 60, "the final transcript through the tunnel", browser)
        assert {"hello", "world", "test"} <= set(text.lower().split()), text

        # an edit saved here is served there by the warm reload
        app = laptop / "servers" / "asr" / "app.py"
        source = app.read_text()
        app.write_text(source.replace('"status": self.status, "ready"', '"status": self.status, "edited": 1, "ready"'))
        start = time.monotonic()
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{ports[0]}/health").json().get("edited") == 1, 20,
                 "the edit served through the tunnel")
        assert time.monotonic() - start < 10
        assert "sent servers/asr/app.py" in run.text
        app.write_text(source)

        run.proc.send_signal(signal.SIGINT)
        assert run.proc.wait(timeout=60) == 130, run.text[-3000:]
        assert "Ctrl-C: stopping the run on 127.0.0.1" in run.text and "Traceback" not in run.text
        assert token not in run.text
        after = run.text.split("Ctrl-C: stopping")[1]  # the remote run's own clean stop, relayed
        assert "asr: stopping" in after and "frontend: stopping" in after
        assert_nothing_left(url, folder, ports)
    finally:
        run.end()


def test_a_killed_connection_stops_the_remote_run_after_the_grace(laptop, remote):
    url, folder = remote
    ports = ports_pair()
    run = Run(laptop, "--native", "--on", url, env=env_with(ports))
    try:
        run.wait_for(READY)
        [master] = [line for line in ssh_clients(url) if "ControlMaster=yes" in line]
        os.kill(int(master.split()[0]), signal.SIGKILL)  # the link dies: no goodbye reaches the remote
        assert run.proc.wait(timeout=30) == 1
        last = run.text.strip().splitlines()[-2:]
        assert any("the connection to" in line and "ended during the run" in line for line in last), last
        wait_for(lambda: not listening(ports[0]), 10, "the forwards here gone with the connection")
        assert listening(ports[0] + OFFSET)  # the grace: the remote run outlives the link a while
        assert_nothing_left(url, folder, ports, timeout=GRACE + 30)
    finally:
        run.end()


def test_detach_then_status_logs_and_stop_on_the_default_target(laptop, remote):
    url, folder = remote
    ports = ports_pair()
    env = env_with(ports)
    with stopped_after(laptop, url, env):
        run = Run(laptop, "--native", "--detach", "--on", env=env)  # bare --on: duplex.local.toml's target
        assert run.proc.wait(timeout=240) == 0, run.text[-3000:]
        assert "the ports stay forwarded" in run.text
        assert httpx.get(f"http://127.0.0.1:{ports[0]}/health").json()["ready"] is True
        status = run_inv("status", "--on", cwd=laptop, env=env)
        assert status.returncode == 0 and "asr" in status.stdout and "running" in status.stdout, status.stdout
        assert "ports forwarded here by ssh pid" in status.stdout + status.stderr
        logs = run_inv("logs", "--on", url, "--service", "asr", "--lines", "5", cwd=laptop, env=env)
        assert logs.returncode == 0 and logs.stdout.strip(), logs.stderr
        never = run_inv("status", "--on", url + "-elsewhere", cwd=laptop, env=env)
        assert never.returncode == 1 and "duplex has not run in 127.0.0.1:" in never.stderr, never.stderr
        follow = subprocess.Popen([sys.executable, "-m", "invoke", "--search-root", str(ROOT), "logs", "--on", "--follow"],
                                  cwd=laptop, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wait_for(lambda: [line for line in remote_processes(folder) if " logs --follow" in line], 30, "logs --follow there")
        time.sleep(1)
        follow.send_signal(signal.SIGINT)  # Ctrl-C here ends the `inv logs --follow` there too
        follow.wait(timeout=30)
        wait_for(lambda: not [line for line in remote_processes(folder) if " logs --follow" in line], 15,
                 "the remote `inv logs --follow` gone with the connection")
        again = run_inv("run", "--native", "--on", cwd=laptop, env=env, timeout=60)
        assert again.returncode == 1 and "a detached run on 127.0.0.1 still has its ports forwarded here" in again.stderr
        assert f"inv stop --on {url}" in again.stderr and "connecting" not in again.stdout, again.stdout + again.stderr
        # a detached run gets no sync on save: `inv restart --on` sends the edit, then restarts there
        app = laptop / "servers" / "asr" / "app.py"
        source = app.read_text()
        app.write_text(source.replace('"status": self.status, "ready"', '"status": self.status, "edited": 2, "ready"'))
        try:
            time.sleep(1)
            assert "edited" not in httpx.get(f"http://127.0.0.1:{ports[0]}/health").json()
            restarted = run_inv("restart", "asr", "--on", cwd=laptop, env=env, timeout=120)
            assert restarted.returncode == 0 and "asr: restarted in" in restarted.stdout, restarted.stdout + restarted.stderr
            assert "sent 1 file" in restarted.stderr  # the one edit, not the project
            assert httpx.get(f"http://127.0.0.1:{ports[0]}/health").json()["edited"] == 2
        finally:
            app.write_text(source)
        stop = run_inv("stop", "--on", cwd=laptop, env=env, timeout=60)
        assert stop.returncode == 0 and "stopped: " in stop.stdout, stop.stdout + stop.stderr
        assert "stopped the forwarded ports here" in stop.stdout + stop.stderr
        assert_nothing_left(url, folder, ports)


def test_containers_there_by_default_reached_here(laptop, remote):
    """Without --native the remote's Docker engine runs every service (production parity), and its
    published ports are forwarded the same way."""
    url, folder = remote
    ports = ports_pair()
    env = env_with(ports)
    with stopped_after(laptop, url, env):
        run = Run(laptop, "--detach", "--on", url, env=env)
        assert run.proc.wait(timeout=900) == 0, run.text[-3000:]
        assert "asr: started (container" in run.text and "frontend: started (container" in run.text
        assert httpx.get(f"http://127.0.0.1:{ports[0]}/health").json()["backend"] == "pocketsphinx"
        assert httpx.get(f"http://127.0.0.1:{ports[1]}/").status_code == 200
        # the laptop restarted (its tunnel gone), the run there still going: a second run is refused
        # there before `inv setup` could touch what the running one uses
        [tunnel] = [line for line in ssh_clients(url) if " -N " in line]
        os.kill(int(tunnel.split()[0]), signal.SIGTERM)
        wait_for(lambda: not listening(ports[0]), 10, "the tunnel gone")
        again = run_inv("run", "--native", "--on", url, cwd=laptop, env=env, timeout=120)
        assert again.returncode == 1, again.stdout + again.stderr
        assert "a run is already going on 127.0.0.1 (asr, frontend); nothing was changed there" in again.stderr
        assert f"inv logs --on {url} --follow" in again.stderr and "Traceback" not in again.stderr
        assert "Running `inv setup`" not in again.stdout and "asr: started" not in again.stdout, again.stdout
        assert httpx.get(f"http://127.0.0.1:{ports[0] + OFFSET}/health").json()["ready"] is True
        stop = run_inv("stop", "--on", url, cwd=laptop, env=env, timeout=120)
        assert stop.returncode == 0 and "stopping container" in stop.stdout, stop.stdout + stop.stderr
        assert_nothing_left(url, folder, ports)


def test_a_port_taken_here_is_one_line_and_nothing_starts_there(laptop, remote):
    url, folder = remote
    ports = ports_pair()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports[1]))
        taken.listen()
        proc = run_inv("run", "--native", "--on", url, cwd=laptop, env=env_with(ports), timeout=240)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"port {ports[1]} on this machine is taken" in proc.stderr and "Traceback" not in proc.stderr
    assert "asr: started" not in proc.stdout
    assert_nothing_left(url, folder, ports)


def test_no_python_there_is_one_line(sshd, laptop, tmp_path):
    """A key whose commands run with a PATH holding the sync's tools but no python3."""
    config = sshd.restricted("no-python", ("sh", "mkdir", "cat", "tar", "rm", "rmdir", "env", "xargs", "rsync"))
    env = env_with(ports_pair(), DUPLEX_SSH_CONFIG=str(config))
    proc = run_inv("run", "--on", sshd.url(tmp_path / "box"), cwd=laptop, env=env, timeout=120)
    assert proc.returncode == 1
    assert "duplex: no python3 on 127.0.0.1" in proc.stderr and "apt-get install python3" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_remotes_own_gpu_fails_its_preflight_across_the_wire(laptop, remote, tmp_path, fake_nvml):
    """The stand-in NVML plays the remote's GPU (a T4 on driver 470); this machine has none. The
    remote's preflight decides, its table comes back, and nothing is left running. (A second sshd
    whose sessions see the stand-in, onto the folder duplex is already installed in.)"""
    box = sshd_support.start(tmp_path / "sshd", env=fakenvml.host_env(fake_nvml, "t4_driver470", tmp_path))
    try:
        folder = remote[1]
        ports = ports_pair()
        env = env_with(ports, DUPLEX_SSH_CONFIG=str(box.client_config()))
        proc = run_inv("run", "--native", "--on", box.url(folder), cwd=laptop, env=env, timeout=300)
        assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr
        assert "cannot start the stack, preflight found" in proc.stdout and "torch cu118" in proc.stdout, proc.stdout[-3000:]
        assert ", moshi 8998" in proc.stderr  # planned there: the remote has the GPU moshi needs
        assert "asr: started" not in proc.stdout
        assert_nothing_left(box.url(folder), folder, ports)
        here = run_inv("config", "--native", "--json", cwd=laptop, env=env)  # this side has no GPU
        assert "moshi" not in [s["name"] for s in json.loads(here.stdout)["services"]]
    finally:
        sshd_support.stop(box)


@pytest.mark.parametrize("case, said, fix", [
    ("unknown host key", "host key is not in known_hosts", "compare the fingerprint"),
    ("key refused", "refused every key offered (duplex never asks for a password)", "ssh-copy-id"),
])
def test_connection_refusals_are_one_line_and_nothing_is_sent(sshd, laptop, tmp_path, case, said, fix):
    folder = tmp_path / "box"
    config = (sshd.client_config("stranger", known_hosts="") if case == "unknown host key" else
              sshd.client_config("unknown-key", identity=sshd_support.keygen(tmp_path / "key")))
    env = env_with(ports_pair(), DUPLEX_SSH_CONFIG=str(config))
    proc = run_inv("run", "--on", sshd.url(folder), cwd=laptop, env=env, timeout=60)
    assert proc.returncode == 1 and said in proc.stderr and fix in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not folder.exists()
    assert not ssh_clients(sshd.url(folder))  # no master left behind


@pytest.mark.parametrize("args, settings, said", [
    (["run", "--on"], "", "`--on` without a target, and no default in duplex.local.toml"),
    (["status", "--on"], "[remote]\nport_offset = -1\n", "[remote]: port_offset: Input should be greater than"),
    (["run", "--on"], "[remote\n", "duplex.local.toml: TOML syntax error"),
    (["run", "--on"], "[stack]\nname = 'x'\n", "unknown table 'stack': this file holds only [remote]"),
    (["run", "--on", "ana@gpu-box:work"], "", "ssh://ana@gpu-box/~/work"),
    (["run", "--native", "--debug", "asr", "--on", "ssh://gpu-box"], "", "--debug with --on"),
])
def test_mistakes_are_one_line_before_any_ssh(laptop, tmp_path, args, settings, said):
    """A copy of the project with its own duplex.local.toml; an ssh spy first on PATH must never run."""
    project = tmp_path / "project"
    shutil.copytree(laptop, project, ignore=shutil.ignore_patterns(".duplex", "duplex.local.toml"))
    if settings:
        (project / "duplex.local.toml").write_text(settings)
    spy = tmp_path / "bin"
    spy.mkdir()
    (spy / "ssh").write_text(f"#!/bin/sh\ntouch {tmp_path / 'ssh-ran'}\nexit 255\n")
    (spy / "ssh").chmod(0o755)
    proc = run_inv(*args, cwd=project, env=env_with(ports_pair(), PATH=f"{spy}:{os.environ['PATH']}"))
    assert proc.returncode in (1, 2) and said in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "ssh-ran").exists()
