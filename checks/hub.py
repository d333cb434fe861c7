"""Hugging Face hub probe: the three calls preflight makes (whoami, model info, auth check), short timeouts.

Plain stdlib HTTP against HF_ENDPOINT, so a hub that does not answer costs at most `timeout` seconds
(huggingface_hub's shared client has no timeout for whoami/auth-check). The token is sent, never kept
in results or messages.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from duplex.envfile import hf_token_origin
from duplex.host import hf_home
from duplex.machine import hf_endpoint, seconds_from
from duplex.redact import redact, strip_url, url_secrets
from duplex.syntax import secret_problem
from duplex.textfile import TextFileError, read_text

TIMEOUT = 1.5


@dataclass(frozen=True)
class Answer:
    """One hub reply: HTTP status (None when the hub was not reached), JSON body, error words."""

    status: int | None
    data: dict | None = None
    error: str | None = None  # "timed out", "Connection refused", the hub's error message
    error_code: str | None = None  # the hub's X-Error-Code header: GatedRepo, RepoNotFound ...

    @property
    def reached(self) -> bool:
        return self.status is not None


@dataclass
class HubFacts:
    endpoint: str
    token_source: str | None  # "HF_TOKEN", ".env (...)", "token file /path"; never the token itself
    whoami: Answer | None = None  # None when no token is set
    models: dict[str, Answer] = field(default_factory=dict)  # repo -> model info (gated flag, file sizes)
    access: dict[str, Answer] = field(default_factory=dict)  # repo -> auth-check (only with a token)
    token_problem: str | None = None  # why the token cannot be sent at all (a line break, not Latin-1)


def find_token(environ: dict[str, str], root: Path | None = None) -> tuple[str | None, str | None]:
    """(token, where it came from) the way huggingface_hub looks: HF_TOKEN, then the saved token file.
    tasks.py fills HF_TOKEN from <root>/.env when it is unset: that one is named as the .env token."""
    if environ.get("HF_TOKEN", "").strip():
        value = environ["HF_TOKEN"].strip()
        return value, hf_token_origin(root, value)
    path = Path(environ.get("HF_TOKEN_PATH") or Path(hf_home(environ)) / "token").expanduser()
    try:
        token = read_text(path, limit=64 * 1024, what="token file").strip()
    except (OSError, TextFileError):  # missing, or not a token file at all (HF_TOKEN_PATH=/dev/zero)
        return None, None
    return (token, f"token file {path}") if token else (None, None)


def split_repo(repo: str) -> tuple[str, str | None]:
    name, _, revision = repo.partition("@")
    return name, revision or None


class HubProbe:
    """GET requests against one endpoint with one token; every failure is an Answer, never an exception."""

    def __init__(self, endpoint: str, token: str | None = None, timeout: float = TIMEOUT):
        endpoint = endpoint.rstrip("/")
        self.login = next(iter(url_secrets(endpoint)), None)  # user:password from HF_ENDPOINT
        self.url = endpoint if self.login is None else endpoint.replace(f"{self.login}@", "", 1)
        self.endpoint = strip_url(endpoint)  # what results name: never the credentials
        self.token = token
        self.timeout = timeout

    def get(self, path: str, *, auth: bool = True) -> Answer:
        headers = {"User-Agent": "duplex-preflight", "Accept": "application/json"}
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        elif self.login:  # a mirror behind basic auth: the credentials go in the header, not the URL
            headers["Authorization"] = "Basic " + base64.b64encode(self.login.encode()).decode()
        try:
            request = urllib.request.Request(self.url + path, headers=headers)
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                return Answer(resp.status, _json(resp.read()))
        except urllib.error.HTTPError as exc:
            body = _json(exc.read()) or {}
            error = body.get("error") if isinstance(body.get("error"), str) else None
            return Answer(exc.code, body, self._clean(error or exc.reason), exc.headers.get("X-Error-Code"))
        except (urllib.error.URLError, socket.timeout, TimeoutError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return Answer(None, None, "timed out" if isinstance(reason, (socket.timeout, TimeoutError))
                          else self._clean(str(reason)))

    def _clean(self, text: str | None) -> str | None:
        """A hub's or proxy's words, which may echo the request: never with our token or login in them."""
        if text is None:
            return None
        return redact(str(text)[:300], [v for v in (self.token, self.login) if v])

    def whoami(self) -> Answer:
        return self.get("/api/whoami-v2")

    def model_info(self, repo: str) -> Answer:
        name, revision = split_repo(repo)
        path = f"/api/models/{name}" + (f"/revision/{urllib.parse.quote(revision, safe='')}" if revision else "")
        return self.get(path + "?blobs=true")

    def auth_check(self, repo: str) -> Answer:
        return self.get(f"/api/models/{split_repo(repo)[0]}/auth-check")


def _json(raw: bytes) -> dict | None:
    try:
        data = json.loads(raw or b"null")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def gather(environ: dict[str, str], repos: list[str], *, timeout: float = TIMEOUT,
           probe: HubProbe | None = None, root: Path | None = None) -> HubFacts:
    """Every hub call preflight needs, all at once (threads), each bounded by `timeout`."""
    token, source = find_token(environ, root)
    problem = secret_problem(token) if token else None
    token = None if problem else token  # it cannot go into a header: not "the hub is unreachable"
    endpoint = hf_endpoint(environ)
    hub = probe or HubProbe(endpoint, token, timeout)
    facts = HubFacts(hub.endpoint, source, token_problem=problem)
    jobs: list[tuple[dict | None, str, object]] = [(facts.models, r, lambda r=r: hub.model_info(r)) for r in repos]
    if token:
        jobs.append((None, "whoami", hub.whoami))
        jobs += [(facts.access, r, lambda r=r: hub.auth_check(r)) for r in repos]
    answers: dict[int, Answer] = {}

    def work(i: int, call) -> None:
        answers[i] = call()

    threads = [threading.Thread(target=work, args=(i, job[2]), daemon=True) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout + 0.25  # urlopen bounds each read; this bounds a trickling reply
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    for i, (target, key, _) in enumerate(jobs):
        answer = answers.get(i, Answer(None, None, "timed out"))
        if target is None:
            facts.whoami = answer
        else:
            target[key] = answer
    return facts


def env_timeout(environ: dict[str, str]) -> float:
    """DUPLEX_PREFLIGHT_TIMEOUT, checked: finite seconds up to a minute (or the default)."""
    return seconds_from(environ, "DUPLEX_PREFLIGHT_TIMEOUT", TIMEOUT, high=60.0)


__all__ = ["Answer", "HubFacts", "HubProbe", "find_token", "gather", "split_repo", "env_timeout"]
