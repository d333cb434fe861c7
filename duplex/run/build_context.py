"""A container build's context: what the Dockerfiles COPY besides the project's files, staged under
`.duplex/build/` before each build (the proxy's CA bundle, the torch wheels pip may take locally)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..envs import sources
from ..errors import RunError
from ..layout import Layout
from ..plan import ServicePlan

PEM = b"-----BEGIN CERTIFICATE-----"


def ca_bundle(environ: dict[str, str] | None = None) -> bytes:
    """The CA bundle builds hand to pip behind a TLS-intercepting proxy: DUPLEX_CA_BUNDLE, else
    SSL_CERT_FILE or PIP_CERT when they name a file, else none. DUPLEX_CA_BUNDLE is the user's
    explicit choice, so a typo there is an error now rather than a TLS failure deep in a build."""
    environ = os.environ if environ is None else environ
    chosen = environ.get("DUPLEX_CA_BUNDLE")
    if chosen:
        fix = "point DUPLEX_CA_BUNDLE at a readable PEM bundle (your proxy's CA certificates), or unset it"
        try:
            data = Path(chosen).expanduser().read_bytes()
        except OSError as exc:
            raise RunError(f"DUPLEX_CA_BUNDLE={chosen} cannot be read: {exc.strerror or exc}", fix=fix) from None
        if PEM not in data:
            raise RunError(f"DUPLEX_CA_BUNDLE={chosen} holds no PEM certificate ({PEM.decode()} ...)", fix=fix)
        return data
    for var in ("SSL_CERT_FILE", "PIP_CERT"):
        path = environ.get(var)
        if path and Path(path).is_file():
            return Path(path).read_bytes()
    return b""


def stage_build_ca(root: Path, *, keep: bool = False) -> Path:
    """Write the CA bundle the Dockerfiles COPY (`.duplex/build/ca.pem`, maybe empty) into the
    build context; `keep`: leave one that is already there (Compose builds of a published stack)."""
    path = Layout(root).build_ca
    if not (keep and path.exists()):
        data = ca_bundle()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:  # atomically: a full disk must not leave a cut-off bundle for the next build
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
    return path


def stage_wheels(root: Path, svc: ServicePlan) -> dict[str, str]:
    """For an image with a torch build (`TORCH` build arg): link into `.duplex/build/wheels` the
    wheels of pip's find-links whose hash the env's lock pins (the Dockerfiles COPY the folder and
    pip finds them first). When those hold every locally-labelled build the lock pins (`+cpu`), the
    image needs no PyTorch index: the returned build args say so (TORCH_INDEX empty), as `inv setup`
    skips it for the same lock. Other images: nothing staged, no change."""
    folder = Layout(root).build_wheels
    shutil.rmtree(folder, ignore_errors=True)
    torch = svc.build_args.get("TORCH")
    lock = Path(root) / "envs" / (svc.env or "") / f"requirements.{torch}.lock"
    if not torch or not lock.is_file():
        return {}
    text = lock.read_text(encoding="utf-8")
    links = sources.find_links()
    wheels = sources.wheels_for(text, links)
    if wheels:
        folder.mkdir(parents=True, exist_ok=True)
        for name, path in wheels.items():
            try:
                os.link(path, folder / name)  # same disk: no copy of a large wheel
            except OSError:
                shutil.copy2(path, folder / name)
    return {} if sources.index_needed(text, links) else {"TORCH_INDEX": ""}
