"""token: HF_TOKEN present when a model needs one, accepted by HF_ENDPOINT, with access to each gated model.

The token itself never appears in a result: only where it came from (HF_TOKEN, the project's .env
saved by `inv setup --hf-token`, or the token file of `hf auth login`), which chooses the advice.
"""

from __future__ import annotations

from . import Context, Result, fail, passed, skip, warn
from .hub import Answer, HubFacts

TOKENS_PAGE = "https://huggingface.co/settings/tokens"


def _gated(answer: Answer | None) -> bool | None:
    """True/False from the model info, None when the hub did not say."""
    if answer is None or answer.status != 200 or answer.data is None:
        return None
    return bool(answer.data.get("gated"))


def _unreachable(facts: HubFacts, answer: Answer) -> str:
    return f"could not reach {facts.endpoint} ({answer.error or 'no answer'})"


def _set_token(src: str | None) -> str:
    """How to put a new token in place, where the current one lives (.env from `inv setup`, ...)."""
    if src and src.startswith(".env"):
        return "save it with `inv setup --hf-token hf_...` (it replaces the one in .env)"
    if src and src.startswith("token file"):
        return "run `hf auth login` with it (or `inv setup --hf-token hf_...`, used when HF_TOKEN is unset)"
    if src == "HF_TOKEN":
        return "`export HF_TOKEN=hf_...` (HF_TOKEN takes precedence over .env and `hf auth login`)"
    return "save it with `inv setup --hf-token hf_...` (or `export HF_TOKEN=hf_...`)"


NETWORK_FIX = ("check the network or proxy (HTTPS_PROXY, SSL_CERT_FILE), or set HF_ENDPOINT to a mirror; "
               "once every model is in the cache, HF_HUB_OFFLINE=1 skips the hub")


def check(ctx: Context, facts: HubFacts | None) -> list[Result]:
    repos = list(ctx.models())
    if not repos:
        return [skip("token", "no service in this run uses a Hugging Face model")]
    if ctx.offline or facts is None:
        return [skip("token", "HF_HUB_OFFLINE is set: the hub is not contacted, models must already be cached",
                     "unset HF_HUB_OFFLINE to check the token and model access")]
    if facts.token_problem:
        return [fail("token", f"the token from {facts.token_source} is malformed: {facts.token_problem}",
                     f"copy the token exactly as issued ({TOKENS_PAGE}) and {_set_token(facts.token_source)}")] + \
               [skip(f"token.{r}", "the token is malformed", "fix the token first") for r in repos]
    if facts.token_source is None:
        return _without_token(ctx, facts, repos)
    return _with_token(ctx, facts, repos)


def _without_token(ctx: Context, facts: HubFacts, repos: list[str]) -> list[Result]:
    gated = [r for r in repos if _gated(facts.models.get(r))]
    unknown = [r for r in repos if _gated(facts.models.get(r)) is None]
    out: list[Result] = []
    if gated:
        out.append(fail("token", f"no token is set (HF_TOKEN, .env, `hf auth login`) and {', '.join(gated)} "
                                 f"{'is' if len(gated) == 1 else 'are'} gated (licence required)",
                        f"create a read token at {TOKENS_PAGE}, accept the licence at "
                        f"{ctx.endpoint}/{gated[0].split('@')[0]}, then {_set_token(None)}"))
    elif unknown:
        first = facts.models.get(unknown[0])
        why = _unreachable(facts, first) if first is None or not first.reached else f"HTTP {first.status}"
        out.append(warn("token", f"no token is set; cannot tell whether {', '.join(unknown)} needs one: {why}",
                        NETWORK_FIX if first is None or not first.reached else
                        f"check the model name; a private model needs a token ({TOKENS_PAGE}): {_set_token(None)}"))
    else:
        out.append(passed("token", "no token set, and none is needed: every model is public"))
    for repo in repos:
        out.append(_model_without_token(ctx, facts, repo))
    return out


def _model_without_token(ctx: Context, facts: HubFacts, repo: str) -> Result:
    name = f"token.{repo}"
    info = facts.models.get(repo) or Answer(None, None, "no answer")
    if not info.reached:
        return skip(name, _unreachable(facts, info), "see the token result above")
    if info.status == 200:
        if info.data and info.data.get("gated"):
            return fail(name, f"gated ({info.data['gated']} approval): downloading needs a token with access",
                        f"accept the licence at {ctx.endpoint}/{repo.split('@')[0]}, then {_set_token(None)}")
        return passed(name, "public model: no token needed")
    return fail(name, f"the hub answered {info.status} ({info.error or info.error_code}): not found, or private",
                f"check the name in stack.toml ({_users(ctx, repo)}); a private model needs a token "
                f"from an account with access: {_set_token(None)}")


def _with_token(ctx: Context, facts: HubFacts, repos: list[str]) -> list[Result]:
    who = facts.whoami or Answer(None, None, "no answer")
    src = facts.token_source
    if not who.reached:
        return [warn("token", f"token from {src}: {_unreachable(facts, who)} to check it", NETWORK_FIX)] + \
               [skip(f"token.{r}", "hub not reachable", "see the token result above") for r in repos]
    if who.status == 401:
        return [fail("token", f"the token from {src} was rejected by {facts.endpoint} (401: invalid or revoked)",
                     f"create a new read token at {TOKENS_PAGE} and {_set_token(src)}")] + \
               [skip(f"token.{r}", "the token was rejected", "fix the token first") for r in repos]
    if who.status != 200:
        return [warn("token", f"token from {src}: {facts.endpoint} answered whoami with HTTP {who.status} "
                              f"({who.error or who.error_code})", NETWORK_FIX)] + \
               [_model_with_token(ctx, facts, r, "?") for r in repos]
    user = (who.data or {}).get("name", "?")
    out = [passed("token", f"valid for user {user} at {facts.endpoint} (from {src})")]
    return out + [_model_with_token(ctx, facts, r, user) for r in repos]


def _model_with_token(ctx: Context, facts: HubFacts, repo: str, user: str) -> Result:
    name = f"token.{repo}"
    page = f"{ctx.endpoint}/{repo.split('@')[0]}"
    answer = facts.access.get(repo) or Answer(None, None, "no answer")
    gated = _gated(facts.models.get(repo))
    if not answer.reached:
        return warn(name, _unreachable(facts, answer), NETWORK_FIX)
    if answer.status == 200:
        return passed(name, "access granted (licence accepted)" if gated else "access granted")
    if answer.status == 403 or answer.error_code == "GatedRepo":
        return fail(name, f"gated, and user {user} has not been granted access (licence not accepted, "
                          f"or still awaiting approval)",
                    f"open {page} logged in as {user} and accept the licence (some owners approve by hand: wait "
                    f"for the e-mail); a fine-grained token also needs 'read access to public gated repos'")
    if answer.status in (401, 404):
        return fail(name, f"not found, or private and user {user} has no access (HTTP {answer.status})",
                    f"check the name in stack.toml ({_users(ctx, repo)}), or ask the owner for access")
    return warn(name, f"the hub answered the access check with HTTP {answer.status} ({answer.error})",
                NETWORK_FIX)


def _users(ctx: Context, repo: str) -> str:
    return ", ".join(f"services.{s}.models" for s in ctx.models().get(repo, []))
