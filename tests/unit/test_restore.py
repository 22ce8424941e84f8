"""Restore guards (behaviour): the confirmation before anything, the steps a dry run lists, the backup checks
before any service stops, data directories moved aside, manifests expiring with their pgBackRest sets."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from nxprovision.backups import aside_name, confirm_restore, restore_steps
from nxprovision.errors import NxError
from nxprovision.inventory import load_inventory
from nxprovision.model.cluster import build_cluster
from nxprovision.runlock import LOCK_NAME
from tests.unit.test_backup import _nx_s3

ROOT = Path(__file__).resolve().parents[2]


def _never() -> str:
    raise AssertionError("read without a terminal to ask")


# -- the confirmation -------------------------------------------------------------------------------------------

def test_yes_confirms_without_reading_anything():
    confirm_restore(True, _never, _never, isatty=lambda: False, ask=lambda _q: _never())


def test_no_terminal_refuses_before_reading_the_inventory():
    with pytest.raises(NxError) as e:
        confirm_restore(False, _never, _never, isatty=lambda: False, ask=lambda _q: _never())
    assert e.value.exit_code == 2 and "--yes" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("typed, ok", [("prod-eu", True), ("  prod-eu\n", True), ("yes", False), ("", False),
                                       ("PROD-EU", False)])
def test_terminal_confirmation_is_the_cluster_name(typed, ok):
    asked: list[str] = []

    def ask(question: str) -> str:
        asked.append(question)
        return typed

    run = lambda: confirm_restore(False, lambda: "prod-eu", lambda: "20261126T033000Z",  # noqa: E731
                                  isatty=lambda: True, ask=ask)
    if ok:
        run()
    else:
        with pytest.raises(NxError) as e:
            run()
        assert e.value.exit_code == 2 and "nothing was done" in str(e.value)
    assert "prod-eu" in asked[0] and "20261126T033000Z" in asked[0]


def test_end_of_input_is_no_confirmation():
    def ask(_q: str) -> str:
        raise EOFError

    with pytest.raises(NxError):
        confirm_restore(False, lambda: "c", lambda: "b", isatty=lambda: True, ask=ask)


# -- the CLI ----------------------------------------------------------------------------------------------------

@pytest.fixture
def runs(monkeypatch):
    import nxprovision.commands as commands

    calls: list[tuple[str, str, dict[str, Any]]] = []
    monkeypatch.setattr(commands, "_run", lambda args, playbook, verb, vpf, secrets, extravars=None:
                        calls.append((playbook, verb, extravars or {})) or 0)
    return calls


def _former_record(inv: Path) -> Path:
    old = inv / "runs" / "backups"
    old.mkdir(parents=True)
    record = old / "20261126T033000Z.json"
    record.write_text(json.dumps({"id": "20261126T033000Z", "audit": {"status": "snapshot"}}))
    return record


def test_restore_without_yes_and_terminal_touches_nothing(make_inv, run_cli, runs, monkeypatch):
    import nxprovision.inventory

    inv = make_inv("distributed")
    record = _former_record(inv)
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    monkeypatch.setattr(nxprovision.inventory, "load_inventory", lambda *a, **k: _never())
    code, out, err = run_cli("restore", "-i", str(inv))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "--yes" in err and "nothing was done" in err, err
    assert runs == [] and not (inv / LOCK_NAME).exists() and record.exists()


def test_restore_confirmed_on_a_terminal(make_inv, run_cli, runs, monkeypatch):
    inv = make_inv("compact", set={"nx_cluster_name": "acme"})
    _former_record(inv)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr("builtins.input", lambda _q: "acme")
    code, out, err = run_cli("restore", "-i", str(inv))
    assert code == 0, out + err
    (playbook, verb, extra), = runs
    assert (playbook, verb, extra["nx_backup_id"]) == ("restore.yml", "restore", "20261126T033000Z")
    # the former records moved to the hidden folder, out of Ansible's inventory sources
    assert (inv / ".backups" / "20261126T033000Z.json").exists() and not (inv / "runs").exists()
    aside = aside_name("/var/lib/postgresql/17/main", extra["nx_restore_stamp"])
    assert f"kept as {aside} on" in out and f"rm -rf {aside}" in out and "To go back" in out


def test_restore_not_confirmed_on_a_terminal(make_inv, run_cli, runs, monkeypatch):
    inv = make_inv("compact")
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr("builtins.input", lambda _q: "y")
    code, _out, err = run_cli("restore", "-i", str(inv), "--backup", "20261126T033000Z")
    assert code == 2 and "not confirmed" in err and runs == []


@pytest.mark.parametrize("arch", ["compact", "distributed"])
def test_dry_run_lists_every_step_and_runs_nothing(make_inv, run_cli, runs, monkeypatch, arch):
    inv = make_inv(arch)
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    code, out, err = run_cli("restore", "-i", str(inv), "--backup", "20261126T033000Z", "--dry-run")
    assert code == 0, out + err
    assert runs == [] and not (inv / LOCK_NAME).exists()
    steps = [ln.split(". ", 1)[1] for ln in out.splitlines() if ln[:1].isdigit()]
    c = build_cluster(load_inventory(inv))
    assert steps == restore_steps(c, "20261126T033000Z", "<time of the run>")
    assert "--set=<the manifest's set> info" in steps[1]
    # with a local record, the set it names
    (inv / ".backups").mkdir()
    (inv / ".backups" / "20261126T033000Z.json").write_text(json.dumps({"database": {"label": "20261126-033000F"}}))
    code, out, _err = run_cli("restore", "-i", str(inv), "--dry-run")
    assert code == 0 and "--set=20261126-033000F info` lists the set" in out and runs == []


@pytest.mark.parametrize("arch", ["compact", "distributed"])
def test_steps_verify_before_anything_stops_and_move_data_aside(make_inv, arch):
    c = build_cluster(load_inventory(make_inv(arch)))
    steps = restore_steps(c, "20261126T033000Z", "S")
    verify = [i for i, s in enumerate(steps) if s.startswith("verify:")]
    first_stop = next(i for i, s in enumerate(steps) if s.startswith("stop "))
    assert verify and max(verify) < first_stop
    assert any("manifest" in steps[i] and "md5" in steps[i] for i in verify)
    assert any("pgbackrest" in steps[i] and "info" in steps[i] for i in verify)
    assert any("audit snapshot" in steps[i] for i in verify)
    data_dir = c.derived["backup"]["data_dir"]
    aside = [s for s in steps if "move the data directory aside" in s]
    assert len(aside) == 1 and f"{data_dir}.before-restore-S" in aside[0]
    for h in c.derived["db"]["hosts"]:
        assert h in aside[0]
    assert steps.index(aside[0]) > first_stop
    assert steps[-1].startswith("start Nuxeo")
    if arch == "distributed":
        assert any("etcd" in s for s in steps)


# -- the playbooks ----------------------------------------------------------------------------------------------

# What a verify play may do: read, assert, and register the snapshot repository again (no data changes).
READ_ONLY = {"ansible.builtin.assert", "ansible.builtin.set_fact", "ansible.builtin.include_role", "nx_s3_objects",
             "ansible.builtin.command", "ansible.builtin.uri", "ansible.builtin.debug"}


def _tasks(tasks: list[dict]) -> list[dict]:
    out = []
    for t in tasks:
        out.append(t)
        for key in ("block", "rescue", "always"):
            out += _tasks(t.get(key) or [])
    return out


def _module(task: dict) -> str | None:
    return next((k for k in task if k.startswith(("ansible.", "community.", "nx_"))), None)


def test_restore_checks_everything_before_any_service_stops():
    plays = yaml.safe_load((ROOT / "playbooks" / "restore.yml").read_text())
    work = [p for p in plays if "import_playbook" not in p and "ansible.builtin.import_playbook" not in p]
    tags = [p["tags"][0] for p in work]
    n = tags.count("restore::verify")
    assert n == 3 and tags[:n] == ["restore::verify"] * n, tags
    assert tags[n] == "restore::stop"
    for play in work[:n]:
        assert play["any_errors_fatal"] is True
        tasks = _tasks(play["tasks"])
        for i, t in enumerate(tasks):
            mod = _module(t)
            if mod is None:
                continue  # a block
            assert mod in READ_ONLY, (play["name"], t["name"])
            if mod == "nx_s3_objects":
                assert t[mod]["state"] == "verify"
            if mod == "ansible.builtin.command":
                assert str(t[mod]).rstrip().endswith(" info") and t.get("changed_when") is False
            if mod == "ansible.builtin.uri":
                assert t[mod].get("method", "GET") == "GET"
            if mod == "ansible.builtin.include_role":
                assert t[mod]["tasks_from"] == "snapshot_repository.yml"
            # a task that cannot fail checks nothing by itself: a later assert must read what it answered, not
            # whether it failed (it never does)
            if t.get("failed_when") is False:
                later = yaml.safe_dump([u for u in tasks[i + 1:] if "ansible.builtin.assert" in u])
                assert f"{t['register']}." in later, t["name"]
                assert f"{t['register']} is" not in later, t["name"]


def test_no_restore_task_deletes_a_data_directory():
    deleting = []
    for f in ("restore.yml", "tasks/restore_move_aside.yml"):
        doc = yaml.safe_load((ROOT / "playbooks" / f).read_text())
        tasks = [t for p in doc for t in _tasks(p.get("tasks", []))] if f == "restore.yml" else _tasks(doc)
        for t in tasks:
            args = t.get("ansible.builtin.file") or {}
            if args.get("state") == "absent":
                deleting.append(args["path"])
            shell = str(t.get("ansible.builtin.shell") or t.get("ansible.builtin.command") or "")
            assert "rm -" not in shell and "--delta" not in shell, t["name"]
    # only a failed bootstrap's leftover of an earlier restore (its data was moved aside then)
    assert deleting == ["{{ __nx_data_dir }}.failed"]


# -- expiry -----------------------------------------------------------------------------------------------------

def test_expired_manifests_follow_the_pgbackrest_sets():
    s3 = _nx_s3()
    manifests = {
        "20261120T010000Z": {"database": {"label": "20261120-010000F"}},
        "20261121T010000Z": {"database": {"label": "20261120-010000F_20261121-010000I"}},
        "20261122T010000Z": {"database": {"label": "20261122-010000F"}},
        "20261123T010000Z": {"database": {"label": "20261123-010000F"}},
        "notours": {"something": "else"},
        "20261124T010000Z": {"database": {"label": "gone-but-current"}},
    }
    kept = ["20261122-010000F", "20261123-010000F"]
    assert s3.expired_manifests(manifests, kept, "20261124T010000Z") == ["20261120T010000Z", "20261121T010000Z"]
    assert s3.expired_manifests(manifests, [*kept, "20261120-010000F", "20261120-010000F_20261121-010000I"],
                                "20261124T010000Z") == []


def test_pool_problems_name_missing_and_changed_binaries():
    s3 = _nx_s3()
    a, b = "0cc175b9c0f1b6a831c399e269772661", "92eb5ffee6ae2fec3ad71c777531578f"
    objects = [{"key": a, "size": 1, "md5": a}, {"key": b, "size": 1, "md5": b}, {"key": "c", "size": 2, "md5": a}]
    pooled = {a: {"size": 1, "etag": a}, b: {"size": 1, "etag": a}, "c": None}
    bad = s3.pool_problems(objects, pooled)
    assert len(bad) == 2 and bad[0].startswith(b) and bad[1] == "c (missing)"
    assert s3.pool_problems(objects[:1], pooled) == []
