"""Who may use the dashboard: the run's random token, given once in the printed link, then kept by
the page in its tab's sessionStorage and sent in a header. Never a cookie: cookies ignore ports, so
every other server on 127.0.0.1 the browser visits would receive it, and a second dashboard's cookie
would replace the first's. Pure: the server asks these questions of each request."""

from __future__ import annotations

import hmac

HEADER = "x-duplex-token"  # every API call: a cross-origin form or link cannot set a header

def same(given: str | None, token: str) -> bool:
    """Constant-time comparison: the token cannot be guessed byte by byte from response times."""
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


def allowed(token: str, *, header: str | None, query: str | None) -> bool:
    """A page or a read: the header (the page's script, scripts) or the link's query."""
    return same(header, token) or same(query, token)


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
