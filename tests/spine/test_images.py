"""Base image references, images.lock and the registry's answers as data: no engine, no network."""

from __future__ import annotations

import pytest

from checks import docker
from duplex.engine import DockerFacts
from duplex.images import ImageLockError, LockedImage, pins, read_images, write_images
from duplex.registry import endpoints, parse, pinned

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
