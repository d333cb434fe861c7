"""Where a remote run goes: `ssh://[user@]host[:port][/path]` parsed into a `Target`.

Pure. Only the URL form: `user@host:path` (scp's) reads differently to scp, rsync and git, so it is
refused with the URL to type instead. Every part is checked here, before any `ssh` runs: a host
that starts with '-' (`ssh://-oProxyCommand=...`, the classic ssh option injection) and any
character a shell reads as syntax are refused, though duplex never hands a target to a local shell
(it passes argv lists, and `--` before the host).

The remote folder: `ssh://host/srv/app` is the absolute /srv/app, `ssh://host/~/work/app` is
`work/app` in the remote user's home, and no path is `duplex/<stack name>` in that home.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ..errors import DuplexError

HOME_FOLDER = "duplex"  # the default remote folder: ~/duplex/<stack name>
SCHEME = "ssh://"
# A user name as useradd takes it; a host name, an ssh config alias or an IPv4 address; one folder
# name of the remote path. None starts with '-': ssh and rsync would read it as an option.
USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,31}$")
HOST = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$")
PART = re.compile(r"^[A-Za-z0-9_+,=@][A-Za-z0-9._+,=@-]*$")
SHELL_SYNTAX = set(";|&$`<>()'\"\\*?{}!#^ \t")
EXAMPLE = "ssh://user@gpu-box, ssh://user@gpu-box:2222/~/work/app or ssh://[2001:db8::1]/srv/app"


class TargetError(DuplexError):
    """The `--on` value is not a target duplex can reach (a usage mistake: exit 2, as a flag's)."""

    exit_code = 2


@dataclass(frozen=True)
class Target:
    host: str  # a host name, an alias of the user's ssh config, or an IP address (IPv6 unbracketed)
    path: str  # the remote folder: absolute, or relative to the remote user's home
    user: str | None = None  # None: ssh's choice (the config's User, else the local user name)
    port: int | None = None  # None: ssh's choice (the config's Port, else 22)

    @property
    def address(self) -> str:
        """`[user@]host[:port]`, IPv6 in brackets: how messages name the machine."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user + '@' if self.user else ''}{host}{':' + str(self.port) if self.port else ''}"

    @property
    def url(self) -> str:
        """The canonical URL: parsing it gives this target back."""
        return f"{SCHEME}{self.address}{self.path if self.path.startswith('/') else '/~/' + self.path}"

    def ssh_options(self) -> list[str]:
        """The options that say who and which port; the host goes after `--`."""
        return [*(["-l", self.user] if self.user else []), *(["-p", str(self.port)] if self.port else [])]

    def __str__(self) -> str:
        return self.url


def parse_target(text: str, stack_name: str) -> Target:
    """`text` as a Target, or a TargetError that says what is wrong and what to type."""
    def bad(why: str, fix: str = f"give the target as {EXAMPLE}") -> TargetError:
        return TargetError(f"--on {text!r}: {why}", fix=fix)

    if not text.startswith(SCHEME):
        if "://" in text:
            raise bad(f"{text.split('://')[0]}:// is not a way duplex reaches a machine; only ssh:// is")
        if "@" in text or ":" in text:
            raise bad("the scp form (user@host:path) reads differently to scp, rsync and git; duplex takes "
                      "the URL form only", fix=f"write it as {_suggest(text)}")
        raise bad("not an ssh:// URL", fix=f"write it as ssh://{text}" if HOST.fullmatch(text) else
                  f"give the target as {EXAMPLE}")
    rest = text[len(SCHEME):]
    odd = sorted({c for c in rest if c in SHELL_SYNTAX or ord(c) < 32 or ord(c) == 127})
    if odd:
        shown = ", ".join(repr(c) for c in odd)
        raise bad(f"{shown} cannot be part of a host, user or folder name (a shell would read "
                  f"{'it' if len(odd) == 1 else 'them'} as syntax)")
    if "%" in rest:
        raise bad("percent-escapes are not taken: user, host and folder names are plain letters, "
                  "digits and ._-")
    authority, slash, path = rest.partition("/")
    user, at, hostport = authority.rpartition("@")
    if at:
        if ":" in user:
            raise bad("a password in the URL is never taken",
                      fix="log in with a key: `ssh-copy-id` puts yours on the remote, and ssh's agent holds it")
        if not USER.fullmatch(user):
            raise bad(f"{user!r} is not a user name (letters, digits and ._-, not starting with '-' or '.')")
    host, port = _host_port(hostport, bad)
    folder = _folder(slash + path, stack_name, bad)
    return Target(host=host, path=folder, user=user or None, port=port)


def _host_port(text: str, bad) -> tuple[str, int | None]:
    if text.startswith("["):
        inside, close, after = text[1:].partition("]")
        if not close:
            raise bad("an IPv6 address opened with '[' is never closed with ']'")
        try:
            host = str(ipaddress.IPv6Address(inside))
        except ValueError:
            raise bad(f"[{inside}] is not an IPv6 address") from None
        port_text = after[1:] if after.startswith(":") else None
        if after and port_text is None:
            raise bad(f"{after!r} after the address: expected :PORT or /folder")
    else:
        if "[" in text or "]" in text:
            raise bad("brackets are only for an IPv6 address: ssh://[2001:db8::1]")
        host, colon, port_text = text.partition(":")
        if not colon:
            port_text = None
        if not host:
            raise bad("no host")
        if host.startswith("-"):
            raise bad(f"the host {host!r} starts with '-': ssh would read it as an option (an injected "
                      "-oProxyCommand runs a command on this machine)")
        if ":" in port_text if port_text else False:
            raise bad("an IPv6 address goes in brackets: ssh://[2001:db8::1]:22")
        if len(host) > 253 or not HOST.fullmatch(host):
            raise bad(f"{host!r} is not a host name (letters, digits, '-' and '_', dot-separated) nor an IP address")
    if port_text is None:
        return host, None
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise bad(f"port {port_text!r}: expected a number from 1 to 65535")
    return host, int(port_text)


def _folder(path: str, stack_name: str, bad) -> str:
    """The remote folder from the URL's path (see the module's docstring)."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return f"{HOME_FOLDER}/{stack_name}"
    home = parts[0] == "~"
    if home:
        parts = parts[1:]
        if not parts:
            raise bad("the home folder itself: duplex syncs into a folder of its own there",
                      fix=f"name one, e.g. ssh://HOST/~/{HOME_FOLDER}/{stack_name}, or give no path for that default")
    for part in parts:
        if part in (".", ".."):
            raise bad(f"{part!r} in the folder: give the folder as it is, without . or ..")
        if part == "~" or not PART.fullmatch(part):
            raise bad(f"{part!r} is not a folder name duplex takes (letters, digits and ._+,=@-, "
                      "not starting with '-' or '.')")
    return "/".join(parts) if home else "/" + "/".join(parts)


def _suggest(text: str) -> str:
    """The URL an scp-style `user@host:path` most likely meant (shown only: never run)."""
    authority, _, path = text.partition(":")
    if path.startswith("/"):
        return f"{SCHEME}{authority}{path}"
    return f"{SCHEME}{authority}/~/{path}" if path else f"{SCHEME}{authority}"
