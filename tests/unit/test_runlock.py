"""One changing run per inventory: a second one is refused while the first holds the lock, a killed run leaves
no stale lock, and a run in the middle of a secret rotation is refused before any host is touched."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nxprovision import rotation as rot
from nxprovision import secrets
from nxprovision.errors import NxError
from nxprovision.runlock import LOCK_NAME, inventory_lock, lock_path

HOLD = """
import sys, time
from pathlib import Path
from nxprovision.runlock import inventory_lock
with inventory_lock(Path(sys.argv[1]), "deploy"):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(inv: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[2]), *sys.path]))
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(inv)], stdout=subprocess.PIPE, text=True, env=env)
    assert p.stdout is not None and p.stdout.readline().strip() == "held"
    return p


def test_a_second_run_is_refused_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    inv = tmp_path / "inv"
    inv.mkdir()
    p = _holder(inv)
    try:
        with pytest.raises(NxError) as e, inventory_lock(inv, "restart"):
            pass
        assert f"pid {p.pid}" in e.value.args[0] and "`nxprovision deploy`" in e.value.args[0]
        assert "nothing was done" in e.value.args[0]
    finally:
        p.kill()
        p.wait()
    # the kernel dropped the lock with its process: no stale lock to clean by hand
    with inventory_lock(inv, "restart"):
        assert lock_path(inv) == inv.resolve() / LOCK_NAME


def test_the_lock_is_reentrant_within_one_run_and_released_after(tmp_path: Path) -> None:
    inv = tmp_path / "inv"
    inv.mkdir()
    with inventory_lock(inv, "secrets rotate"), inventory_lock(inv, "deploy"):
        assert "secrets rotate" in lock_path(inv).read_text()
    assert lock_path(inv).read_text() == ""
    p = _holder(inv)  # another process can take it now
    p.kill()
    p.wait()


def test_every_spelling_of_one_inventory_shares_one_lock(tmp_path: Path) -> None:
    inv = tmp_path / "inv"
    inv.mkdir()
    f = inv / "hosts.yml"
    f.write_text("all: {}\n")
    (tmp_path / "link").symlink_to(inv)
    paths = {lock_path(p) for p in (inv, f, tmp_path / "link", tmp_path / "link" / "hosts.yml", Path(f"{inv}/"))}
    assert paths == {inv.resolve() / LOCK_NAME}
    import fcntl

    with inventory_lock(f, "deploy"):
        # a second open file, as another process has: flock refuses it while the run holds the folder's lock
        fd = os.open(lock_path(tmp_path / "link"), os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)


def test_a_missing_inventory_leaves_no_lock_file(tmp_path: Path, run_cli) -> None:
    code, _out, err = run_cli("deploy", "-i", str(tmp_path / "nosuch"), "--progress", "plain")
    assert code == 2 and "no such inventory" in err, err
    assert list(tmp_path.iterdir()) == []


def test_changing_verbs_are_refused_while_another_run_holds_the_inventory(make_inv, run_cli) -> None:
    inv = make_inv()
    p = _holder(inv)
    try:
        started = time.monotonic()
        code, _, err = run_cli("deploy", "-i", str(inv))
        assert code != 0 and "is changing this cluster" in err and "Traceback" not in err
        assert time.monotonic() - started < 30  # refused, not queued
        # read-only verbs do not wait for it
        code, _, _ = run_cli("validate", "-i", str(inv))
        assert code == 0
    finally:
        p.kill()
        p.wait()


def test_a_run_during_a_pending_rotation_is_refused(make_inv, run_cli) -> None:
    inv = make_inv()
    path = rot.secrets_path(inv)
    pw = secrets.read_vault_password(inv / ".vault-pass")
    rot.begin(path, pw, rot.ROTATIONS["db_password"])
    for verb in (["deploy"], ["restart", "--component", "nuxeo"], ["upgrade", "--nuxeo-version", "2023.36"]):
        code, _, err = run_cli(*verb, "-i", str(inv))
        assert code != 0 and "rotation of" in err and "is pending" in err, (verb, err)
        assert "secrets rotate" in err and "Traceback" not in err


REPO = Path(__file__).resolve().parents[2]


def _git(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(REPO), *argv], capture_output=True, text=True, check=False)


def test_no_run_lock_is_committed_and_gitignore_covers_every_inventory_s_lock() -> None:
    if _git("rev-parse", "--is-inside-work-tree").stdout.strip() != "true":
        pytest.skip("not a git checkout")
    tracked = [p for p in _git("ls-files").stdout.splitlines() if Path(p).name == LOCK_NAME]
    assert tracked == [], f"run lock files committed: {tracked} (git rm --cached them)"
    for folder in ("inventories/compact", "inventories/distributed", "some/operator/inventory"):
        probe = _git("check-ignore", "--no-index", "-q", f"{folder}/{LOCK_NAME}")
        assert probe.returncode == 0, f"{folder}/{LOCK_NAME} is not ignored by .gitignore"
