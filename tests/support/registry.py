"""A real image registry on 127.0.0.1 (Debian's `docker-registry`, the reference implementation),
and the official base image served from it, so the default path (`FROM python:3.11-slim-bookworm`,
pulled, by digest) runs here for real without Docker Hub.

CI (.ci/run) starts one registry before the engine and gives it to the engine as its Docker Hub
mirror (scripts/docker-engine.sh, DUPLEX_REGISTRY_MIRROR), with the air-gapped base image pushed
into it as `library/python:3.11-slim-bookworm`. On a machine whose engine has no such mirror (a
shared engine nobody may restart), `mirror_engine` starts a second engine of the test's own with
a test registry as its mirror instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from duplex.images.lock import AIR_GAPPED
from tests.support.net import free_port
from tests.support.tools import tool

OFFICIAL = "python:3.11-slim-bookworm"  # what the default stack's envs build FROM
CONFIG = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


class Registry:
    """One `docker-registry serve` process with its own config file and storage folder."""

    def __init__(self, folder: Path, port: int | None = None):
        self.folder = folder
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self.proc: subprocess.Popen | None = None

    @classmethod
    def at(cls, url: str) -> "Registry":
        """A registry someone else runs (CI's mirror), to ask only."""
        return cls(Path("/nonexistent"), int(url.rstrip("/").rsplit(":", 1)[1]))

    def start(self) -> "Registry":
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "config.yml"
        config.write_text(CONFIG.format(data=self.folder / "data", port=self.port))
        self.proc = subprocess.Popen([tool("docker-registry"), "serve", str(config)],
                                     stdout=open(self.folder / "registry.log", "w"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 20
        while not answers(self.url):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("docker-registry did not start:\n" + (self.folder / "registry.log").read_text())
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def digest(self, repository: str, tag: str) -> str | None:
        request = urllib.request.Request(f"{self.url}/v2/{repository}/manifests/{tag}", method="HEAD", headers={
            "Accept": "application/vnd.docker.distribution.manifest.v2+json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                return resp.headers["Docker-Content-Digest"]
        except urllib.error.HTTPError:
            return None

    def delete(self, repository: str, digest: str) -> None:
        """What a registry's garbage collection or a retention policy does to an old digest."""
        request = urllib.request.Request(f"{self.url}/v2/{repository}/manifests/{digest}", method="DELETE")
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert resp.status == 202, resp.status


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/v2/", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def push_as(local: str, target: str, environ: dict | None = None) -> str:
    """Tag `local` as `target` (HOST:PORT/name:tag), push it, drop the tag again; its digest."""
    docker = tool("docker")
    env = environ or os.environ
    subprocess.run([docker, "tag", local, target], check=True, env=env)
    try:
        out = subprocess.run([docker, "push", target], check=True, env=env, capture_output=True, text=True).stdout
    finally:
        subprocess.run([docker, "rmi", target], env=env, capture_output=True)
    return next(w for line in out.splitlines() if "digest:" in line for w in line.split() if w.startswith("sha256:"))


def engine_mirror(environ: dict | None = None) -> str | None:
    """The loopback Docker Hub mirror of the engine DOCKER_HOST names, when it serves the official
    base image (CI's set-up); None otherwise."""
    try:
        info = json.loads(subprocess.run([tool("docker"), "info", "--format", "{{json .RegistryConfig.Mirrors}}"],
                                         capture_output=True, text=True, timeout=20, env=environ or os.environ,
                                         check=True).stdout or "null")
    except (subprocess.SubprocessError, ValueError, OSError):  # no docker CLI: the docker tests say so themselves
        return None
    for mirror in info or ():
        if mirror.startswith("http://127.0.0.1:") and answers(mirror):
            repo, tag = "library/" + OFFICIAL.split(":")[0], OFFICIAL.split(":")[1]
            if Registry.at(mirror).digest(repo, tag):
                return mirror.rstrip("/")
    return None


__all__ = ["AIR_GAPPED", "OFFICIAL", "Registry", "answers", "engine_mirror", "push_as"]
