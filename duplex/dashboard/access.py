"""Who may use the dashboard: the run's random token, given once in the printed link, then kept in
a cookie (as Jupyter and Aspire do). Pure: the server asks these questions of each request."""

from __future__ import annotations

import hmac
import secrets

COOKIE = "duplex_dashboard"
HEADER = "x-duplex-token"  # actions also need it: a cross-origin form cannot set a header
QUERY = "t"  # `/?t=...`: the link; the server swaps it for the cookie and drops it from the address


def new_token() -> str:
    return secrets.token_urlsafe(24)


def link(port: int, token: str, host: str = "127.0.0.1") -> str:
    return f"http://{host}:{port}/?{QUERY}={token}"


def same(given: str | None, token: str) -> bool:
    """Constant-time comparison: the token cannot be guessed byte by byte from response times."""
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


def allowed(token: str, *, cookie: str | None, header: str | None, query: str | None) -> bool:
    """A page or a read: the cookie, the header (scripts) or the link's query."""
    return same(cookie, token) or same(header, token) or same(query, token)


def action_allowed(token: str, *, method: str, header: str | None, origin: str | None,
                   host: str | None) -> str | None:
    """None when an action may run, else why not. An action is a POST carrying the token in a header
    (which only our own page's script, or a script of the user's, can set), from no other origin."""
    if method != "POST":
        return "actions are POST requests"
    if not same(header, token):
        return f"the {HEADER} header is missing or wrong"
    if origin is not None and host is not None and origin not in (f"http://{host}", f"https://{host}"):
        return f"a request from another origin ({origin}) is refused"
    return None
