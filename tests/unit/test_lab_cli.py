"""`nxprovision lab` verbs and the preflight refusals (each one line with its fix)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from nxprovision.errors import NxError
from nxprovision_lab import cli, preflight


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["lab", *argv])


def test_every_verb_has_a_function_and_defaults_to_the_nxlab_name() -> None:
    for argv in (
        ["up"],
        ["status"],
        ["inventory"],
        ["down"],
        ["kill", "h"],
        ["start", "h"],
        ["partition", "h"],
        ["heal", "h"],
        ["ssh", "h"],
    ):
        args = _parse(*argv)
        assert callable(args.func) and args.name == "nxlab"


def test_up_options() -> None:
    args = _parse("up", "--hosts", "3", "--name", "nxtest", "--database", "mongodb")
    assert (args.hosts, args.name, args.database, args.architecture) == (3, "nxtest", "mongodb", None)
    with pytest.raises(SystemExit):
        _parse("up", "--hosts", "3", "--architecture", "compact")


def test_ssh_passes_the_remote_command_through() -> None:
    args = _parse("ssh", "host1", "systemctl", "is-system-running", "--wait")
    assert args.host == "host1" and args.cmd == ["systemctl", "is-system-running", "--wait"]


def test_status_of_an_unknown_lab_is_one_line_with_a_fix(capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(["lab", "status", "--name", "nosuchlabxyz"])
    err = capsys.readouterr().err
    assert rc != 0 and err.count("\n") == 1 and "nxprovision lab up --name nosuchlabxyz" in err


def test_missing_tools_name_the_apt_get_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = ("debootstrap", "ssh")
    monkeypatch.setattr(preflight, "_which", lambda prog: None if prog in missing else "/bin/x")
    with pytest.raises(NxError) as err:
        preflight.require_tools()
    assert err.value.fix == "apt-get install debootstrap openssh-client"


def test_overlayfs_detection(tmp_path: Path) -> None:
    f = tmp_path / "filesystems"
    f.write_text("nodev\tsysfs\n\text4\n")
    assert not preflight.has_overlayfs(f)
    f.write_text("nodev\tsysfs\nnodev\toverlay\n")
    assert preflight.has_overlayfs(f)


def test_not_root_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(NxError, match="needs root"):
        preflight.require_root()
