"""What a registry says is checked before duplex writes or uses it (issue 28, family 6): a hostile,
broken or stalled registry on 127.0.0.1 (tests/support/hostile_registry.py) answering the real
`inv lock --images`, `inv preflight` and `inv publish --registry`. Every bad answer is one line
naming the registry and what to do, nothing is pinned from it, and no request outlives its deadline."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import run_inv
from tests.support.hostile_registry import Answer, HostileRegistry, digest_of, manifest

STACK = """
[stack]
name = "hostile"
base_image = "{base}"

[envs.app]
[services.api]
env = "app"
app = "servers.api:app"
port = 9100
modes = ["container"]
dockerfile = "dockerfiles/api.Dockerfile"
"""
TAG = "team/python/manifests/3.11"
TRAVERSAL = "sha256:" + ("../" * 21) + "x"  # 64 characters: the length check alone let it through


@pytest.fixture
def registry():
    reg = HostileRegistry().start()
    yield reg
    reg.stop()


def inv(folder, registry, *args: str, timeout: float = 120, env: dict | None = None):
    (folder / "stack.toml").write_text(STACK.format(base=f"{registry.host}/team/python:3.11"))
    (folder / "dockerfiles").mkdir(exist_ok=True)
    (folder / "dockerfiles" / "api.Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    return run_inv(*args, env={"DUPLEX_STACK": str(folder / "stack.toml"), "DUPLEX_BASE_IMAGE": "",
                               **(env or {})}, cwd=folder, timeout=timeout)


def one_line(proc, *fragments: str) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("duplex: ")]
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, f"{fragment!r} not in:\n{proc.stderr}"
    return lines[0]


BAD_ANSWERS = {
    "a short digest": Answer(headers={"Docker-Content-Digest": "sha256:abc"}),
    "64 non-hex characters": Answer(headers={"Docker-Content-Digest": "sha256:" + "g" * 64}),
    "a digest holding ../": Answer(headers={"Docker-Content-Digest": TRAVERSAL}),
    "a digest of other bytes": Answer(headers={"Docker-Content-Digest": "sha256:" + "a" * 64}),
    "an HTML page": Answer(body=b"<html>Welcome to nginx!</html>",
                           headers={"Content-Type": "text/html", "Docker-Content-Digest": None}),
    "JSON that is no manifest": Answer(body=b'{"hello": "world"}', headers={"Content-Type": "application/json",
                                                                          "Docker-Content-Digest": None}),
}


@pytest.mark.parametrize("case", list(BAD_ANSWERS))
def test_lock_images_pins_nothing_a_registry_answers_that_is_not_an_image(tmp_path, registry, case):
    registry.manifests[TAG] = BAD_ANSWERS[case]
    proc = inv(tmp_path, registry, "lock", "--images")
    one_line(proc, f"http://{registry.host} answered for {registry.host}/team/python:3.11 with what is not an image",
             "nothing was pinned from it")
    assert not (tmp_path / "images.lock").exists()


def test_lock_images_pins_a_well_formed_manifest_to_its_digest(tmp_path, registry):
    registry.manifests[TAG] = Answer()
    proc = inv(tmp_path, registry, "lock", "--images")
    assert proc.returncode == 0, proc.stderr
    assert f'digest = "{digest_of(manifest())}"' in (tmp_path / "images.lock").read_text()


@pytest.mark.parametrize("digest", ["sha256:" + "A" * 64, TRAVERSAL, "sha256:" + "0" * 64 + "\n"])
def test_an_images_lock_with_a_digest_that_is_no_digest_is_refused_on_read(tmp_path, registry, digest):
    (tmp_path / "images.lock").write_text(f'[images."{registry.host}/team/python:3.11"]\ndigest = {json.dumps(digest)}\n')
    proc = inv(tmp_path, registry, "config", "--json")
    one_line(proc, "has no valid digest (sha256: and 64 lower-case hex digits)", "inv lock --images")


@pytest.mark.parametrize("case", ["a challenge without a realm", "a realm that is a file", "a token list",
                                  "a token object without a token"])
def test_a_broken_token_exchange_is_one_line(tmp_path, registry, case):
    realm = {"a challenge without a realm": "", "a realm that is a file": 'realm="file:///etc/passwd",'}.get(
        case, f'realm="http://{registry.host}/token",')
    registry.manifests[TAG] = Answer(401, b"{}", {"WWW-Authenticate": f'Bearer {realm}service="r",scope="x"'})
    registry.tokens = Answer(200, b'["token"]' if case == "a token list" else b'{"expires_in": 60}',
                             {"Content-Type": "application/json"})
    proc = inv(tmp_path, registry, "lock", "--images")
    line = one_line(proc, f"http://{registry.host} answered for", "nothing was pinned from it")
    assert ("named no http(s) realm" in line) == ("realm" in case), line


def test_an_anonymous_token_is_fetched_and_sent(tmp_path, registry):
    registry.manifests[TAG] = Answer(401, b"{}", {"WWW-Authenticate":
                                                  f'Bearer realm="http://{registry.host}/token",service="r"'})
    registry.manifests[TAG + "#authorized"] = Answer()
    registry.tokens = Answer(200, b'{"token": "t0k"}', {"Content-Type": "application/json"})
    proc = inv(tmp_path, registry, "lock", "--images")
    assert proc.returncode == 0, proc.stderr
    assert any(p.startswith("/token?") for p in registry.seen)


@pytest.mark.slow
@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_trickling_registry_ends_at_the_deadline_with_one_line(tmp_path, registry, where):
    """One byte every 0.5 s: each read is quick, so only an overall deadline (3 x the 5 s read
    timeout) ends it. Before: `inv lock --images` waited as long as the registry trickled."""
    registry.manifests[TAG] = Answer(**{f"trickle_{where}": 0.5})
    started = time.monotonic()
    proc = inv(tmp_path, registry, "lock", "--images", timeout=90)
    took = time.monotonic() - started
    one_line(proc, f"no registry answered for {registry.host}/team/python:3.11",
             "did not finish its answer within 15 s (stalled or trickling)")
    assert took < 40, took
    assert not (tmp_path / "images.lock").exists()


def test_an_oversized_answer_is_refused(tmp_path, registry):
    registry.manifests[TAG] = Answer(body=b"{" + b" " * (5 * 2**20) + b"}")
    proc = inv(tmp_path, registry, "lock", "--images")
    one_line(proc, "an answer of 5242882 bytes (at most 4194304 expected)")


@pytest.mark.docker
@pytest.mark.parametrize("case", ["an HTML page", "a digest holding ../"])
def test_preflight_fails_a_base_image_whose_registry_answers_no_image(tmp_path, registry, case):
    """Before: a body that is not a manifest was "the registry has it" (pass)."""
    registry.manifests[TAG] = BAD_ANSWERS[case]
    proc = inv(tmp_path, registry, "preflight", "--json", "--services", "api")
    check = next(r for r in json.loads(proc.stdout) if r["name"] == "docker.image.api")
    assert check["status"] == "fail", check
    assert "with what is not an image" in check["detail"] and "nothing was pinned" in check["fix"], check


@pytest.mark.parametrize(("registry_flag", "words"), [
    ("reg..example.com/team", "'reg..example.com' is not a host name: an empty label"),
    ("a" * 300 + ".example.com/team", "a host name of 312 characters (at most 253)"),
    ("a" * 64 + ".example.com/team", "is not a host name"),
    ("-reg.example.com/team", "is not a host name"),
    ("reg.example.com:0/team", "port '0' is not a number from 1 to 65535"),
    ("reg.example.com:99999/team", "port '99999' is not a number from 1 to 65535"),
    ("reg.example.com/Team", "upper-case"),
    ("reg.example.com/team\n", "is not a path component"),
])
@pytest.mark.parametrize("push", [True, False])
def test_publish_refuses_a_registry_that_is_not_host_port_prefix(tmp_path, registry, registry_flag, words, push):
    proc = inv(tmp_path, registry, "publish", "--compose", "--registry", registry_flag, *(["--push"] if push else []))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and words in proc.stderr and "HOST[:PORT][/PREFIX]" in proc.stderr, proc.stderr
    assert not (tmp_path / "deploy").exists()


@pytest.mark.slow
def test_publish_push_to_a_registry_that_trickles_ends_at_the_deadline(tmp_path, registry):
    registry.root = Answer(200, b"{}", {"Content-Type": "application/json"}, trickle_headers=0.5)
    started = time.monotonic()
    proc = inv(tmp_path, registry, "publish", "--compose", "--push", "--registry", f"{registry.host}/team", timeout=90)
    one_line(proc, "no image registry answers", "did not finish its answer within 15 s", "nothing was built")
    assert time.monotonic() - started < 40


@pytest.mark.docker
@pytest.mark.slow
def test_the_first_container_run_s_pinning_ends_at_the_deadline(tmp_path, registry):
    """`inv run` pins an unpinned base first (15 s at most), then preflight asks again (3 x its
    2 s timeout): one line, nothing built. Before: the run waited as long as the registry trickled."""
    registry.manifests[TAG] = Answer(trickle_body=0.5)
    started = time.monotonic()
    proc = inv(tmp_path, registry, "run", "--detach", "--services", "api", timeout=120)
    took = time.monotonic() - started
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "did not finish its answer within" in line]
    assert len(lines) == 1 and "docker.image.api" in lines[0], proc.stderr
    assert took < 60, took
    assert not (tmp_path / "images.lock").exists()


def test_a_hostile_docker_hub_mirror_is_named_with_the_engine_setting_to_change(registry):
    """The engine's mirrors are asked first for Docker Hub names (preflight's probe, fed the mirror
    list `docker info` gives): a mirror answering an HTML page is named, and nothing falls through
    to a pin."""
    from duplex.images.registry import probe_registry
    registry.manifests["library/python/manifests/3.11"] = BAD_ANSWERS["an HTML page"]
    answer = probe_registry(["python:3.11"], mirrors=[f"http://{registry.host}/"], timeout=2)["python:3.11"]
    assert answer["kind"] == "malformed" and "digest" not in answer, answer
    assert answer["error"].startswith(f"http://{registry.host} answered for python:3.11 with what is not an image")
    assert "--registry-mirror" in answer["fix"], answer
