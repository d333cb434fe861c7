"""The one module that talks to huggingface_hub: resolve, list, check access, download one file.

Every hub failure leaves here as a ModelError that says what to do next. The token is never put
into a message: huggingface_hub reads it (HF_TOKEN, which tasks.py fills from the project's .env,
or the stored login) and only where it came from travels with us, to choose the advice.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..envfile import DOTENV, hf_token_origin
from ..machine import hf_endpoint
from ..redact import redact, strip_url
from ..syntax import secret_problem
from .errors import (
    DiskFullError,
    GatedModelError,
    HubUnreachableError,
    ModelError,
    ModelNotFoundError,
    PinGoneError,
    TokenRejectedError,
    is_disk_full,
)
from .lock import FileEntry, LockedModel
from .refs import DEFAULT_REVISION, ModelRef

DEFAULT_ENDPOINT = "https://huggingface.co"
DISK_FIX = ("free space on the disk that holds the Hugging Face cache, or point HF_HOME (or "
            "HF_HUB_CACHE) at a larger disk; then rerun `inv prefetch` (files already downloaded are kept)")
LOGIN = "the stored login (`hf auth login`)"
_NETWORK = {"ConnectError", "ConnectionError", "ConnectTimeout", "TimeoutException", "ReadTimeout",
            "NetworkError", "RemoteProtocolError", "ProxyError"}


def endpoint_from(environ: dict[str, str] | None = None) -> str:
    """HF_ENDPOINT (a mirror) or the public hub; read at call time, not at import."""
    return hf_endpoint(os.environ if environ is None else environ)


def token_source(root: Path | str | None = None, environ: dict[str, str] | None = None) -> str | None:
    """Where the token huggingface_hub will send comes from (never the token itself), or None.

    tasks.py copies the .env token into HF_TOKEN when HF_TOKEN is unset, so an HF_TOKEN equal to
    the .env one is taken as the .env one: the advice then names `inv setup --hf-token`."""
    environ = os.environ if environ is None else environ
    value = (environ.get("HF_TOKEN") or "").strip()
    if value:
        return hf_token_origin(root, value)
    from huggingface_hub import get_token  # heavy: only without HF_TOKEN set
    return LOGIN if get_token() else None


@dataclass(frozen=True)
class Hub:
    endpoint: str = DEFAULT_ENDPOINT
    token_present: bool = False
    token_from: str | None = None  # token_source(); "HF_TOKEN" is assumed when only token_present

    @property
    def _source(self) -> str | None:
        return self.token_from or ("HF_TOKEN" if self.token_present else None)

    def _new_token(self) -> str:
        """How to put a new read token in place, where the current one (if any) lives."""
        tokens = f"{self.shown}/settings/tokens"
        if self._source == DOTENV:
            return (f"create a read token at {tokens} and save it with `inv setup --hf-token hf_...` "
                    "(it replaces the one in .env)")
        if self._source == LOGIN:
            return f"create a read token at {tokens} and run `hf auth login` with it (or set HF_TOKEN)"
        if self._source == "HF_TOKEN":
            return f"create a read token at {tokens} and set HF_TOKEN to it (HF_TOKEN wins over .env)"
        return f"create a read token at {tokens} and save it with `inv setup --hf-token hf_...` (or set HF_TOKEN)"

    def check_token(self, environ: dict[str, str] | None = None) -> None:
        """A token no HTTP header can carry (a line break, a character outside Latin-1) is named as
        malformed before any call: not as an unreachable hub, a rejected token or a UnicodeError."""
        value = ((os.environ if environ is None else environ).get("HF_TOKEN") or "").strip()
        problem = secret_problem(value) if value else None
        if problem:
            raise TokenRejectedError(f"the token from {self._source or 'HF_TOKEN'} is malformed: {problem}",
                                     fix=f"copy it again exactly as issued: {self._new_token()}")

    @property
    def shown(self) -> str:
        """The endpoint as messages name it: any `user:password@` in HF_ENDPOINT masked."""
        return strip_url(self.endpoint)

    def _api(self):
        from huggingface_hub import HfApi  # heavy: only commands that ask the hub load it
        return HfApi(endpoint=self.endpoint)

    def resolve(self, ref: ModelRef) -> LockedModel:
        """The commit `ref` names now, and its files with sizes and hashes (two API calls)."""
        from huggingface_hub.hf_api import RepoFile  # heavy: only when asking the hub
        api = self._api()
        try:
            info = api.repo_info(ref.repo, revision=ref.revision)
            files = [f for f in api.list_repo_tree(ref.repo, revision=info.sha, recursive=True)
                     if isinstance(f, RepoFile)]
        except Exception as exc:
            raise self.explain(exc, ref) from exc
        entries = tuple(FileEntry(
            path=f.path, size=int(f.size),
            sha256=f.lfs.sha256 if getattr(f, "lfs", None) else None,
            git_blob=None if getattr(f, "lfs", None) else getattr(f, "blob_id", None),
        ) for f in files)
        return LockedModel(ref.repo, ref.revision, info.sha, entries)

    def check_pin(self, repo: str, commit: str) -> None:
        """The commit models.lock pins is still on the hub: one API call before any download, so a
        force-pushed repo or a wrong pin is named in a second, not after the download client's
        retries end in its generic "cannot find the requested files in the local cache"."""
        try:
            self._api().repo_info(repo, revision=commit)
        except Exception as exc:
            err = self.explain(exc, ModelRef(repo, commit))
            # The real hub answers RevisionNotFound; mirrors differ (olah answers 500): whenever the
            # repo itself still answers, it is the pinned commit that is gone.
            if isinstance(err, (ModelNotFoundError, HubUnreachableError)) and self._exists(repo):
                raise PinGoneError(
                    f"models.lock pins {repo} at {commit[:12]}, a commit {self.shown} no longer has "
                    "(the repo was force-pushed, or the pin is wrong)",
                    fix=f"`inv prefetch --repo {repo} --update` pins what the hub has now (check that "
                        "it still suits you), or put the right commit back in models.lock") from exc
            raise err from exc

    def check_access(self, ref: ModelRef) -> bool:
        """Token and licence check (`auth_check`). False when the endpoint has no such API (mirrors
        like olah answer 404 there for every repo, so a repo that resolved is taken as readable)."""
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError  # heavy: only when asking the hub
        try:
            self._api().auth_check(ref.repo)
        except GatedRepoError as exc:
            raise self.explain(exc, ref) from exc
        except RepositoryNotFoundError as exc:
            if _status(exc) == 404:
                return False
            raise self.explain(exc, ref) from exc
        except Exception as exc:
            raise self.explain(exc, ref) from exc
        return True

    def download(self, repo: str, commit: str, entry: FileEntry, hub_cache: Path,
                 bar: Callable[..., object] | None = None) -> Path:
        """One file into the cache at `commit`; huggingface_hub writes a temp file and renames it
        when whole, so an interruption never leaves a half file under the real name."""
        from huggingface_hub import hf_hub_download  # heavy: only when downloading
        # Its "Not enough free disk space" warning only repeats what prefetch checked up front, and
        # a disk that fills up later ends as DiskFullError: keep the warning off the user's screen.
        warnings.filterwarnings("ignore", message="Not enough free disk space", category=UserWarning)
        try:
            return Path(hf_hub_download(repo, entry.path, revision=commit, cache_dir=str(hub_cache),
                                        endpoint=self.endpoint, tqdm_class=bar or _silent()))
        except Exception as exc:
            raise self.explain(exc, ModelRef(repo, commit)) from exc

    def seal(self, repo: str, commit: str, hub_cache: Path) -> Path:
        """Let huggingface_hub itself see the snapshot as complete: with every file in place this is
        one listing call, and it records the listing (trees/<commit>.json) that offline loads use
        to tell a partial snapshot from a whole one."""
        from huggingface_hub import snapshot_download  # heavy: only when downloading
        try:
            return Path(snapshot_download(repo, revision=commit, cache_dir=str(hub_cache),
                                          endpoint=self.endpoint, tqdm_class=_silent()))
        except Exception as exc:
            raise self.explain(exc, ModelRef(repo, commit)) from exc

    def explain(self, exc: Exception, ref: ModelRef) -> ModelError:
        """Turn a huggingface_hub / HTTP failure into the error that says what to do."""
        from huggingface_hub.errors import (  # heavy: only after the hub failed
            GatedRepoError,
            HfHubHTTPError,
            OfflineModeIsEnabled,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
        where = f"{self.shown}/{ref.repo}"
        if isinstance(exc, ModelError):
            return exc
        if is_disk_full(exc):  # a write into the cache, not the hub: huggingface_hub only warns ahead
            return DiskFullError(f"{ref}: the disk filled up while writing to the Hugging Face cache",
                                 fix=DISK_FIX)
        if isinstance(exc, OfflineModeIsEnabled):
            return HubUnreachableError(f"{ref}: HF_HUB_OFFLINE=1 is set, so the hub cannot be asked",
                                       fix="unset HF_HUB_OFFLINE for `inv prefetch` (servers keep it)")
        src = self._source
        if isinstance(exc, GatedRepoError):
            fix = f"open {where} , log in and accept the licence (access may need the owner's approval)"
            fix += (f"; then rerun `inv prefetch` (it sends the token from {src}: that token's account "
                    f"must be the one granted access, else {self._new_token()})"
                    if src else f"; then {self._new_token()}")
            return GatedModelError(f"{ref.repo} is gated: your account has not been granted access to it"
                                   + (f" (token from {src})" if src else
                                      " (and no token is set: no HF_TOKEN, no .env token, no `hf auth login`)"),
                                   fix=fix)
        if isinstance(exc, RevisionNotFoundError):
            return self._no_revision(ref)
        if isinstance(exc, HfHubHTTPError) and _status(exc) == 401 and _invalid_token(exc):
            return TokenRejectedError(
                f"the hub at {self.shown} rejected the token from {src or 'HF_TOKEN'} "
                "(invalid, expired or revoked)",
                fix=f"{self._new_token()}; the cached models are not used in its place")
        if isinstance(exc, RepositoryNotFoundError):
            if ref.revision != DEFAULT_REVISION and self._exists(ref.repo):
                return self._no_revision(ref)
            fix = ("check the name (ORG/NAME, as on the model page); "
                   + (f"if it is private, make sure the account of the token from {src} can read it"
                      if src else f"if it is private, {self._new_token()}"))
            return ModelNotFoundError(f"{ref.repo}: no such model on {self.shown}", fix=fix)
        if isinstance(exc, HfHubHTTPError) and _status(exc) == 403:
            return TokenRejectedError(f"{ref.repo}: the hub refused access with the token from "
                                      f"{src or 'HF_TOKEN'} (403)",
                                      fix=f"give that token read access to {ref.repo} (fine-grained tokens), "
                                          f"or {self._new_token()}")
        if isinstance(exc, HfHubHTTPError) and (_status(exc) or 0) >= 500 or _is_network(exc):
            what = f"answered {_status(exc)}" if isinstance(exc, HfHubHTTPError) else "did not answer"
            return HubUnreachableError(f"the hub at {self.shown} {what} ({type(exc).__name__})",
                                       fix="check the network or HF_ENDPOINT, then rerun `inv prefetch`")
        return ModelError(f"{ref}: {type(exc).__name__}: {redact(_first_line(exc))}")

    def _no_revision(self, ref: ModelRef) -> ModelNotFoundError:
        return ModelNotFoundError(f"{ref.repo} has no revision {ref.revision!r} on {self.shown}",
                                  fix=f"use a branch, tag or commit listed at {self.shown}/{ref.repo}/tree/main")

    def _exists(self, repo: str) -> bool:
        for attempt in (1, 2):  # olah drops the kept-alive connection after an error answer: ask again
            try:
                self._api().repo_info(repo, revision=DEFAULT_REVISION)
            except Exception as exc:  # noqa: BLE001 - any failure to ask: the caller keeps its own error
                if attempt == 1 and _is_network(exc):
                    continue
                return False
            return True
        return False


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _invalid_token(exc: Exception) -> bool:
    response = getattr(exc, "response", None)
    message = response.headers.get("X-Error-Message", "") if response is not None else ""
    return "invalid credentials" in message.lower() or "invalid user token" in message.lower()


def _is_network(exc: BaseException | None) -> bool:
    while exc is not None:
        if any(cls.__name__ in _NETWORK for cls in type(exc).__mro__):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def _silent():
    """A tqdm class that never draws, for the calls whose progress we show ourselves."""
    from tqdm.auto import tqdm  # heavy: only when downloading

    class Silent(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            super().__init__(*args, **{**kwargs, "disable": True})

    return Silent


def file_bar(on_bytes: Callable[[int], None]) -> Callable[..., object]:
    """A tqdm class for hf_hub_download that forwards each chunk's size to `on_bytes`."""
    base = _silent()

    class Bar(base):
        def update(self, n=1):
            if n:
                on_bytes(int(n))

    return Bar
