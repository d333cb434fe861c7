"""Image registries, spoken to directly (the Registry HTTP API v2): which digest a tag names, how
much an image is to pull, and whether a pinned digest is still served.

The engine pulls and pushes; this module only asks. Docker Hub names (`python:3.11-slim-bookworm`)
are asked of the engine's mirrors first (`docker info`'s RegistryConfig.Mirrors, where the engine
itself pulls from), then of Docker Hub; a loopback registry is plain HTTP, as the engine treats it.
Standard library only: anonymous bearer tokens (Docker Hub, GHCR) are fetched as the engine does.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from .errors import DuplexError

HUB = "docker.io"
HUB_API = "https://registry-1.docker.io"
MANIFESTS = ", ".join((
    "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"))
LISTS = ("index", "manifest.list")
LOOPBACK = re.compile(r"^(localhost|127(\.\d{1,3}){3}|\[::1\])(:\d+)?$")


class RegistryError(DuplexError):
    """A registry could not answer for an image. `kind`: "unreachable" (no registry answered),
    "missing" (the name or tag is not there), "digest" (the pinned digest is no longer served)."""

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


def endpoints(ref: Ref, mirrors: tuple[str, ...] = ()) -> list[str]:
    """Base URLs to ask, in the engine's order: mirrors then Docker Hub for Hub names."""
    if ref.registry == HUB:
        return [m.rstrip("/") for m in mirrors] + [HUB_API]
    scheme = "http" if LOOPBACK.match(ref.registry) else "https"
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
    reached, last = [], None
    for base in endpoints(ref, mirrors):
        try:
            digest, doc = _manifest(base, ref, ref.digest or ref.tag, timeout)
        except _Unreachable as exc:
            last = exc
            continue
        reached.append(base)
        if digest is None:
            continue  # this one lacks it; a later registry (Docker Hub after a mirror) may have it
        return Resolved(reference, ref.digest or digest, _size(base, ref, doc, platform, timeout), base)
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


class _Unreachable(Exception):
    pass


def _manifest(base: str, ref: Ref, what: str, timeout: float) -> tuple[str | None, dict | None]:
    """(digest, document) of one manifest, or (None, None) when this registry has no such thing."""
    url = f"{base}/v2/{ref.repository}/manifests/{what}"
    try:
        body, headers = _get(url, ref, timeout, accept=MANIFESTS)
    except urllib.error.HTTPError as err:
        if err.code in (404, 401, 403):  # unknown names are 401 on Docker Hub (no such repository)
            return None, None
        raise _Unreachable(f"HTTP {err.code} from {base}") from err
    digest = headers.get("Docker-Content-Digest") or (what if what.startswith("sha256:") else None)
    if digest is None:
        import hashlib
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
    try:
        return digest, json.loads(body)
    except ValueError:
        return digest, None


def _size(base: str, ref: Ref, doc: dict | None, platform: str, timeout: float) -> int | None:
    try:
        if doc and any(kind in str(doc.get("mediaType", "")) for kind in LISTS) or (doc and "manifests" in doc):
            os_, _, arch = platform.partition("/")
            match = next((m for m in doc.get("manifests", []) if (m.get("platform") or {}).get("os") == os_
                          and (m.get("platform") or {}).get("architecture") == arch), None)
            if match is None:
                return None
            _, doc = _manifest(base, ref, match["digest"], timeout)
        if not doc or "layers" not in doc:
            return None
        return sum(int(layer.get("size", 0)) for layer in doc["layers"]) + int(doc.get("config", {}).get("size", 0))
    except (_Unreachable, urllib.error.URLError, OSError, ValueError, KeyError, TypeError):
        return None


def _get(url: str, ref: Ref, timeout: float, accept: str) -> tuple[bytes, dict]:
    request = urllib.request.Request(url, headers={"Accept": accept})
    try:
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                return resp.read(10_000_000), dict(resp.headers)
        except urllib.error.HTTPError as err:
            challenge = err.headers.get("WWW-Authenticate", "") if err.code == 401 else ""
            if not challenge.lower().startswith("bearer"):
                raise
            token = _token(challenge, ref, timeout)
            request.add_header("Authorization", f"Bearer {token}")
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                return resp.read(10_000_000), dict(resp.headers)
    except urllib.error.HTTPError:
        raise
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Unreachable(str(reason)) from exc


def _token(challenge: str, ref: Ref, timeout: float) -> str:
    """An anonymous pull token from the realm the registry named (Docker Hub's auth.docker.io)."""
    fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    query = {"service": fields.get("service", ""), "scope": fields.get("scope") or f"repository:{ref.repository}:pull"}
    with urllib.request.urlopen(f"{fields['realm']}?{urllib.parse.urlencode(query)}", timeout=timeout) as resp:
        data = json.loads(resp.read(1_000_000))
    return data.get("token") or data.get("access_token") or ""


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
