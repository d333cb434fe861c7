"""Base image references, images.lock and the registry's answers as data: no engine, no network."""

from __future__ import annotations

import pytest

from checks import docker
from duplex.engine import DockerFacts
from duplex.images.lock import ImageLockError, LockedImage, pins, read_images, write_images
from duplex.images.registry import endpoints, parse, pinned

DIGEST = "sha256:" + "ab" * 32


def test_references_normalise_as_the_engine_does():
    assert parse("python:3.11-slim-bookworm") == parse("docker.io/library/python:3.11-slim-bookworm")
    ref = parse("python:3.11-slim-bookworm")
    assert (ref.registry, ref.repository, ref.tag, ref.name) == ("docker.io", "library/python", "3.11-slim-bookworm",
                                                                 "python:3.11-slim-bookworm")
    local = parse(f"127.0.0.1:5000/team/app:1@{DIGEST}")
    assert (local.registry, local.repository, local.tag, local.digest) == ("127.0.0.1:5000", "team/app", "1", DIGEST)
    assert parse("team/app").tag == "latest" and parse("team/app").repository == "team/app"
    assert pinned(f"python:3.11@{'cd' * 32}", DIGEST) == f"python:3.11@{DIGEST}"


def test_hub_names_ask_the_mirrors_first_and_loopback_registries_speak_http():
    assert endpoints(parse("python:3.11"), ("http://127.0.0.1:5055/",)) == [
        "http://127.0.0.1:5055", "https://registry-1.docker.io"]
    assert endpoints(parse("127.0.0.1:5000/x:1"), ("http://mirror",)) == ["http://127.0.0.1:5000"]
    assert endpoints(parse("ghcr.io/team/x:1")) == ["https://ghcr.io"]


def test_images_lock_round_trips_and_a_broken_entry_is_one_line(tmp_path):
    write_images(tmp_path, {"python:3.11-slim-bookworm": LockedImage("python:3.11-slim-bookworm", DIGEST, 56518133)})
    text = (tmp_path / "images.lock").read_text()
    assert "inv lock --images" in text and "56.5 MB" in text
    assert pins(tmp_path) == {"python:3.11-slim-bookworm": DIGEST}
    (tmp_path / "images.lock").write_text('[images."python:3.11"]\ndigest = "latest"\n')
    with pytest.raises(ImageLockError) as err:
        read_images(tmp_path)
    assert "images.'python:3.11' has no valid digest" in str(err.value) and "inv lock --images" in err.value.fix


def test_the_docker_check_reads_the_registry_answers(tmp_path):
    from tests.checks.conftest import by_name, make
    _, _, ctx = make(tmp_path, environ={"DUPLEX_BASE_IMAGE": f"python:3.11@{DIGEST}"})
    base = f"python:3.11@{DIGEST}"
    facts = DockerFacts(True, "unix:///x", version="27", images={base: False})
    pull = by_name(docker.check(ctx, facts, 0, {base: {"digest": DIGEST, "size": 56_518_133}}))["docker.image.api"]
    assert pull.status == "pass" and "57 MB to pull" in pull.detail
    gone = {base: {"kind": "digest", "error": "python:3.11: the registry no longer serves the pinned digest",
                   "fix": "re-pin to what the tag names now: `inv lock --images`"}}
    result = by_name(docker.check(ctx, facts, 0, gone))["docker.image.api"]
    assert result.status == "fail" and "inv lock --images" in result.fix


# Issue 28, family 6: the one digest and registry rule, and engine facts of every shape.

def test_one_digest_rule_everywhere_a_digest_is_read_or_written(tmp_path):
    from duplex.images.references import is_digest
    good = "sha256:" + "0123456789abcdef" * 4
    assert is_digest(good)
    for bad in ("sha256:abc", "sha256:" + "g" * 64, "sha256:" + "A" * 64, "sha256:" + ("../" * 21) + "x",
                good + "\n", "sha512:" + "0" * 128, None, 7):
        assert not is_digest(bad), bad
    with pytest.raises(ImageLockError, match="refusing to write"):
        write_images(tmp_path, {"python:3.11": LockedImage("python:3.11", "sha256:" + ("../" * 21) + "x")})
    assert not (tmp_path / "images.lock").exists()


@pytest.mark.parametrize(("repo_digests", "expected"), [
    (None, []),  # an engine that reports RepoDigests null
    ("python@sha256:" + "a" * 64, []),  # a string, not a list
    ([None, 7, "python"], []),
    (["python@sha256:abc", "python@sha256:" + ("../" * 21) + "x"], []),  # never into images.lock
    (["other/image@sha256:" + "b" * 64, "python@sha256:" + "a" * 64], ["sha256:" + "a" * 64]),
])
def test_the_engine_s_repo_digests_are_read_defensively(repo_digests, expected):
    from duplex.pinning import engine_digests
    assert engine_digests("python:3.11-slim-bookworm", repo_digests) == expected


@pytest.mark.parametrize(("info", "mirrors"), [
    ({}, []),  # no RegistryConfig at all
    ({"RegistryConfig": None}, []),
    ({"RegistryConfig": {"Mirrors": None}}, []),
    ({"RegistryConfig": {"Mirrors": "http://127.0.0.1:5000"}}, ["http://127.0.0.1:5000"]),  # one string: one mirror
    ({"RegistryConfig": {"Mirrors": [None, "", "ftp://m", "http://reg..x/", "http://127.0.0.1:5000/"]}},
     ["http://127.0.0.1:5000"]),
])
def test_the_engine_s_mirrors_are_read_defensively(info, mirrors):
    from duplex.engine import facts_from_info
    from duplex.images.registry import HUB_API, endpoints, parse
    facts = facts_from_info("unix:///var/run/docker.sock", info, which=lambda _: None, cdi=lambda _: False)
    assert endpoints(parse("python:3.11"), facts.mirrors) == [*mirrors, HUB_API]


def test_every_name_rule_is_a_full_match():
    """`re.match` with `$` let a trailing newline through each of these."""
    from duplex.envfile import _quoted
    from duplex.envs.pythons import parse_range
    from duplex.images.references import registry_problem
    from duplex.models.refs import ModelRef
    from duplex.run.state import _named
    from servers.asr.models import looks_like_repo_id
    from servers.mt.settings import SettingsError, language
    assert not ModelRef("org/name", "a" * 40 + "\n").is_commit
    assert _quoted("hf_abc\n") != "hf_abc\n"  # quoted, never written bare into .env
    assert not _named("web\n") and _named("web")
    assert not looks_like_repo_id("org/name\n") and looks_like_repo_id("org/name")
    with pytest.raises(SettingsError):
        language("en\n", "MT_SOURCE")
    assert registry_problem("ghcr.io/team\n") and not registry_problem("ghcr.io/team")
    assert str(parse_range("3.11")) == "==3.11.*"


def test_publish_refuses_a_registry_a_library_caller_passes(tmp_path):
    from duplex.plan import Plan
    from duplex.publish import PublishError, publish
    with pytest.raises(PublishError, match="'reg..example.com' is not a host name"):
        publish(Plan("s", str(tmp_path), False, {}, [], [], [], {}), out=tmp_path / "out",
                registry="reg..example.com/team")
