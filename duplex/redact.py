"""No secret in any output: the values to hide, and the one function that hides them in text.

Secrets reach duplex from many places (HF_TOKEN, the project's .env, `hf auth login`'s token file,
the stack's declared `secrets`, a collector's auth headers, `user:password@` inside HF_ENDPOINT or a
proxy URL) and can come back inside text duplex did not write: a hub or proxy that echoes the
request in its error body, a library's exception message, a service's log line. So besides never
putting a secret into a message on purpose, every line duplex shows or keeps passes `redact`:
the known values become `***`, and so does any URL's `user:password@` and any `Bearer ...` value.
"""

from __future__ import annotations

import os
import re
from typing import Iterable

MASK = "***"
SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "API_KEY", "APIKEY", "CREDENTIAL", "AUTH")
# scheme://user[:password]@ : the credentials part of any URL, wherever it appears in text; except
# an ssh:// URL's bare user name (the login name of `inv run --on ssh://ana@gpu-box`, no secret: the
# commands duplex prints to type again must keep it; ssh:// with a password is still masked)
URL_CREDENTIALS = re.compile(r"(?i)\b((?!ssh://[^/\s@:'\"<>]+@)[a-z][a-z0-9+.-]*://)([^/\s@'\"<>]+)@")
# an Authorization header's value, or a credential in a query string / form body
BEARER = re.compile(r"(?i)\b(bearer\s+|basic\s+|(?:access_|api_|auth_)?token=|api_?key=|password=|passwd=|secret=)"
                    r"(?!\*\*\*)([^\s&\"',;]{4,})")
HF_TOKEN_SHAPE = re.compile(r"\bhf_[A-Za-z0-9]{8,}")
MIN_LENGTH = 6  # shorter values are not replaced literally (they would mangle ordinary words)
_DECLARED: set[str] = set()  # the loaded stack's `secrets` names (Project.load declares them)


def declare(names: Iterable[str]) -> None:
    """Host variables the stack declares as `secrets`: their values are hidden too, whatever their names."""
    _DECLARED.update(names)


def strip_url(url: str) -> str:
    """The URL without its credentials: `http://user:secret@host/x` -> `http://***@host/x`."""
    return URL_CREDENTIALS.sub(rf"\g<1>{MASK}@", url)


def url_secrets(value: str) -> list[str]:
    """The `user:password` and password parts of every URL inside `value`."""
    out = []
    for match in URL_CREDENTIALS.finditer(value):
        userinfo = match.group(2)
        out.append(userinfo)
        if ":" in userinfo:
            out.append(userinfo.split(":", 1)[1])
    return out


def secret_key(key: str) -> bool:
    """A variable whose name says it holds a secret (HF_TOKEN, DB_PASSWORD, OPENAI_API_KEY, ...)."""
    upper = key.upper()
    return any(word in upper for word in SECRET_WORDS)


def redact(text: str, values: Iterable[str] = ()) -> str:
    """`text` with every known secret value, URL credential and bearer token replaced by ***."""
    if not text:
        return text
    for value in sorted(values, key=len, reverse=True):
        if value and value in text:
            text = text.replace(value, MASK)
    text = URL_CREDENTIALS.sub(rf"\g<1>{MASK}@", text)
    text = BEARER.sub(rf"\g<1>{MASK}", text)
    return HF_TOKEN_SHAPE.sub(f"hf_{MASK}", text)


class Redactor:
    """`redact` with a set of values that can grow (a token given on the command line, one loaded
    from .env during the task); `values()` re-reads the environment so late arrivals count too."""

    def __init__(self, files: Iterable[str] = (), names: Iterable[str] = ()):
        self.names = set(names)
        self.extra: set[str] = set()
        self._files = set(files)  # what the caller read once from .env and the token file (envfile)

    def add(self, *values: str | None) -> None:
        self.extra.update(v for v in values if v and len(v) >= MIN_LENGTH)

    def values(self) -> list[str]:
        """Longest first; recomputed only when the environment, the declared names or the extra
        values change (every printed line passes here: a chatty service must not pay for it)."""
        key = (len(os.environ), os.environ.get("HF_TOKEN"), len(_DECLARED), len(self.extra))
        if getattr(self, "_key", None) != key:
            found = self._files | self.extra | secret_values_env(os.environ, self.names | _DECLARED)
            self._key, self._values = key, sorted(found, key=len, reverse=True)
        return self._values

    def __call__(self, text: str) -> str:
        return redact(text, self.values())


def secret_values_env(environ, names: set[str]) -> set[str]:
    """The environment's share of `envfile.secret_values` (no file reads: cheap enough for every line)."""
    found: set[str] = set()
    for key, value in environ.items():
        if not value:
            continue
        if key in names or secret_key(key):
            found.add(value.strip())
            for part in re.split(r"[,;\s]+", value):
                found.add(part.partition("=")[2] or part)
        if "@" in value:
            found.update(url_secrets(value))
    return {v for v in found if len(v) >= MIN_LENGTH}


class RedactingStream:
    """A text stream that passes every write through `redactor` on its way to `stream` (writers
    such as print and rich hand over whole texts, so a secret is never split across two writes)."""

    def __init__(self, stream, redactor):
        self._stream = stream
        self._redactor = redactor

    def write(self, text: str) -> int:
        self._stream.write(self._redactor(text))
        return len(text)

    def __getattr__(self, name):  # flush, isatty, fileno, encoding, ...: the real stream's
        return getattr(self._stream, name)
