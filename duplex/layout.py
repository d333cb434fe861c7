"""Every path duplex keeps under a project's `.duplex/` folder, named in one place.

Pure: it names paths and creates nothing. What lives there: envs (the services' venvs), logs and
the last run's service list, run state, certificates, the image build context's extras (the CA
bundle, a wheelhouse), tools fetched on demand (debugpy), caches and vendoring snapshots.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def python_in(venv: Path) -> Path:
    """A venv's interpreter, on every platform."""
    return Path(venv) / ("Scripts/python.exe" if os.name == "nt" else "bin/python")




def _part(name: str) -> str:
    """A service, env or stack name as one path component: never a way out of `.duplex/`. The
    stack file and the flags keep names to one rule already; this guards every other way in
    (a hand-edited run state, a library caller)."""
    if not name or "/" in name or "\\" in name or name.startswith(".") or "\x00" in name:
        raise ValueError(f"{name!r} cannot name a file under .duplex/")
    return name


@dataclass(frozen=True)
class Layout:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def base(self) -> Path:
        return self.root / ".duplex"

    # -- envs: `.duplex/envs/<name>` is what native runs use (see duplex.envs.layout) ----------
    @property
    def envs(self) -> Path:
        return self.base / "envs"

    def env(self, name: str) -> Path:
        return self.envs / _part(name)

    def env_python(self, name: str) -> Path:
        return python_in(self.env(name))

    # -- a run ---------------------------------------------------------------------------
    @property
    def logs(self) -> Path:
        return self.base / "logs"

    def log(self, service: str) -> Path:
        return self.logs / f"{_part(service)}.log"

    @property
    def last_run(self) -> Path:
        """The current (or last) run's services in start order: beside their logs, because the
        run state empties as services stop and `inv logs` still wants the last run's logs."""
        return self.logs / "run.json"

    @property
    def state(self) -> Path:
        return self.base / "run" / "state.json"

    @property
    def run_lock(self) -> Path:
        """Held by the `inv run` that is starting (or, attached, running) the stack."""
        return self.base / "run" / "lock"

    @property
    def action_lock(self) -> Path:
        """Held by the action on the run in progress (`inv stop`, `inv restart`, the dashboard's buttons)."""
        return self.base / "run" / "action.lock"

    # -- certificates (`inv certs`) ---------------------------------------------------------
    @property
    def certs(self) -> Path:
        return self.base / "certs"

    def stack_certs(self, stack: str) -> Path:
        """The folder moshi's `--ssl` expects: `cert.pem` and `key.pem` side by side (+ `bundle.pem`:
        the system roots plus the local CA, for services that call a TLS service: SSL_CERT_FILE)."""
        return self.certs / _part(stack)

    @property
    def ca(self) -> Path:
        return self.certs / "ca" / "ca.pem"

    # -- image builds: extras the Dockerfiles COPY from the build context --------------------
    @property
    def build(self) -> Path:
        return self.base / "build"

    @property
    def build_ca(self) -> Path:
        """The CA bundle pip uses inside image builds (maybe empty: the Dockerfiles COPY it always)."""
        return self.build / "ca.pem"

    @property
    def build_wheels(self) -> Path:
        """The wheelhouse torch images install from when the host holds the locked build."""
        return self.build / "wheels"

    # -- evaluation (`inv eval`) -------------------------------------------------------------
    @property
    def eval(self) -> Path:
        """The latest `inv eval`'s eval.json and eval.html (the dashboard links them) and the
        default set it builds."""
        return self.base / "eval"

    # -- remote machines (`duplex.remote`) -------------------------------------------------
    @property
    def remote(self) -> Path:
        """Per target: what the last sync sent (`<key>/sent.json`); `ssh/`, 0700: the SSH
        connections' control sockets."""
        return self.base / "remote"

    # -- tools, caches, vendoring ------------------------------------------------------------
    @property
    def tools(self) -> Path:
        return self.base / "tools"

    @property
    def cache(self) -> Path:
        return self.base / "cache"

    @property
    def vendor(self) -> Path:
        """Snapshots `inv vendor-moshi --rollback` restores."""
        return self.base / "vendor"
