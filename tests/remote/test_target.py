"""`--on` targets: the URL's parts, the defaults, and every bad value refused with what to type."""

from __future__ import annotations

import pytest

from duplex.remote.target import Target, TargetError, parse_target


@pytest.mark.parametrize("text, expected", [
    ("ssh://gpu-box", Target(host="gpu-box", path="duplex/demo")),
    ("ssh://ana@gpu-box:2222", Target(host="gpu-box", path="duplex/demo", user="ana", port=2222)),
    ("ssh://ana@gpu-box/", Target(host="gpu-box", path="duplex/demo", user="ana")),
    ("ssh://ana@10.0.0.7/srv/app/", Target(host="10.0.0.7", path="/srv/app", user="ana")),
    ("ssh://gpu.lab.example.org/~/work/app", Target(host="gpu.lab.example.org", path="work/app")),
    ("ssh://[2001:db8::1]:22/~/x", Target(host="2001:db8::1", path="x", port=22)),
    ("ssh://ana@[::1]", Target(host="::1", path="duplex/demo", user="ana")),
    ("ssh://my_alias//srv//app", Target(host="my_alias", path="/srv/app")),
])
def test_a_target_parses_into_its_parts_and_back(text, expected):
    target = parse_target(text, "demo")
    assert target == expected
    assert parse_target(target.url, "other") == target  # the canonical URL names the same place


def test_the_address_and_ssh_options_say_who_and_where():
    target = parse_target("ssh://ana@[::1]:2200/srv/x", "demo")
    assert target.address == "ana@[::1]:2200"
    assert target.ssh_options() == ["-l", "ana", "-p", "2200"]
    assert parse_target("ssh://box", "demo").ssh_options() == []  # the user's ssh config decides


@pytest.mark.parametrize("text, said, fix", [
    ("ssh://-oProxyCommand=touch${IFS}pwned/x", "'$', '{', '}'", "ssh://"),
    ("ssh://-oProxyCommand=sh", "starts with '-'", "ssh://user@gpu-box"),
    ("ssh://ana@-oProxyCommand=sh:22", "starts with '-'", "ssh://"),
    ("ssh://-lroot@box", "not a user name", "ssh://"),
    ("ssh://box;touch pwned", "';'", "ssh://"),
    ("ssh://box/srv/$(reboot)", "'$'", "ssh://"),
    ("ssh://box/srv/a`id`", "'`'", "ssh://"),
    ("ssh://box/srv/new\nline", "'\\n'", "ssh://"),
    ("ssh://box/srv/-rf", "not a folder name", "ssh://"),
    ("ssh://box/srv/../etc", "without . or ..", "ssh://"),
    ("ssh://box/~", "home folder itself", "ssh://HOST/~/duplex/demo"),
    ("ssh://box:0", "port '0'", "ssh://"),
    ("ssh://box:65536", "port '65536'", "ssh://"),
    ("ssh://box:22x", "port '22x'", "ssh://"),
    ("ssh://ana:secret@box", "password", "ssh-copy-id"),
    ("ssh://[not-v6]", "not an IPv6 address", "ssh://"),
    ("ssh://[::1", "never closed", "ssh://"),
    ("ssh://2001:db8::1", "in brackets", "ssh://"),
    ("ssh://", "no host", "ssh://"),
    ("ssh://bad..host", "not a host name", "ssh://"),
    ("ssh://box%2f", "percent", "ssh://"),
    ("ana@gpu-box:work/app", "scp form", "ssh://ana@gpu-box/~/work/app"),
    ("ana@gpu-box:/srv/app", "scp form", "ssh://ana@gpu-box/srv/app"),
    ("gpu-box", "not an ssh:// URL", "ssh://gpu-box"),
    ("http://gpu-box", "http://", "ssh://"),
])
def test_a_bad_target_is_one_line_with_its_fix(text, said, fix):
    with pytest.raises(TargetError) as caught:
        parse_target(text, "demo")
    err = caught.value
    assert said in str(err) and "\n" not in str(err).replace(repr(text), "")
    assert fix in err.fix
    assert err.exit_code == 2


def test_output_keeps_an_ssh_login_name_and_masks_what_is_a_credential():
    """The commands duplex prints to type again (`inv stop --on ssh://ana@gpu-box`) keep the login
    name; a password in an ssh URL, and any other URL's user part (a token), are masked."""
    from duplex.redact import redact
    assert redact("inv stop --on ssh://ana@gpu-box:2222/~/app") == "inv stop --on ssh://ana@gpu-box:2222/~/app"
    assert redact("ssh://ana:hunter2@gpu-box https://ghp_abcdef@github.com") == "ssh://***@gpu-box https://***@github.com"
