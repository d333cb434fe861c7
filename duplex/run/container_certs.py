"""The stack's certificates as a container's user can read them: `inv run --tls` mounts the cert folder
into containers that run as the host's UID (or 1000 for root), and the key is 0600."""

from __future__ import annotations

import os
from pathlib import Path

from ..certs import CERT_FILES, CertError, write_atomically


def for_container(folder: Path | str, uid: int, gid: int) -> Path:
    """The cert folder a container running as uid:gid can read. The key is 0600 and owned by the
    host user; when that is root and the container is not (the images run as the host's UID, or
    1000 for root), hand the container a copy owned by its own user, still 0600."""
    folder = Path(folder)
    if os.geteuid() != 0 or uid == 0:
        return folder  # the container runs as the files' owner (or as root): they are readable
    copy = folder.parent / f".{folder.name}-uid{uid}"
    try:
        copy.mkdir(mode=0o700, exist_ok=True)
        os.chown(copy, uid, gid)
        for name in CERT_FILES:
            write_atomically(copy / name, (folder / name).read_bytes(), private=True)
            os.chown(copy / name, uid, gid)
    except OSError as exc:
        raise CertError(f"cannot stage the certificates in {folder} for the container user {uid}:{gid} "
                        f"({exc})", fix="run `inv certs` again (it remakes missing files), then `inv run --tls`") from exc
    return copy
