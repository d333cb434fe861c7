"""moshi releases on a package index: the simple API (PEP 691 JSON, PEP 503 HTML) and its sha256s."""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from html.parser import HTMLParser

from .. import bounded
from ..machine import seconds_from
from .errors import UnknownReleaseError

PROJECT = "moshi"
DEFAULT_INDEX = "https://pypi.org/simple"
TIMEOUT = 60  # seconds per read; a whole answer gets bounded.DEADLINE_READS x this (DUPLEX_VENDOR_TIMEOUT)
PAGE_LIMIT = 16 << 20  # the project page (PyPI's moshi page is tens of KiB)
ARCHIVE_LIMIT = 256 << 20  # an sdist or pure wheel (moshi's are well under 1 MiB)


@dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str
    sha256: str | None
    version: str
    kind: str  # "sdist" | "wheel"
    yanked: bool = False


def index_url(environ: dict[str, str] | None = None) -> str:
    """DUPLEX_VENDOR_INDEX, else pip's PIP_INDEX_URL, else PyPI's simple API."""
    environ = os.environ if environ is None else environ
    return (environ.get("DUPLEX_VENDOR_INDEX") or environ.get("PIP_INDEX_URL") or DEFAULT_INDEX).rstrip("/")


def timeout(environ: dict[str, str] | None = None) -> float:
    """Seconds per read for the index and the download: DUPLEX_VENDOR_TIMEOUT, else TIMEOUT."""
    return seconds_from(os.environ if environ is None else environ, "DUPLEX_VENDOR_TIMEOUT", TIMEOUT)


def version_of(tag: str) -> str:
    """`v0.2.13`, `moshi-v0.2.13` and `0.2.13` all mean version 0.2.13."""
    version = re.sub(r"^(moshi-)?v?", "", tag.strip())
    if not re.fullmatch(r"\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?", version):
        raise UnknownReleaseError(f"{tag!r} is not a moshi release tag",
                                  fix="pass a tag like `--tag v0.2.13` (version 0.2.13)")
    return version


def parse_filename(filename: str) -> tuple[str, str] | None:
    """(version, kind) for a moshi sdist or PURE-Python wheel; None for anything else."""
    found = re.fullmatch(rf"{PROJECT}-([^-]+)\.(tar\.gz|zip)", filename, re.I)
    if found:
        return found.group(1), "sdist"
    found = re.fullmatch(rf"{PROJECT}-([^-]+)(-\d[^-]*)?-([^-]+)-none-any\.whl", filename, re.I)
    if found and all(tag.startswith("py") for tag in found.group(3).split(".")):
        return found.group(1), "wheel"
    return None


def list_files(base: str | None = None) -> list[IndexFile]:
    """Every moshi sdist and pure wheel the index lists (JSON API first, HTML page if that fails).
    The page must arrive whole within the deadline (bounded.TooSlow) and under PAGE_LIMIT
    (bounded.TooLarge); proxies come from the environment."""
    page = f"{base or index_url()}/{PROJECT}/"
    request = urllib.request.Request(page, headers={
        "Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1",
        "User-Agent": "duplex-vendor"})
    raw, headers = bounded.get(request, timeout(), PAGE_LIMIT)
    body = raw.decode("utf-8", "replace")
    kind = headers.get("Content-Type", "")
    if "json" in kind:
        entries = [(f["filename"], f["url"], (f.get("hashes") or {}).get("sha256"), bool(f.get("yanked")))
                   for f in json.loads(body).get("files", [])]
    else:
        entries = _parse_html(body)
    out = []
    for filename, url, sha, yanked in entries:
        parsed = parse_filename(filename)
        if parsed:
            out.append(IndexFile(filename, urllib.parse.urljoin(page, url).split("#")[0], sha,
                                 parsed[0], parsed[1], yanked))
    return out


def choose(files: list[IndexFile], version: str, tag: str) -> IndexFile:
    """The release's sdist, else its pure-Python wheel (moshi 0.2.12 is wheel-only)."""
    mine = [f for f in files if f.version == version]
    if not mine:
        known = sorted({f.version for f in files}, key=_version_key)
        raise UnknownReleaseError(
            f"moshi {version} (tag {tag}) is not on the package index",
            fix=f"pick a released version: {', '.join(known[-8:]) or '(none listed)'}")
    mine.sort(key=lambda f: (f.kind != "sdist", f.yanked))
    return mine[0]


def _version_key(version: str):
    return [int(p) if p.isdigit() else -1 for p in re.split(r"[.a-z]+", version) if p]


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[tuple[str, str, str | None, bool]] = []
        self._href: tuple[str, bool] | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            attrs = dict(attrs)
            self._href = (attrs.get("href") or "", "data-yanked" in attrs)
            self._text = ""

    def handle_data(self, data):
        if self._href is not None:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "a" and self._href is not None:
            href, yanked = self._href
            url, _, fragment = href.partition("#")
            sha = fragment[len("sha256="):] if fragment.startswith("sha256=") else None
            name = self._text.strip() or urllib.parse.unquote(url.rsplit("/", 1)[-1])
            self.links.append((name, href, sha, yanked))
            self._href = None


def _parse_html(body: str):
    parser = _Links()
    parser.feed(body)
    return parser.links


def is_unreachable(exc: BaseException) -> bool:
    """A network failure (fall back to the cache / pip), as opposed to an answer we can act on."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500 or exc.code in (401, 403, 407, 429)
    return isinstance(exc, (urllib.error.URLError, TimeoutError, ConnectionError, OSError))
