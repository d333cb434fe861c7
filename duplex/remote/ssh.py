"""The remote machine through the system's OpenSSH client: one connection per target, shared.

`ssh` from PATH, so the user's config (`~/.ssh/config`, or the file `DUPLEX_SSH_CONFIG` names),
agent and known_hosts apply as they do to their own `ssh`. duplex adds only: BatchMode (it never
prompts: no password, no "accept this host key?"), a connect timeout, keep-alives, and a
ControlMaster whose socket lives in a 0700 folder of the project's `.duplex/remote/ssh/`, so every
command after the first rides one authenticated connection (a few ms instead of a handshake).

Remote commands are argv lists: `shlex.join` quotes every argument for the remote's POSIX shell (the
login shell of the remote user; csh-like shells are not supported). An ssh failure becomes one
`SshError` line with its fix (`kind` says which), never ssh's banner of warnings.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..errors import DuplexError
from ..layout import Layout
from .target import Target

CONFIG_VARIABLE = "DUPLEX_SSH_CONFIG"  # an ssh config file used instead of ~/.ssh/config (ssh -F)
CONNECT_TIMEOUT = 10  # seconds for TCP connect and the SSH banner (ssh's ConnectTimeout)
PERSIST = 300  # a master nobody closed (duplex killed) ends this long after its last session
# Unix sockets hold 108 bytes of path, and ssh appends 17 random characters while creating one.
MAX_SOCKET_PATH = 88


class SshError(DuplexError):
    """Reaching the remote machine or running a command there failed. `kind`: host-key-unknown,
    host-key-changed, auth, refused, timeout, resolve, unreachable, closed, no-ssh,
    missing-command, command, port-taken or ssh."""

    def __init__(self, message: str, fix: str | None = None, kind: str = "ssh"):
        super().__init__(message, fix)
        self.kind = kind


def target_key(target: Target) -> str:
    """A short stable name for a target's files under `.duplex/remote/`."""
    return hashlib.sha256(target.url.encode()).hexdigest()[:12]


def control_dir(root: Path) -> Path:
    """The 0700 folder of the control sockets: `.duplex/remote/ssh`, or, when the project's path is
    too long for a socket, or holds characters rsync's `-e` would split on or ssh would expand
    (`%h` in a ControlPath is the host), a folder of this user's own under the system's temporary folder."""
    folder = (Layout(root).remote / "ssh").absolute()
    if len(str(folder)) + 14 > MAX_SOCKET_PATH or any(c.isspace() or c in "'\"\\%" for c in str(folder)):
        folder = Path(tempfile.gettempdir()) / f"duplex-ssh-{os.getuid()}"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise SshError(f"{folder} is not a folder of yours: duplex keeps its SSH connections' sockets there",
                       fix=f"remove it (`rm -rf {folder}`) and run again")
    if stat.S_IMODE(info.st_mode) != 0o700:
        folder.chmod(0o700)
    return folder


def classify(target: Target, returncode: int, stderr: str, what: str) -> SshError | None:
    """ssh's own failure (exit 255 and its message) as one line with its fix; None when the
    output is not one of ssh's (the remote command's own exit 255, or success)."""
    if returncode != 255:
        return None
    where = target.address
    manual = by_hand(target)
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr or "Host key for" in stderr and "has changed" in stderr:
        return SshError(f"{what}: {where}'s host key has changed since it was recorded in known_hosts",
                        fix="if the machine was reinstalled, check its new key with its owner, then "
                        f"`ssh-keygen -R {shlex.quote(_known_name(target))}` and connect once by hand "
                        f"(`{manual}`); otherwise someone may be in the middle: do not connect",
                        kind="host-key-changed")
    if "Host key verification failed" in stderr:
        return SshError(f"{what}: {where}'s host key is not in known_hosts, and duplex never accepts one for you",
                        fix=f"connect once by hand (`{manual}`), compare the fingerprint with the machine's "
                        "own (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` there) and answer yes",
                        kind="host-key-unknown")
    if "Permission denied" in stderr:
        return SshError(f"{what}: {where} refused every key offered (duplex never asks for a password)",
                        fix="put your public key on the remote (`ssh-copy-id` with the same user, host and "
                        f"port), or load it into your agent (`ssh-add`); `{manual} true` must work without a prompt",
                        kind="auth")
    if "Connection refused" in stderr:
        return SshError(f"{what}: nothing accepts SSH connections at {where}",
                        fix="check the host and port (a Port in your ssh config applies too), and that sshd "
                        "runs there", kind="refused")
    if "timed out" in stderr or "Connection timed out" in stderr:
        return SshError(f"{what}: {where} did not answer within {CONNECT_TIMEOUT} s",
                        fix="check that the machine is up and reachable from here (VPN, firewall, the port)",
                        kind="timeout")
    if "Could not resolve hostname" in stderr:
        return SshError(f"{what}: no machine is called {target.host!r} (the name does not resolve)",
                        fix="check the name, or add a Host entry for it in your ssh config", kind="resolve")
    if "No route to host" in stderr or "Network is unreachable" in stderr:
        return SshError(f"{what}: {where} is unreachable from here (no route)",
                        fix="check your network, VPN or the address", kind="unreachable")
    if "closed by remote host" in stderr or "Connection closed by" in stderr or "kex_exchange_identification" in stderr \
            or "Broken pipe" in stderr or "Connection reset" in stderr:
        return SshError(f"{what}: {where} closed the connection ({_last_line(stderr)})",
                        fix="check the machine's sshd (its log says why: MaxStartups, a banned address, a reboot)",
                        kind="closed")
    if not stderr.strip() or stderr.lstrip().startswith("ssh:") or "ssh" in _last_line(stderr).split(":")[0]:
        return SshError(f"{what}: ssh to {where} failed ({_last_line(stderr) or 'exit 255, no message'})",
                        fix=f"run `{manual} true` by hand to see why", kind="ssh")
    return None


def by_hand(target: Target) -> str:
    """The `ssh` a user types to reach the target themselves (to accept its key, to try a command)."""
    return shlex.join(["ssh", *target.ssh_options(), target.host])


def _known_name(target: Target) -> str:
    """How known_hosts names the host: `[host]:port` for a port other than 22."""
    return f"[{target.host}]:{target.port}" if target.port and target.port != 22 else target.host


def reason(stderr: str) -> str:
    """The line of a failed command's stderr that says why: its last (a traceback's exception),
    unless that is a tool's summary (tar's "Exiting with failure status"): then its first."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    summary = ("Exiting with failure status", "Error is not recoverable", "rsync error:")
    return lines[0] if any(s in lines[-1] for s in summary) else lines[-1]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


class Connection:
    """The SSH connection to one target: `open()` starts (or joins) its master, `run()` runs an argv
    there, `close()` stops the master if this object started it. A context manager."""

    def __init__(self, target: Target, root: Path, *, config: Path | None = None,
                 connect_timeout: int = CONNECT_TIMEOUT):
        self.target = target
        self.root = Path(root)
        self.config = config if config is not None else (Path(os.environ[CONFIG_VARIABLE])
                                                          if os.environ.get(CONFIG_VARIABLE) else None)
        self.connect_timeout = connect_timeout
        self.socket = control_dir(self.root) / target_key(target)
        self.master_pid: int | None = None  # set when this object started the master
        self.opened_seconds = 0.0

    # -- the ssh command line -----------------------------------------------------------------
    def options(self, *, master: bool = False, shared: bool = True) -> list[str]:
        """Everything between `ssh` and `--`: the user's config, duplex's few options, the target's.
        `shared=False`: a connection of its own, outliving the master (a detached run's tunnel)."""
        control = ["ControlMaster=yes", "-o", f"ControlPersist={PERSIST}"] if master else ["ControlMaster=no"]
        path = str(self.socket) if shared else "none"
        return [*(["-F", str(self.config)] if self.config else []),
                "-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout}",
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR",
                "-o", f"ControlPath={path}", "-o", *control, *self.target.ssh_options()]

    def command(self, argv: list[str], *, cwd: str | None = None) -> list[str]:
        """The local argv that runs `argv` on the remote (in `cwd`, relative to the remote home
        unless absolute). Every argument is quoted for the remote shell."""
        remote = shlex.join(argv)
        if cwd is not None:
            remote = f"cd -- {shlex.quote(cwd)} && exec {remote}"
        return ["ssh", *self.options(), "--", self.target.host, remote]

    def rsync_shell(self) -> str:
        """rsync's `-e`: this connection's ssh (rsync appends the host and its server command).
        control_dir() keeps the socket's path free of what rsync's own splitting would break on."""
        return " ".join(shlex.quote(a) for a in ["ssh", *self.options()])

    # -- the master -----------------------------------------------------------------------------
    def alive(self) -> int | None:
        """The master's pid while it answers on the socket, else None."""
        if not self.socket.exists():
            return None
        try:
            proc = subprocess.run(["ssh", *self.options(), "-O", "check", "--", self.target.host],
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
        except FileNotFoundError:
            raise _no_ssh() from None
        text = proc.stderr + proc.stdout
        if proc.returncode == 0 and "pid=" in text:
            return int(text.split("pid=")[1].split(")")[0])
        return None

    def open(self) -> Connection:
        """Authenticate once and keep the connection for every later command. A live master for
        the same target (another duplex command of this project) is joined, not replaced."""
        if self.alive():
            return self
        self.socket.unlink(missing_ok=True)  # a socket left by a master that died
        start = time.monotonic()
        argv = ["ssh", *self.options(master=True), "-f", "-N", "--", self.target.host]
        # The master forks into the background after authenticating and keeps its stderr: a file,
        # not a pipe (a pipe would never reach end-of-file while the master lives).
        with tempfile.TemporaryFile(mode="w+") as err:
            try:
                proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                      timeout=self.connect_timeout + 30)
            except FileNotFoundError:
                raise _no_ssh() from None
            except subprocess.TimeoutExpired:
                raise SshError(f"connecting to {self.target.address}: no answer within "
                               f"{self.connect_timeout + 30} s", fix="check that the machine is up and "
                               "reachable from here", kind="timeout") from None
            err.seek(0)
            stderr = err.read()
        if proc.returncode != 0:
            raise classify(self.target, 255, stderr, f"connecting to {self.target.address}") or SshError(
                f"connecting to {self.target.address}: ssh exited {proc.returncode}: {_last_line(stderr)}",
                fix="run the same `ssh` by hand to see why")
        self.master_pid = self.alive()
        self.opened_seconds = time.monotonic() - start
        return self

    def close(self, timeout: float = 5) -> None:
        """Stop the master this object started: it takes no new session and ends when the running
        ones do (within `timeout` when none runs). A master joined from elsewhere is left alone."""
        if self.master_pid is None:
            return
        pid, self.master_pid = self.master_pid, None
        subprocess.run(["ssh", *self.options(), "-O", "stop", "--", self.target.host],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        deadline = time.monotonic() + timeout
        while running(pid) and time.monotonic() < deadline:
            time.sleep(0.02)

    def __enter__(self) -> Connection:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- ports ---------------------------------------------------------------------------------
    def forward(self, local_port: int, remote_port: int, remote_host: str = "127.0.0.1") -> None:
        """Make 127.0.0.1:`local_port` here reach `remote_host`:`remote_port` as the remote sees it,
        through the open master (the browser's page on 127.0.0.1 is a secure context)."""
        self._port_request("forward", local_port, remote_port, remote_host)

    def cancel_forward(self, local_port: int, remote_port: int, remote_host: str = "127.0.0.1") -> None:
        self._port_request("cancel", local_port, remote_port, remote_host)

    def _port_request(self, request: str, local_port: int, remote_port: int, remote_host: str) -> None:
        spec = f"127.0.0.1:{local_port}:{remote_host}:{remote_port}"
        try:
            proc = subprocess.run(["ssh", *self.options(), "-O", request, "-L", spec, "--", self.target.host],
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=15)
        except FileNotFoundError:
            raise _no_ssh() from None
        if proc.returncode == 0:
            return
        what = f"forwarding 127.0.0.1:{local_port} to {remote_host}:{remote_port} on {self.target.address}"
        if "forwarding failed" in proc.stderr or "forwarding request failed" in proc.stderr:
            raise port_taken(what, local_port, " (or not ours to listen on)")
        if "No such file" in proc.stderr or "Connection refused" in proc.stderr and not self.socket.exists():
            raise SshError(f"{what}: the connection is not open", fix="open() it first", kind="closed")
        raise classify(self.target, 255, proc.stderr, what) or SshError(
            f"{what}: ssh exited {proc.returncode}: {_last_line(proc.stderr)}", fix="run again", kind="ssh")

    # -- commands --------------------------------------------------------------------------------
    def run(self, argv: list[str], *, cwd: str | None = None, input: str | bytes | None = None,
            timeout: float | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """Run `argv` on the remote and wait: its exit status and output (text unless `input` is
        bytes). An ssh failure is an SshError always; the command's own failure only with `check`
        (exit 127 with "not found": the program is missing there)."""
        binary = isinstance(input, bytes)
        try:
            proc = subprocess.run(self.command(argv, cwd=cwd), input=input, capture_output=True,
                                  text=not binary, timeout=timeout,
                                  stdin=subprocess.DEVNULL if input is None else None)
        except FileNotFoundError:
            raise _no_ssh() from None
        stderr = proc.stderr.decode(errors="replace") if binary else proc.stderr
        self.raise_for(argv, proc.returncode, stderr, check=check)
        return proc

    def popen(self, argv: list[str], *, cwd: str | None = None, **kwargs) -> subprocess.Popen:
        """Start `argv` on the remote without waiting (streams: pass stdin/stdout as Popen takes
        them); check its end with `raise_for`."""
        try:
            return subprocess.Popen(self.command(argv, cwd=cwd), **kwargs)
        except FileNotFoundError:
            raise _no_ssh() from None

    def raise_for(self, argv: list[str], returncode: int, stderr: str, *, check: bool = True) -> None:
        """The SshError for a finished remote command, if it failed (see `run`)."""
        what = f"`{shlex.join(argv)[:80]}` on {self.target.address}"
        error = classify(self.target, returncode, stderr, what)
        if error:
            raise error
        if not check or returncode == 0:
            return
        if returncode == 127 and ("not found" in stderr or "No such file" in stderr):
            program = argv[0]
            raise SshError(f"{what}: {program} is not installed there (or not on the PATH ssh gives "
                           "non-interactive sessions)",
                           fix=f"install {program} on {self.target.host} (Debian/Ubuntu: `sudo apt-get install "
                           f"{_package(program)}`); `{by_hand(self.target)} command -v {program}` must find it",
                           kind="missing-command")
        raise SshError(f"{what} exited {returncode}: {reason(stderr) or 'no message'}",
                       fix="run it there by hand to see the whole output", kind="command")


def _package(program: str) -> str:
    """The Debian package of a program duplex runs remotely."""
    return {"python3": "python3 python3-venv", "tar": "tar", "rsync": "rsync"}.get(program, program)


def running(pid: int) -> bool:
    """Whether the process lives. The master is init's child once it forks away: a zombie until
    init reaps it (seconds, under some container inits) counts as ended."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): kill's answer
    return stat_line.rpartition(")")[2].split()[0] != "Z"


def port_taken(what: str, port: int, why: str = "") -> SshError:
    """A forward whose port here is taken: the tool that names the listener on this system."""
    names = f"lsof -nP -iTCP:{port} -sTCP:LISTEN" if sys.platform == "darwin" else f"ss -ltnp 'sport = :{port}'"
    return SshError(f"{what}: port {port} on this machine is taken{why}",
                    fix=f"stop what listens there (`{names}` names it) or use another port", kind="port-taken")


def _no_ssh() -> SshError:
    return SshError("no ssh client on this machine (`ssh` is not on PATH)",
                    fix="install OpenSSH's client (Debian/Ubuntu: `sudo apt-get install openssh-client`; macOS has one)",
                    kind="no-ssh")
