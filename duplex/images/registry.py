"""Image registries, spoken to directly (the Registry HTTP API v2): which digest a tag names, how
much an image is to pull, and whether a pinned digest is still served.

The engine pulls and pushes; this module only asks. Docker Hub names (`python:3.11-slim-bookworm`)
are asked of the engine's mirrors first (`docker info`'s RegistryConfig.Mirrors, where the engine
itself pulls from), then of Docker Hub; a loopback registry is plain HTTP, as the engine treats it.
Standard library only: anonymous bearer tokens (Docker Hub, GHCR) are fetched as the engine does.

Nothing a registry says is trusted before it is checked, since it ends up in images.lock and in
Engine API paths: each request has an overall deadline and a size cap, an answer must be an image
manifest (or index) by its media type, and its digest must be well formed and the hash of the
bytes served (what the engine checks when it pulls).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.message import Message

from .. import bounded
from ..errors import DuplexError
from .references import INDEX_TYPES, MANIFEST_TYPES, host_problem, is_digest

HUB = "docker.io"
HUB_API = "https://registry-1.docker.io"
MANIFESTS = ", ".join(INDEX_TYPES + MANIFEST_TYPES)
LOOPBACK = re.compile(r"(localhost|127(\.\d{1,3}){3}|\[::1\])(:\d+)?")  # fullmatch: a registry host
MANIFEST_LIMIT = 4 * 2**20  # what registries accept (the distribution spec's 4 MiB)
TOKEN_LIMIT = 2**20


class RegistryError(DuplexError):
    """A registry could not answer for an image. `kind`: "unreachable" (no registry answered),
    "missing" (the name or tag is not there), "digest" (the pinned digest is no longer served),
    "malformed" (a registry answered with something that is not an image manifest)."""

    def __init__(self, message: str, fix: str | None = None, kind: str = "unreachable"):
        super().__init__(message, fix)
        self.kind = kind


@dataclass(frozen=True)
class Ref:
    registry: str  # "docker.io", "ghcr.io", "127.0.0.1:5000"
    repository: str  # "library/python", "team/app"
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        """The reference without its digest, as the user wrote it for Docker Hub images."""
        repo = self.repository.removeprefix("library/") if self.registry == HUB else self.repository
        base = repo if self.registry == HUB else f"{self.registry}/{repo}"
        return f"{base}:{self.tag}" if self.tag else base


def parse(reference: str) -> Ref:
    """Split an image reference the way the engine normalises it (docker.io/library/ implied)."""
    rest, _, digest = reference.partition("@")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, remainder
    else:
        registry, path = HUB, rest
    tag = None
    if ":" in path.rsplit("/", 1)[-1]:
        path, tag = path.rsplit(":", 1)
    if registry == HUB and "/" not in path:
        path = "library/" + path
    return Ref(registry, path, tag if tag or digest else "latest", digest or None)


def pinned(reference: str, digest: str) -> str:
    """`name:tag@digest`: still readable, and the engine pulls exactly the digest."""
    return f"{reference.split('@')[0]}@{digest}"


def mirror_urls(mirrors) -> tuple[str, ...]:
    """The engine's Docker Hub mirrors that are http(s) URLs of a host: `docker info` differs
    between engines (the key missing, null, a string); anything else is left out."""
    if not isinstance(mirrors, (list, tuple)):
        return ()
    out = []
    for mirror in mirrors:
        if isinstance(mirror, str) and mirror.startswith(("http://", "https://")):
            host = mirror.split("://", 1)[1].split("/", 1)[0]
            if not host_problem(host.lower()):
                out.append(mirror.rstrip("/"))
    return tuple(out)


def endpoints(ref: Ref, mirrors: tuple[str, ...] = ()) -> list[str]:
    """Base URLs to ask, in the engine's order: mirrors then Docker Hub for Hub names."""
    if ref.registry == HUB:
        return [*mirror_urls(mirrors), HUB_API]
    scheme = "http" if LOOPBACK.fullmatch(ref.registry) else "https"
    return [f"{scheme}://{ref.registry}"]


@dataclass(frozen=True)
class Resolved:
    reference: str  # as asked
    digest: str  # what the tag (or the pinned digest) names
    size: int | None  # bytes to pull for `platform` (compressed layers + config), when the manifest says
    source: str  # the endpoint that answered


def resolve(reference: str, *, mirrors: tuple[str, ...] = (), platform: str = "linux/amd64",
            timeout: float = 5.0) -> Resolved:
    """The digest `reference` names now (or confirms its pinned digest) and its pull size, from the
    first registry that has it. Raises RegistryError with a fix when none does."""
    ref = parse(reference)
    if ref.digest is not None and not is_digest(ref.digest):
        raise RegistryError(f"{reference}: {ref.digest!r} is not a digest (sha256: and 64 hex digits)",
                            fix="pin it again: `inv lock --images`", kind="malformed")
    reached, last = [], None
    for base in endpoints(ref, mirrors):
        try:
            digest, doc = _manifest(base, ref, ref.digest or ref.tag, timeout)
        except _Unreachable as exc:
            last = exc
            continue
        except _Malformed as exc:
            raise RegistryError(f"{base} answered for {ref.name} with what is not an image: {exc}",
                                fix=_malformed_fix(base, mirrors), kind="malformed") from None
        reached.append(base)
        if digest is None:
            continue  # this one lacks it; a later registry (Docker Hub after a mirror) may have it
        return Resolved(reference, digest, _size(base, ref, doc, platform, timeout), base)
    if not reached:
        where = ", ".join(endpoints(ref, mirrors))
        raise RegistryError(f"no registry answered for {ref.name} (asked {where}: {last})",
                            fix=_fixes(reference), kind="unreachable")
    if ref.digest:
        raise RegistryError(f"{ref.name}: the registry no longer serves the pinned digest {ref.digest[:19]}…",
                            fix="re-pin to what the tag names now: `inv lock --images`", kind="digest")
    silent = [b for b in endpoints(ref, mirrors) if b not in reached]
    raise RegistryError(f"{ref.name} does not exist in {', '.join(reached)}"
                        + (f" ({', '.join(silent)} did not answer)" if silent else ""), fix=_fixes(reference),
                        kind="missing")


def _fixes(reference: str) -> str:
    return (f"check the name {reference.split('@')[0]!r} and that this machine reaches its registry (or a "
            "mirror: the engine's --registry-mirror); air-gapped: `sudo bash scripts/base-image.sh` and "
            "DUPLEX_BASE_IMAGE=duplex/python:3.11-bookworm (or the stack's base_image)")


def _malformed_fix(base: str, mirrors) -> str:
    where = ("remove it from the engine's --registry-mirror (daemon.json registry-mirrors)"
             if base in mirror_urls(mirrors) else "correct the image's registry (the stack's base_image, "
                                                   "DUPLEX_BASE_IMAGE)")
    return (f"check that {base} is an image registry (Registry HTTP API v2) you trust, or {where}; "
            "nothing was pinned from it")


class _Unreachable(Exception):
    pass


class _Malformed(Exception):
    """The registry answered, but not with what the API says: nothing of it is used."""


def _manifest(base: str, ref: Ref, what: str, timeout: float) -> tuple[str | None, dict | None]:
    """(digest, document) of one manifest or index, or (None, None) when this registry has no such
    thing. The digest is the sha256 of the bytes served; a registry that names another is refused."""
    url = f"{base}/v2/{ref.repository}/manifests/{what}"
    try:
        body, headers = _get(url, ref, timeout, accept=MANIFESTS, limit=MANIFEST_LIMIT)
    except urllib.error.HTTPError as err:
        if err.code in (404, 401, 403):  # unknown names are 401 on Docker Hub (no such repository)
            return None, None
        raise _Unreachable(f"HTTP {err.code} from {base}") from err
    served = "sha256:" + hashlib.sha256(body).hexdigest()
    named = headers.get("Docker-Content-Digest")
    if named is not None and not is_digest(named.strip()):
        raise _Malformed(f"its digest {named[:80]!r} is not sha256: and 64 lower-case hex digits")
    if named is not None and named.strip() != served:
        raise _Malformed(f"it names the digest {named.strip()[:19]}… but served bytes of {served[:19]}…")
    if what.startswith("sha256:") and what != served:
        raise _Malformed(f"asked for {what[:19]}…, it served bytes of {served[:19]}…")
    return served, _document(body, headers)


def _document(body: bytes, headers: Message) -> dict:
    """The manifest or index as JSON, when the answer is one by its media type (the Content-Type
    the registry sent, else the document's own mediaType) and its shape; else _Malformed."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    sent = str(headers.get("Content-Type") or "").split(";")[0].strip()
    kind = sent if sent in MANIFEST_TYPES + INDEX_TYPES else doc.get("mediaType") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or kind not in MANIFEST_TYPES + INDEX_TYPES or doc.get("schemaVersion") != 2:
        what = f"Content-Type {sent!r}" if sent else "no Content-Type"
        raise _Malformed(f"an answer of {len(body)} bytes with {what}, not a v2 image manifest or index")
    if kind in INDEX_TYPES and not isinstance(doc.get("manifests"), list):
        raise _Malformed("an index without a list of manifests")
    if kind in MANIFEST_TYPES and not isinstance(doc.get("layers"), list):
        raise _Malformed("a manifest without a list of layers")
    return doc


def _size(base: str, ref: Ref, doc: dict | None, platform: str, timeout: float) -> int | None:
    """Bytes to pull for `platform`, when the manifests say; None when they do not (or lie)."""
    try:
        if isinstance(doc, dict) and isinstance(doc.get("manifests"), list):
            os_, _, arch = platform.partition("/")
            match = next((m for m in doc["manifests"] if isinstance(m, dict) and isinstance(m.get("platform"), dict)
                          and m["platform"].get("os") == os_ and m["platform"].get("architecture") == arch), None)
            if match is None or not is_digest(match.get("digest")):
                return None
            _, doc = _manifest(base, ref, match["digest"], timeout)
        if not isinstance(doc, dict) or not isinstance(doc.get("layers"), list):
            return None
        parts = [layer.get("size") if isinstance(layer, dict) else None for layer in doc["layers"]]
        config = doc.get("config", {})
        parts.append(config.get("size", 0) if isinstance(config, dict) else None)
        if not all(type(p) is int and p >= 0 for p in parts):
            return None
        return sum(parts)
    except (_Unreachable, _Malformed, urllib.error.URLError, OSError, ValueError):
        return None


def _fetch(request, timeout: float, limit: int) -> tuple[bytes, Message]:
    """bounded.get, its two refusals in this module's terms."""
    try:
        return bounded.get(request, timeout, limit)
    except bounded.TooSlow as exc:
        raise _Unreachable(str(exc)) from None
    except bounded.TooLarge as exc:
        raise _Malformed(str(exc)) from None


def _get(url: str, ref: Ref, timeout: float, accept: str, limit: int) -> tuple[bytes, Message]:
    request = urllib.request.Request(url, headers={"Accept": accept})
    try:
        try:
            return _fetch(request, timeout, limit)
        except urllib.error.HTTPError as err:
            challenge = err.headers.get("WWW-Authenticate", "") if err.code == 401 else ""
            if not challenge.lower().startswith("bearer"):
                raise
            token = _token(challenge, ref, timeout)
            request.add_header("Authorization", f"Bearer {token}")
            return _fetch(request, timeout, limit)
    except (urllib.error.HTTPError, _Unreachable, _Malformed):
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Unreachable(str(reason) or type(exc).__name__) from exc


def _token(challenge: str, ref: Ref, timeout: float) -> str:
    """An anonymous pull token from the realm the registry named (Docker Hub's auth.docker.io)."""
    fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    realm = fields.get("realm", "")
    if not realm.startswith(("https://", "http://")):
        raise _Malformed(f"it asked for a token but named no http(s) realm to get one from ({challenge[:120]!r})")
    query = {"service": fields.get("service", ""), "scope": fields.get("scope") or f"repository:{ref.repository}:pull"}
    try:
        body, _ = _fetch(urllib.request.Request(f"{realm}?{urllib.parse.urlencode(query)}"), timeout, TOKEN_LIMIT)
    except urllib.error.HTTPError as err:
        raise _Unreachable(f"its token endpoint {realm[:120]} answered HTTP {err.code}") from err
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    token = (data.get("token") or data.get("access_token")) if isinstance(data, dict) else None
    if not isinstance(token, str) or not token or not token.isascii() or not token.isprintable():
        raise _Malformed(f"its token endpoint {realm[:120]} answered no token (expected a JSON object with \"token\")")
    return token


def api_root_problem(host: str, timeout: float = 5.0) -> str | None:
    """Why the registry at `host[:port]` does not answer its API root (`/v2/`: 200, or 401 for a
    login the engine has), or None; within the same deadline as every other request."""
    url = f"{'http' if LOOPBACK.fullmatch(host) else 'https'}://{host}/v2/"
    try:
        _fetch(urllib.request.Request(url), timeout, TOKEN_LIMIT)
    except urllib.error.HTTPError as err:
        return None if err.code == 401 else f"HTTP {err.code} from {url}"
    except (_Unreachable, _Malformed) as exc:
        return f"{url}: {exc}"
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        return f"{url}: {getattr(exc, 'reason', exc) or type(exc).__name__}"
    return None


def probe_registry(references: list[str], *, mirrors: tuple[str, ...] = (), platform: str = "linux/amd64",
                   timeout: float = 5.0) -> dict[str, dict]:
    """Preflight's probe, as plain data: reference -> {"digest", "size"} when a registry serves it,
    else {"kind", "error", "fix"} (see RegistryError)."""
    out: dict[str, dict] = {}
    for reference in references:
        try:
            found = resolve(reference, mirrors=mirrors, platform=platform, timeout=timeout)
            out[reference] = {"digest": found.digest, "size": found.size, "source": found.source}
        except RegistryError as err:
            out[reference] = {"kind": err.kind, "error": str(err), "fix": err.fix}
    return out
