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


def test_an_inventory_file_gets_a_hidden_lock_beside_it(tmp_path: Path) -> None:
    f = tmp_path / "hosts.yml"
    f.write_text("all: {}\n")
    assert lock_path(f) == tmp_path.resolve() / f".hosts.yml{LOCK_NAME}"


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
