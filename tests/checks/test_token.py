"""token check against a real HTTP endpoint: valid, rejected, gated-without-access, public, unreachable."""

from __future__ import annotations

import json
import socket
import time

import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError

from checks import hub, token

from .conftest import by_name, make

GOOD, BAD = "hf_goodgoodgoodgoodgoodgood", "hf_badbadbadbadbadbadbad"


def setup(server, tmp_path, environ, **values):
    server.tokens[GOOD] = "alice"
    server.add_model("org/public")
    server.add_model("org/gated", gated="manual")
    server.add_model("org/granted", gated="auto", granted=["alice"])
    values.setdefault("api_models", '["org/public", "org/gated", "org/granted"]')
    _, _, ctx = make(tmp_path, environ={"HF_ENDPOINT": server.url, **environ}, **values)
    facts = hub.gather(ctx.environ, list(ctx.models()), timeout=2)
    return ctx, facts, by_name(token.check(ctx, facts))


def test_the_fake_hub_answers_like_the_real_one_to_huggingface_hub(hub_server):
    """huggingface_hub's own client reads our server's answers as it reads huggingface.co's."""
    hub_server.tokens[GOOD] = "alice"
    hub_server.add_model("org/gated", gated="manual")
    api = HfApi(endpoint=hub_server.url)
    assert api.whoami(token=GOOD)["name"] == "alice"
    with pytest.raises(HfHubHTTPError) as err:
        api.whoami(token=BAD)
    assert err.value.response.status_code == 401
    with pytest.raises(GatedRepoError):
        api.auth_check("org/gated", token=GOOD)
    assert api.model_info("org/gated", token=GOOD).gated == "manual"


def test_valid_token_with_and_without_access_to_gated_models(hub_server, tmp_path):
    ctx, facts, results = setup(hub_server, tmp_path, {"HF_TOKEN": GOOD})
    assert results["token"].status == "pass" and "alice" in results["token"].detail
    assert "from HF_TOKEN" in results["token"].detail
    assert results["token.org/public"].status == "pass"
    assert results["token.org/granted"].status == "pass" and "licence accepted" in results["token.org/granted"].detail
    gated = results["token.org/gated"]
    assert gated.status == "fail" and "not been granted access" in gated.detail
    assert f"{hub_server.url}/org/gated" in gated.fix and "accept the licence" in gated.fix
    assert ("/api/whoami-v2", True) in hub_server.seen


def test_rejected_token_fails_and_is_never_printed(hub_server, tmp_path):
    ctx, facts, results = setup(hub_server, tmp_path, {"HF_TOKEN": BAD})
    assert results["token"].status == "fail" and "rejected" in results["token"].detail
    assert "settings/tokens" in results["token"].fix
    assert all(results[f"token.{r}"].status == "skip" for r in ("org/public", "org/gated"))
    text = json.dumps([r.to_dict() for r in results.values()]) + repr(facts)
    assert BAD not in text and GOOD not in text


def test_a_token_saved_by_setup_in_dotenv_is_named_in_the_advice(hub_server, tmp_path):
    """tasks.py loads .env's HF_TOKEN into the environment; the fix must point back at .env."""
    from duplex.envfile import write_secret
    hub_server.add_model("org/public")
    _, _, ctx = make(tmp_path, environ={"HF_ENDPOINT": hub_server.url, "HF_TOKEN": BAD}, api_models='["org/public"]')
    write_secret(ctx.root, "HF_TOKEN", BAD)  # what `inv setup --hf-token` writes
    results = by_name(token.check(ctx, hub.gather(ctx.environ, ["org/public"], timeout=2, root=ctx.root)))
    assert "token from .env (saved by `inv setup --hf-token`) was rejected" in results["token"].detail
    assert "`inv setup --hf-token hf_...` (it replaces the one in .env)" in results["token"].fix
    exported = by_name(token.check(ctx, hub.gather({**ctx.environ, "HF_TOKEN": BAD + "x"}, ["org/public"],
                                                   timeout=2, root=ctx.root)))
    assert "token from HF_TOKEN was rejected" in exported["token"].detail  # exported: not the .env one
    assert "export HF_TOKEN=hf_..." in exported["token"].fix


def test_no_token_with_a_gated_model_fails_and_says_where_to_get_one(hub_server, tmp_path):
    _, _, results = setup(hub_server, tmp_path, {})
    assert results["token"].status == "fail" and "org/gated" in results["token"].detail
    assert "HF_TOKEN" in results["token"].fix and "huggingface.co/settings/tokens" in results["token"].fix
    assert "inv setup --hf-token" in results["token"].fix
    assert results["token.org/public"].status == "pass"
    assert all(not had_auth for _, had_auth in hub_server.seen)  # nothing sent without a token


def test_no_token_public_models_only_pass(hub_server, tmp_path):
    _, _, results = setup(hub_server, tmp_path, {}, api_models='["org/public"]')
    assert results["token"].status == "pass" and "public" in results["token"].detail


def test_unknown_model_fails_with_where_it_is_named(hub_server, tmp_path):
    _, _, results = setup(hub_server, tmp_path, {"HF_TOKEN": GOOD}, api_models='["org/typo"]')
    assert results["token.org/typo"].status == "fail"
    assert "services.api.models" in results["token.org/typo"].fix


def test_token_file_is_used_when_hf_token_is_unset(hub_server, tmp_path):
    (tmp_path / "hf").mkdir(parents=True)
    (tmp_path / "hf" / "token").write_text(GOOD + "\n")
    _, _, results = setup(hub_server, tmp_path, {})
    assert results["token"].status == "pass" and "token file" in results["token"].detail


def test_unreachable_hub_warns_quickly(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _, _, ctx = make(tmp_path, environ={"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_TOKEN": GOOD},
                     api_models='["org/x"]')
    started = time.perf_counter()
    results = by_name(token.check(ctx, hub.gather(ctx.environ, ["org/x"], timeout=1)))
    assert time.perf_counter() - started < 1
    assert results["token"].status == "warn" and "could not reach" in results["token"].detail


def test_a_hub_that_hangs_costs_only_the_timeout(hub_server, tmp_path):
    hub_server.delay = 5
    _, _, ctx = make(tmp_path, environ={"HF_ENDPOINT": hub_server.url, "HF_TOKEN": GOOD}, api_models='["org/x"]')
    started = time.perf_counter()
    facts = hub.gather(ctx.environ, ["org/x"], timeout=0.5)
    assert time.perf_counter() - started < 2
    assert facts.whoami.error == "timed out"
    assert by_name(token.check(ctx, facts))["token"].status == "warn"


def test_offline_and_no_models_skip(tmp_path):
    _, _, ctx = make(tmp_path, environ={"HF_HUB_OFFLINE": "1"}, api_models='["org/x"]')
    assert token.check(ctx, None)[0].status == "skip"
    _, _, none = make(tmp_path / "b")
    assert token.check(none, None)[0].status == "skip"
