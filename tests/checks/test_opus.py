"""opus: the real loader finds libopus here (Debian's libopus0); a library that is absent fails with the install line."""

from __future__ import annotations

from checks import opus

from .conftest import by_name, make

STACK = """
[stack]
name = "pf"

[envs.voice]
system = ["opus", "duplexnope"]

[services.front]
env = "voice"
app = "app:app"
port = 18420
dockerfile = "f.Dockerfile"
"""


def test_the_real_loader_finds_libopus_and_misses_an_absent_library(tmp_path):
    _, _, ctx = make(tmp_path, native=True, text=STACK)
    found = opus.probe_libs(["opus", "duplexnope"])
    assert found["opus"] and "opus" in found["opus"] and found["duplexnope"] is None
    results = by_name(opus.check(ctx, found, manager="apt"))
    assert results["opus.voice"].status == "pass" and "libopus" in results["opus.voice"].detail
    missing = results["duplexnope.voice"]
    assert missing.status == "fail" and "libduplexnope" in missing.detail
    assert "sudo apt-get install -y libduplexnope-dev" in missing.fix and "inv setup --env voice" in missing.fix


def test_missing_libopus_names_each_package_manager(tmp_path):
    _, _, ctx = make(tmp_path, native=True, text=STACK)
    results = by_name(opus.check(ctx, {"opus": None, "duplexnope": "x"}, manager="brew"))
    assert results["opus.voice"].status == "fail" and "brew install opus" in results["opus.voice"].fix
    apt = by_name(opus.check(ctx, {"opus": None, "duplexnope": "x"}, manager="apt"))
    assert "libopus0 libopus-dev" in apt["opus.voice"].fix


def test_a_wheel_that_bundles_libopus_is_enough(tmp_path):
    _, _, ctx = make(tmp_path, native=True, text=STACK)
    (tmp_path / ".duplex/envs/voice/lib/python3.11/site-packages/sphn-0.1.4.dist-info").mkdir(parents=True)
    result = by_name(opus.check(ctx, {"opus": None, "duplexnope": "x"}))["opus.voice"]
    assert result.status == "pass" and "sphn" in result.detail


def test_container_mode_has_no_host_library_to_check(tmp_path):
    _, _, ctx = make(tmp_path, text=STACK)
    assert opus.wanted(ctx) == [] and opus.check(ctx, {}) == []
