"""The project sent to a real sshd's folder: what git would send, incremental after the first,
deletions only within what was sent, rsync and the tar fallback alike."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from duplex.remote.ssh import Connection, SshError, target_key
from duplex.remote.sync import project_files, sync
from duplex.remote.target import parse_target


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                   check=True, capture_output=True)


@pytest.fixture
def project(tmp_path) -> Path:
    """A small git checkout: tracked files, an untracked one, ignored ones, duplex's own state."""
    root = tmp_path / "project"
    (root / "servers" / "asr").mkdir(parents=True)
    (root / "stack.toml").write_text("[stack]\nname = 'demo'\n")
    (root / "servers" / "asr" / "app.py").write_text("print('v1')\n")
    (root / "servers" / "asr" / "run.sh").write_text("#!/bin/sh\n")
    (root / "servers" / "asr" / "run.sh").chmod(0o755)
    (root / "big.bin").write_bytes(os.urandom(300_000))
    (root / ".gitignore").write_text(".env\n*.log\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "first")
    (root / "notes.md").write_text("untracked, not ignored: sent\n")
    (root / ".env").write_text("HF_TOKEN=hf_secret\n")
    (root / "debug.log").write_text("ignored\n")
    (root / ".duplex" / "envs").mkdir(parents=True)
    (root / ".duplex" / "envs" / "x").write_text("local state\n")
    (root / ".venv-3.12").mkdir()
    (root / ".venv-3.12" / "pyvenv.cfg").write_text("\n")
    (root / "servers" / "asr" / "__pycache__").mkdir()
    (root / "servers" / "asr" / "__pycache__" / "app.pyc").write_bytes(b"\0")
    return root


SENT = [".gitignore", "big.bin", "notes.md", "servers/asr/app.py", "servers/asr/run.sh", "stack.toml"]


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_the_synced_set_is_what_git_tracks_and_would_add(project, tmp_path):
    assert project_files(project) == SENT
    plain = tmp_path / "plain"  # not a git checkout: everything but duplex's and Python's own
    (plain / "a" / "__pycache__").mkdir(parents=True)
    (plain / "a" / "m.py").write_text("")
    (plain / "a" / "__pycache__" / "m.pyc").write_text("")
    (plain / ".venv" / "bin").mkdir(parents=True)
    (plain / ".venv" / "bin" / "python").write_text("")
    (plain / ".duplex").mkdir()
    (plain / ".duplex" / "state").write_text("")
    (plain / ".env").write_text("")
    assert project_files(plain) == [".env", "a/m.py"]


@pytest.mark.parametrize("method", ["rsync", "tar"])
def test_first_sync_then_only_the_change_then_deletions_within_what_was_sent(sshd, project,
                                                                              tmp_path, method):
    remote = tmp_path / "remote" / "app"
    app = project / "servers" / "asr" / "app.py"
    saved = 1_700_000_000_400_000_000  # ns: the edit below is saved 0.3 s later, in the same second
    os.utime(app, ns=(saved, saved))
    lines = []
    with Connection(parse_target(sshd.url(remote), "demo"), project) as conn:
        first = sync(conn, method=method, say=lines.append)
        assert first.method == method and sorted(first.sent) == SENT and first.deleted == ()
        assert tree(remote) == [".duplex/synced", *SENT]
        assert (remote / "big.bin").read_bytes() == (project / "big.bin").read_bytes()
        assert os.access(remote / "servers/asr/run.sh", os.X_OK)
        assert first.bytes == sum((project / p).stat().st_size for p in SENT)
        assert "first sync there" in lines[0] and "sent 6 files" in lines[-1]

        # the remote's own state: never touched
        (remote / ".duplex" / "envs").mkdir(parents=True)
        (remote / ".duplex" / "envs" / "asr").write_text("remote venv\n")
        (remote / "servers" / "asr" / "made-there.txt").write_text("remote's own\n")

        again = sync(conn, method=method)
        assert again.sent == () and again.deleted == ()
        app.write_text("print('v2')\n")  # the same size, within the same second
        os.utime(app, ns=(saved + 300_000_000, saved + 300_000_000))
        changed = sync(conn, method=method)
        assert changed.sent == ("servers/asr/app.py",) and changed.bytes == 12
        assert (remote / "servers/asr/app.py").read_text() == "print('v2')\n"

        (project / "notes.md").unlink()
        git(project, "rm", "-q", "servers/asr/run.sh")
        gone = sync(conn, method=method)
        assert sorted(gone.deleted) == ["notes.md", "servers/asr/run.sh"] and gone.sent == ()
    assert tree(remote) == [".duplex/envs/asr", ".duplex/synced", ".gitignore", "big.bin",
                            "servers/asr/app.py", "servers/asr/made-there.txt", "stack.toml"]


def test_a_remote_folder_wiped_or_synced_from_elsewhere_gets_everything_again(sshd, project, tmp_path):
    remote = tmp_path / "remote"
    with Connection(parse_target(sshd.url(remote), "demo"), project) as conn:
        sync(conn, method="tar")
        (remote / ".duplex" / "synced").write_text("someone-else")
        (remote / "stack.toml").unlink()
        assert sorted(sync(conn, method="tar").sent) == SENT
        assert (remote / "stack.toml").exists()


def test_without_rsync_here_the_tar_fallback_is_chosen(sshd, project, tmp_path, monkeypatch):
    tools = tmp_path / "bin"  # a PATH with ssh and git but no rsync
    tools.mkdir()
    for name in ("ssh", "git"):
        (tools / name).symlink_to(subprocess.run(["sh", "-c", f"command -v {name}"], capture_output=True,
                                                 text=True, check=True).stdout.strip())
    monkeypatch.setenv("PATH", str(tools))
    lines = []
    with Connection(parse_target(sshd.url(tmp_path / "remote"), "demo"), project) as conn:
        result = sync(conn, say=lines.append)
    assert result.method == "tar" and sorted(result.sent) == SENT
    assert lines[0] == "sync: rsync is missing here: sending with tar"


def test_a_remote_that_refuses_the_files_is_one_line_and_nothing_outside_the_set_is_deleted(sshd, project,
                                                                                            tmp_path):
    remote = tmp_path / "remote"
    conn = Connection(parse_target(sshd.url(remote), "demo"), project)
    with conn:
        sync(conn, method="tar")
        (remote / ".duplex" / "envs").mkdir()
        (remote / ".duplex" / "envs" / "asr").write_text("remote venv\n")
        (tmp_path / "outside").write_text("not ours\n")
        record = project / ".duplex" / "remote" / target_key(conn.target) / "sent.json"
        data = json.loads(record.read_text())
        data["files"].update({".duplex/envs/asr": [1, 1], "../outside": [1, 1], "/etc/hostname": [1, 1]})
        record.write_text(json.dumps(data))  # a record edited by hand names what sync never sent
        assert sync(conn, method="tar").deleted == ()
        assert (remote / ".duplex" / "envs" / "asr").exists() and (tmp_path / "outside").exists()

        shutil.rmtree(remote / "servers")
        (remote / "servers").write_text("a file where the project has a folder\n")
        (project / "servers" / "asr" / "app.py").write_text("print('v3')\n")
        with pytest.raises(SshError) as caught:
            sync(conn, method="tar")
        assert caught.value.kind == "command" and "\n" not in str(caught.value)
        assert "tar -xf -" in str(caught.value) and "Not a directory" in str(caught.value)


def test_without_rsync_on_the_remote_the_tar_fallback_is_chosen(sshd, project, tmp_path, monkeypatch):
    """A second key whose authorized_keys line forces its commands through a PATH without rsync."""
    config = sshd.restricted("no-rsync", ("sh", "mkdir", "cat", "tar", "xargs", "rm", "rmdir", "env"))
    monkeypatch.setenv("DUPLEX_SSH_CONFIG", str(config))
    lines = []
    with Connection(parse_target(sshd.url(tmp_path / "remote"), "demo"), project) as conn:
        assert conn.run(["sh", "-c", "command -v rsync || echo none"]).stdout.strip() == "none"
        with pytest.raises(SshError) as caught:
            sync(conn, method="rsync")
        assert caught.value.kind == "missing-command" and "rsync is not installed on 127.0.0.1" in str(caught.value)
        result = sync(conn, say=lines.append)
    assert result.method == "tar" and sorted(result.sent) == SENT
    assert lines[0] == "sync: rsync is missing on 127.0.0.1: sending with tar"
