"""Where a moshi release comes from: the package index (cached, sha256-verified), a git tag, a local path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import bounded
from ..layout import Layout
from . import index
from .errors import HashMismatchError, UnknownReleaseError, VendorError
from .tree import file_sha256, manifest, tree_hash

Progress = Callable[[str], None]
CACHEDIR_TAG = "Signature: 8a477f597d28d172789f06886806bc55\n# duplex download cache; safe to delete\n"


@dataclass
class Fetched:
    """A release on local disk, and what is known about where it came from."""

    path: Path                  # an archive file, or a folder (git checkout, --from DIR)
    source: str                 # "pypi" | "git" | "local"
    url: str
    tag: str
    version: str
    sha256: str | None = None   # of the archive (None for folders / git)
    verified: str = "none"      # "index" | "pip" | "cache" | "commit" | "none"
    commit: str | None = None
    notes: list[str] = field(default_factory=list)


def cache_dir(root: Path) -> Path:
    path = Layout(root).cache / "vendor"
    path.mkdir(parents=True, exist_ok=True)
    tag = path.parent / "CACHEDIR.TAG"
    if not tag.exists():
        tag.write_text(CACHEDIR_TAG)
    return path


# --- package index ----------------------------------------------------------------------------

def fetch_pypi(root: Path, tag: str, progress: Progress, *, base: str | None = None) -> Fetched:
    """The release's sdist (or pure wheel) from the index cache, else downloaded; always hash-checked.

    Cases: (1) the index answers and publishes a sha256 -> the cached file with that hash, else a
    download verified against it; (2) the index answers without a hash -> download, record our own
    hash, say so; (3) the index is unreachable -> a file cached earlier for this version (its folder
    name is the hash it was verified with), else `pip download` (pip checks the index's hash too);
    (4) the index answers too slowly (stalled or trickling past the deadline) -> the cached file,
    else an error: pip would wait on the same index one read at a time.
    """
    version = index.version_of(tag)
    base = base or index.index_url()
    try:
        files = index.list_files(base)
    except (bounded.TooSlow, bounded.Incomplete) as exc:  # pip would meet the same index
        return _offline(root, tag, version, base, exc, progress, pip=False)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise UnknownReleaseError(f"the index {base} has no project 'moshi'",
                                      fix="check DUPLEX_VENDOR_INDEX / PIP_INDEX_URL") from exc
        if not index.is_unreachable(exc):
            raise
        return _offline(root, tag, version, base, exc, progress)
    except (OSError, ValueError) as exc:
        return _offline(root, tag, version, base, exc, progress)
    chosen = index.choose(files, version, tag)
    notes = []
    if chosen.yanked:
        notes.append(f"{chosen.filename} is yanked on the index; vendoring it because it was asked for by version")
    if chosen.kind == "wheel":
        notes.append(f"moshi {version} has no sdist on the index: using its pure-Python wheel "
                     "(licences from the wheel's metadata)")
    cached = _cached(root, chosen.filename, chosen.sha256)
    if cached:
        progress(f"using cached {chosen.filename} (sha256 {chosen.sha256[:12]}, as the index publishes)")
        path = cached
    else:
        path = _download(root, chosen, progress)
    verified = "index" if chosen.sha256 else "none"
    if not chosen.sha256:
        notes.append("the index publishes no sha256 for this file; recorded the downloaded file's own hash")
    return Fetched(path, "pypi", chosen.url, tag, version, file_sha256(path), verified, notes=notes)


def _cached(root: Path, filename: str, sha256: str | None) -> Path | None:
    if not sha256:
        return None
    path = cache_dir(root) / sha256 / filename
    if path.is_file() and file_sha256(path) == sha256:
        return path
    return None


def _download(root: Path, chosen: index.IndexFile, progress: Progress) -> Path:
    progress(f"downloading {chosen.url}")
    cache = cache_dir(root)
    fd, tmp = tempfile.mkstemp(prefix=".download-", dir=cache)
    try:
        request = urllib.request.Request(chosen.url, headers={"User-Agent": "duplex-vendor"})
        with os.fdopen(fd, "wb") as out:
            out.write(bounded.get(request, index.timeout(), index.ARCHIVE_LIMIT)[0])
        got = file_sha256(Path(tmp))
        if chosen.sha256 and got != chosen.sha256:
            raise HashMismatchError(
                f"{chosen.filename}: sha256 {got} does not match the index's {chosen.sha256}",
                fix="the download was altered on the way (proxy?) or the index is wrong; the vendored tree is "
                    "untouched - retry, or vendor a file you trust with `--from PATH`")
        final = cache / got / chosen.filename
        final.parent.mkdir(exist_ok=True)
        os.replace(tmp, final)
        return final
    except (urllib.error.URLError, OSError, bounded.TooLarge) as exc:
        raise VendorError(f"downloading {chosen.url} failed: {exc}",
                          fix="check the network / proxy (SSL_CERT_FILE for an intercepting proxy), or "
                              "vendor an archive you have with `--from PATH`") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _offline(root: Path, tag: str, version: str, base: str, exc: BaseException, progress: Progress,
             pip: bool = True) -> Fetched:
    for path in sorted(cache_dir(root).glob("*/moshi-*")):
        parsed = index.parse_filename(path.name)
        if parsed and parsed[0] == version and file_sha256(path) == path.parent.name:
            progress(f"index {base} unreachable ({exc}); using {path.name} cached earlier")
            return Fetched(path, "pypi", f"{base}/moshi/ (cached {path.name})", tag, version, path.parent.name,
                           "cache", notes=["index unreachable: used the copy cached and verified earlier"])
    if not pip:
        how = "is too slow" if isinstance(exc, bounded.TooSlow) else "answered only in part"
        raise VendorError(f"the package index {base} {how} ({exc}) and no copy of moshi {version} is cached",
                          fix="check the network / proxy, point DUPLEX_VENDOR_INDEX at another index (or raise "
                              "DUPLEX_VENDOR_TIMEOUT, seconds per read), or vendor an archive with `--from PATH`")
    progress(f"index {base} unreachable through urllib ({exc}); trying `pip download`")
    return _pip_download(root, tag, version, exc)


def _pip_download(root: Path, tag: str, version: str, cause: BaseException) -> Fetched:
    work = Path(tempfile.mkdtemp(prefix="pip-", dir=cache_dir(root)))
    try:
        for binary in (["--no-binary", ":all:"], ["--only-binary", ":all:"]):
            proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                                   *binary, "--dest", str(work), f"moshi=={version}"],
                                  capture_output=True, text=True, timeout=600)
            got = [p for p in work.iterdir() if index.parse_filename(p.name)]
            if proc.returncode == 0 and got:
                sha = file_sha256(got[0])
                final = cache_dir(root) / sha / got[0].name
                final.parent.mkdir(exist_ok=True)
                os.replace(got[0], final)
                return Fetched(final, "pypi", f"pip download moshi=={version}", tag, version, sha, "pip",
                               notes=["fetched with pip (its index settings; pip checked the index's hash)"])
        if "No matching distribution" in proc.stderr:
            raise UnknownReleaseError(f"moshi {version} (tag {tag}) is not on the package index",
                                      fix="pick a released version (`pip index versions moshi`)")
        raise VendorError(f"the package index is unreachable ({cause}) and no copy is cached",
                          fix="check the network / proxy, or vendor an archive with `--from PATH`")
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- git and local paths ----------------------------------------------------------------------

def fetch_git(root: Path, url: str, tag: str, work: Path, progress: Progress) -> Fetched:
    """A shallow clone at the tag; `moshi-vX.Y.Z` (upstream's style) is tried after the tag as given."""
    version = index.version_of(tag)
    refs = remote_tags(url)
    for name in dict.fromkeys([tag, f"moshi-{tag}", f"moshi-v{version}", f"v{version}", version]):
        if name in refs:
            break
    else:
        near = sorted(r for r in refs if version.split(".")[0] in r)[-8:]
        raise UnknownReleaseError(f"{url} has no tag {tag!r} (nor moshi-v{version})",
                                  fix=f"pick one of its tags: {', '.join(near) or '(none)'}")
    progress(f"cloning {url} at {name} ({refs[name][:12]})")
    _git(["clone", "--quiet", "--depth", "1", "--branch", name, "--", url, str(work)], "cloning " + url)
    head = _git(["-C", str(work), "rev-parse", "HEAD"], "reading the clone's commit").strip()
    if head != refs[name]:
        raise HashMismatchError(f"{url}: tag {name} moved while cloning ({refs[name][:12]} -> {head[:12]})",
                                fix="retry; if upstream re-tagged, check why before vendoring")
    return Fetched(work, "git", url, name, version, None, "commit", head)


def remote_tags(url: str) -> dict[str, str]:
    """tag -> commit (annotated tags peeled) from `git ls-remote --tags`."""
    out: dict[str, str] = {}
    for line in _git(["ls-remote", "--tags", "--", url], f"listing the tags of {url}").splitlines():
        sha, _, ref = line.partition("\t")
        name = ref.removeprefix("refs/tags/")
        if name.endswith("^{}"):
            out[name[:-3]] = sha
        else:
            out.setdefault(name, sha)
    return out


def _git(args: list[str], what: str) -> str:
    if not shutil.which("git"):
        raise VendorError("git is not installed", fix="install git, or use the index (`--source pypi`)")
    # `--` before every URL (one starting with '-' is no option); only the ordinary transports
    # (never ext::, which runs a command named in the URL)
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": "file:git:http:https:ssh"}
    proc = subprocess.run(["git", *args], capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode:
        raise VendorError(f"{what} failed: {proc.stderr.strip()}",
                          fix="check the URL and your access to it (`git ls-remote URL`)")
    return proc.stdout


def fetch_local(path: Path, tag: str) -> Fetched:
    """An sdist / wheel / zip file or an unpacked folder on this machine (air-gapped updates)."""
    try:
        path = Path(os.path.realpath(Path(path).expanduser(), strict=True))
    except FileNotFoundError:
        path = Path(path).expanduser().absolute()  # reported below as no such file or folder
    except (OSError, RuntimeError) as exc:  # a loop of links (ELOOP), a folder we may not enter
        raise VendorError(f"--from {path}: cannot be followed ({getattr(exc, 'strerror', None) or exc})",
                          fix="point --from at the moshi sdist, wheel or unpacked folder itself, "
                              "not at a loop of links") from None
    version = index.version_of(tag)
    if path.is_dir():
        return Fetched(path, "local", path.as_uri(), tag, version, None, "none",
                       notes=[f"folder tree {tree_hash(manifest(path))[:19]}... (not verifiable against an index)"])
    if not path.is_file():
        raise VendorError(f"--from {path}: no such file or folder",
                          fix="point --from at a moshi sdist (.tar.gz), wheel (.whl) or unpacked folder")
    return Fetched(path, "local", path.as_uri(), tag, version, file_sha256(path), "none",
                   notes=["local file: its sha256 is recorded, not verified against an index"])
