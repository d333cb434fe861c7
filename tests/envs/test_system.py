"""System libraries via ctypes: the found branch, the not-found branch, and when a wheel makes it moot."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from duplex.envs.commands import mask
from duplex.envs.system import check, find, install_hint, package_manager, pypi_has_wheel, why_needed
from duplex.errors import EnvError

NO_SUCH = "duplexnosuchlib"


def test_found_and_not_found_for_real():
    assert find("c")  # libc is always there
    assert find(NO_SUCH) is None
    lines: list[str] = []
    assert check(["c"], "moshi", {}, lambda *_: None, lines.append) == []
    assert "found" in lines[0]


def test_a_missing_library_the_env_needs_names_the_install_command():
    with pytest.raises(EnvError) as err:
        check([NO_SUCH], "moshi", {}, lambda *_: None, lambda _: None)
    assert f"lib{NO_SUCH} is not installed" in str(err.value)
    assert err.value.fix == install_hint(NO_SUCH, package_manager())


def test_libopus_is_moot_where_sphn_has_a_wheel():
    pins = {"sphn": "0.2.1"}
    assert why_needed("opus", pins, lambda *_: True)[0] is False
    needed, reason = why_needed("opus", pins, lambda *_: False)
    assert needed and "builds from source" in reason
    assert why_needed("opus", pins, lambda *_: None)[0] is None
    assert why_needed("opus", {}, lambda *_: True)[0] is True
    missing = lambda _: None  # noqa: E731  (libopus absent, as on a bare machine)
    lines: list[str] = []
    assert check(["opus"], "moshi", pins, lambda *_: True, lines.append, finder=missing) == []
    assert "not needed here" in lines[0]
    with pytest.raises(EnvError, match="sphn 0.2.1 has no wheel"):
        check(["opus"], "moshi", pins, lambda *_: False, lambda _: None, finder=missing)


def test_pypi_really_has_sphn_wheels_for_this_python():
    assert pypi_has_wheel(Path(sys.executable))("sphn", "0.2.1") is True


@pytest.mark.parametrize("system,release,want", [
    ("Linux", 'ID=debian\n', "apt"), ("Linux", 'ID=ubuntu\nID_LIKE=debian\n', "apt"),
    ("Linux", 'ID="rocky"\nID_LIKE="rhel centos fedora"\n', "dnf"), ("Darwin", "", "brew"),
    ("Windows", "", "vcpkg"), ("Linux", "ID=plan9\n", None)])
def test_package_manager_per_platform(system, release, want):
    assert package_manager(system, release) == want
    assert "libopus-dev" in install_hint("opus", "apt") and "opus-devel" in install_hint("opus", "dnf")
    assert install_hint("opus", "brew") == "brew install opus pkg-config"


def test_tokens_are_masked():
    assert "hf_abcdefgh12" not in mask("HF_TOKEN=hf_abcdefgh12 https://user:pw@host/x")
    assert "pw@" not in mask("https://user:pw@host/x")
