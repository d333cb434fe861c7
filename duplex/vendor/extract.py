"""Safe extraction of sdists, wheels and zips: nothing lands outside the folder, no links out, no devices.

Every member is checked by name before anything is written, so a bad archive is refused whole
(the caller then throws the staging folder away). Where Python has tarfile's "data" filter
(3.11.4+, 3.10.12+) it is applied as well, as a second line of defence.
"""

from __future__ import annotations

import posixpath
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from .errors import UnsafeArchiveError, VendorError

MAX_BYTES = 1 << 30  # 1 GiB unpacked: moshi is ~0.5 MB; anything near this is a decompression bomb
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip", ".whl")


def is_archive(path: Path) -> bool:
    return Path(path).name.lower().endswith(ARCHIVE_SUFFIXES)


def extract(archive: Path, dest: Path) -> Path:
    """Unpack ``archive`` into the (new, empty) folder ``dest`` after checking every member."""
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=False)
    name = archive.name.lower()
    try:
        if name.endswith((".zip", ".whl")):
            _extract_zip(archive, dest)
        else:
            _extract_tar(archive, dest)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        if isinstance(exc, UnsafeArchiveError):
            raise
        raise VendorError(f"{archive.name}: not a readable archive ({exc})",
                          fix="download it again (a truncated file?) or point --from at the real sdist/wheel") from exc
    return dest


def check_name(archive: str, member: str) -> str:
    """The member's normalised relative path, or UnsafeArchiveError for absolute / escaping names."""
    if "\\" in member or "\0" in member:
        raise UnsafeArchiveError(f"{archive}: member {member!r} has a backslash or NUL in its name",
                                 fix=_REFUSED)
    if member.startswith("/") or PurePosixPath(member).is_absolute() or (len(member) > 1 and member[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member {member!r} has an absolute path", fix=_REFUSED)
    parts = PurePosixPath(member).parts
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: member {member!r} climbs out of the folder ('..')", fix=_REFUSED)
    return posixpath.normpath(member)


def check_link(archive: str, member: str, target: str, *, hard: bool = False) -> None:
    """A link may only point inside the archive (relative, never through '..' past the top)."""
    if target.startswith("/") or (len(target) > 1 and target[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: link {member!r} points to the absolute path {target!r}", fix=_REFUSED)
    base = "" if hard else posixpath.dirname(member)
    resolved = posixpath.normpath(posixpath.join(base, target))
    if resolved == ".." or resolved.startswith("../"):
        raise UnsafeArchiveError(f"{archive}: link {member!r} -> {target!r} points outside the archive",
                                 fix=_REFUSED)


_REFUSED = ("nothing was extracted and the vendored tree is unchanged; take the release from the "
            "package index (`--source pypi`) or check where this archive came from")


def _extract_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        total = 0
        for m in members:
            check_name(archive.name, m.name)
            if m.issym():
                check_link(archive.name, m.name, m.linkname)
            elif m.islnk():
                check_name(archive.name, m.linkname)
                check_link(archive.name, m.name, m.linkname, hard=True)
            elif not (m.isfile() or m.isdir()):
                raise UnsafeArchiveError(f"{archive.name}: member {m.name!r} is a device, FIFO or other special "
                                         "file", fix=_REFUSED)
            total += max(m.size, 0)
            if total > MAX_BYTES:
                raise UnsafeArchiveError(f"{archive.name}: unpacks to more than {MAX_BYTES >> 20} MiB",
                                         fix=_REFUSED)
        if hasattr(tarfile, "data_filter"):
            try:
                tar.extractall(dest, members=members, filter="data")
            except tarfile.FilterError as exc:
                raise UnsafeArchiveError(f"{archive.name}: {exc}", fix=_REFUSED) from exc
        else:  # pragma: no cover - old patch releases without PEP 706; the checks above still hold
            for m in members:
                m.mode &= 0o755
            tar.extractall(dest, members=members)


def _extract_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        total = 0
        for info in infos:
            check_name(archive.name, info.filename)
            kind = stat.S_IFMT(info.external_attr >> 16)
            if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
                what = "a symlink" if kind == stat.S_IFLNK else "a special file"
                raise UnsafeArchiveError(f"{archive.name}: member {info.filename!r} is {what}", fix=_REFUSED)
            total += info.file_size
            if total > MAX_BYTES:
                raise UnsafeArchiveError(f"{archive.name}: unpacks to more than {MAX_BYTES >> 20} MiB",
                                         fix=_REFUSED)
        root = dest.resolve()
        for info in infos:
            target = (dest / check_name(archive.name, info.filename)).resolve()
            if root not in target.parents and target != root:
                raise UnsafeArchiveError(f"{archive.name}: member {info.filename!r} escapes the folder", fix=_REFUSED)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                while block := src.read(1 << 20):
                    out.write(block)
            if (info.external_attr >> 16) & 0o111:
                target.chmod(0o755)
