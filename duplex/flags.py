"""Every CLI flag's value checked where it enters: a mistake is a UsageError (exit 2) that says
what was expected, never a traceback from invoke nor a value silently taken to mean something else
(`--services ''` is not "every service", `--repo ''` is not "every model")."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

from .errors import DuplexError
from .images.references import REGISTRY_RULE, registry_problem
from .syntax import MAX_REPLICAS, NAME_RULE, REPO, URL, VERSION_ONLY, cert_host_problem, name_error, secret_problem

# Only light rules here (syntax.py): `inv --list` imports this module and must not load pydantic.

TORCH = ("auto", "cpu", "none")  # or cuXXX


class UsageError(DuplexError):
    """A flag's value is not one the task can take."""

    exit_code = 2


def names(value: str | None, flag: str = "--services") -> list[str] | None:
    """A comma-separated list of service names (once each), or None when the flag was not given."""
    if value is None:
        return None
    found = [s.strip() for s in value.split(",") if s.strip()]
    if not found:
        raise UsageError(f"{flag} needs at least one service name, e.g. {flag} asr,frontend "
                         "(leave the flag out for every service)")
    bad = [n for n in found if name_error(n)]
    if bad:
        raise UsageError(f"{flag} {', '.join(map(repr, bad))}: service names are {NAME_RULE}")
    return list(dict.fromkeys(found))


def replicas(value: str | list[str] | None) -> dict[str, int]:
    """`--replicas asr=2` (repeatable, or asr=2,mt=3): how many of each service this run starts,
    from 1 to 64 (the stack file's limit). Whether each name is a service of this run is the plan's to say."""
    given = [value] if isinstance(value, str) else list(value or [])
    found: dict[str, int] = {}
    for item in (part.strip() for text in given for part in text.split(",")):
        service, eq, count = item.partition("=")
        service, count = service.strip(), count.strip()
        if not eq or not service:
            raise UsageError(f"--replicas {item!r}: expected SERVICE=COUNT, e.g. --replicas asr=2")
        if name_error(service):
            raise UsageError(f"--replicas {item!r}: service names are {NAME_RULE}")
        if not count.isdigit():
            raise UsageError(f"--replicas {item!r}: {count!r} is not a whole number of replicas")
        if not 1 <= int(count) <= MAX_REPLICAS:
            raise UsageError(f"--replicas {item!r} is out of range: give 1 to {MAX_REPLICAS} replicas "
                             "(leave a service out with --services instead of 0)")
        found[service] = int(count)
    return found


def name(value: str | None, flag: str, what: str = "service") -> str | None:
    """One name (`--service`, `--env`), by the stack file's rule: it becomes a path under .duplex/."""
    if value is not None and name_error(value):
        raise UsageError(f"{flag} {value!r}: {what} names are {NAME_RULE}")
    return value


def number(value, flag: str, *, default, kind=int, low=0, high=None):
    """A whole number or seconds: not 'many', not negative, not inf, not absurd."""
    if value is None:
        return default
    try:
        found = kind(value)
    except (TypeError, ValueError):
        raise UsageError(f"{flag} {value!r} is not {'a whole number' if kind is int else 'a number'}") from None
    if (kind is float and not math.isfinite(found)) or found < low or (high is not None and found > high):
        limits = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise UsageError(f"{flag} {value!r} is out of range: give {limits}")
    return found


def choice(value: str | None, flag: str, choices: tuple[str, ...], pattern: str | None = None,
           also: str = "") -> str | None:
    if value is None or value in choices or (pattern and re.fullmatch(pattern, value)):
        return value
    raise UsageError(f"{flag} {value!r}: expected one of {', '.join(choices)}{also}")


def modes(value: str | None, known: tuple[str, ...]) -> tuple[str, ...]:
    """`inv eval --modes batch,stream`: some of `known`, in their order; every one when not given."""
    if value is None:
        return known
    found = [m.strip() for m in value.split(",") if m.strip()]
    bad = [m for m in found if m not in known]
    if bad or not found:
        raise UsageError(f"--modes {value!r}: expected one or more of {', '.join(known)}, comma-separated")
    return tuple(m for m in known if m in found)


def torch(value: str | None) -> str | None:
    return choice(value, "--torch", TORCH, r"cu\d{3}", " or cuXXX (e.g. cu128)")


def otlp(url: str | None) -> str | None:
    """`--otlp URL`: the collector every service exports traces to (OTLP over HTTP)."""
    if url is not None and not URL.fullmatch(url):
        raise UsageError(f"--otlp {url!r} is not a collector URL: give the OTLP/HTTP endpoint, "
                         "e.g. --otlp http://127.0.0.1:4318")
    return url


def python(value: str | None) -> str | None:
    """`--python`: a version like 3.11, or an interpreter that is there (a path or a name on PATH)."""
    if value is None or VERSION_ONLY.fullmatch(value):
        return value
    if ("/" in value or value.startswith(".")) and Path(value).expanduser().is_file():
        return value
    if "/" not in value and shutil.which(value):
        return value
    raise UsageError(f"--python {value!r} is neither a version like 3.11 nor an interpreter on this machine "
                     "(a path, or a name on PATH such as python3.11)")


def hf_token(value: str | None) -> str | None:
    if value is not None and secret_problem(value):
        raise UsageError(f"--hf-token: {secret_problem(value)}; pass the token exactly as issued")
    return value


def repos(repo: str | None, revision: str | None, services: str | None) -> str | None:
    """`prefetch --repo ORG/NAME [--revision REV]` as one reference, or None for the stack's models."""
    if revision is not None and repo is None:  # the stack's models carry their own revisions
        raise UsageError("--revision needs --repo ORG/NAME; to pin a stack model, write it as "
                         "ORG/NAME@REV in stack.toml")
    if repo is not None and services is not None:
        raise UsageError("give either --repo or --services, not both")
    if repo is None:
        return None
    ref = f"{repo}@{revision}" if revision is not None else repo
    if not REPO.fullmatch(ref):
        raise UsageError(f"--repo {repo!r}" + (f" --revision {revision!r}" if revision is not None else "")
                         + ": expected ORG/NAME (and a branch, tag or commit), e.g. --repo Systran/faster-whisper-base")
    return ref


def registry(value: str | None) -> str | None:
    """`--registry HOST[:PORT]/PREFIX`: a real host name (or address) and port, by the one rule."""
    if value is not None and registry_problem(value):
        raise UsageError(f"--registry {value!r} is not a registry prefix like ghcr.io/team or 127.0.0.1:5000/team "
                         f"({registry_problem(value)}); give {REGISTRY_RULE}")
    return value


def git_url(value: str | None) -> str | None:
    """A URL git may clone: one starting with '-' would be an option, `ext::` runs a command."""
    if value is not None and (not value.strip() or value.startswith("-") or value.lower().startswith("ext::")):
        raise UsageError(f"--url {value!r} is not a git repository URL (e.g. https://github.com/kyutai-labs/moshi)")
    return value


def path(value: str | None, flag: str, what: str) -> str | None:
    if value is not None and not value.strip():
        raise UsageError(f"{flag} needs {what}")
    return value


def hosts(values: list[str]) -> list[str]:
    """`certs --name`: host names or addresses the local CA may sign (never a wildcard)."""
    for host in values:
        if cert_host_problem(host):
            raise UsageError(f"--name {host!r}: {cert_host_problem(host)}")
    return values
