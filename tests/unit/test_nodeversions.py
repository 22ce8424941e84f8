"""Versions per node (issue 15): each Nuxeo node records the version it serves; a run that would put an older one
on it is refused, naming the nodes, unless --allow-downgrade; the refusal is reported as a refusal."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nxprovision.cli import build_parser
from nxprovision.commands import downgrade_vars, report
from nxprovision.daytwo import check_upgrade
from nxprovision.nodeversions import check, compare, version_key
from nxprovision.runner import Failure, RunResult, run_playbook
from tests.unit.conftest import LTS2023

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("2023.9", "2023.10"),
        ("2023.10", "2025.0"),
        ("2023.9", "2025.0"),
        ("2021.40", "2023.0"),
        ("2023.34", "2023.35"),
        ("2023.10", "2023.10-HF03"),
        ("2023.10-HF03", "2023.10-HF12"),
        ("10.10-HF45", "2021.1"),
        ("2023.10", "2023.10.1"),
        ("2025.0", "2025.0.1"),
    ],
)
def test_lts_versions_are_ordered_as_numbers(older: str, newer: str) -> None:
    assert compare(older, newer) == -1
    assert compare(newer, older) == 1
    assert compare(newer, newer) == 0


@pytest.mark.parametrize(("a", "b"), [("2025.0", "2025"), ("2023.10-hf3", "2023.10-HF03"), (" 2023.35 ", "2023.35")])
def test_same_version_in_other_spellings(a: str, b: str) -> None:
    assert compare(a, b) == 0


@pytest.mark.parametrize("text", ["latest", "", None, "2023.x", "v2023.10", True, "2023..1"])
def test_no_version_compares_to_nothing(text: object) -> None:
    assert version_key(text) is None
    assert compare(text, "2023.10") is None


def test_nodes_on_a_newer_version_refuse_an_older_target_naming_them() -> None:
    v = check("2023.34", {"front1": "2023.35", "front2": "2023.34", "front3": None, "worker1": "2023.33"})
    assert v.refused
    assert v.newer == {"front1": "2023.35"} and v.same == ["front2"]
    assert v.unrecorded == ["front3"] and v.older == {"worker1": "2023.33"}
    text = v.message()
    first, fix = text.split("\n", 1)
    assert "2023.34 is older" in first and "front1 (2023.35)" in first
    assert "front2" not in first and "worker1" not in first
    assert "--allow-downgrade" in fix and "nxprovision upgrade -i INVENTORY --nuxeo-version 2023.35" in fix


def test_the_fix_names_the_newest_recorded_version() -> None:
    v = check("2023.9", {"a": "2023.10", "b": "2025.0", "c": "2023.9"})
    assert v.refused and v.newest == "2025.0"
    assert "a (2023.10), b (2025.0)" in v.message()


def test_allow_downgrade_lets_it_through_with_a_warning() -> None:
    v = check("2023.34", {"front1": "2023.35"}, allow_downgrade=True)
    assert not v.refused
    assert v.warnings() == ["downgrading front1 (2023.35) to Nuxeo 2023.34 (nuxeo_allow_downgrade)"]


def test_same_older_or_no_record_is_no_refusal() -> None:
    v = check("2023.35", {"front1": "2023.35", "front2": "2023.34", "new": None, "odd": "garbage"})
    assert not v.refused and v.warnings() and "odd (garbage)" in v.warnings()[0]
    assert not check("2023.35", {}).refused


def test_a_target_that_is_no_version_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a version"):
        check("latest", {"front1": "2023.35"})


def test_upgrade_to_the_inventorys_own_version_resumes() -> None:
    assert check_upgrade("2023.35", "2023.35") == "rolling"
    assert check_upgrade("2023.35", "2023.35", True) == "full-stop"


@pytest.mark.parametrize("verb", [["deploy", "-i", "inv"], ["add-node", "-i", "inv", "front3"]])
def test_allow_downgrade_flag(verb: list[str]) -> None:
    parser = build_parser()
    assert downgrade_vars(parser.parse_args(verb)) is None
    args = parser.parse_args([*verb, "--allow-downgrade"])
    assert args.allow_downgrade is True
    assert downgrade_vars(args) == {"nuxeo_allow_downgrade": True}


def test_upgrade_takes_no_allow_downgrade() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["upgrade", "-i", "inv", "--nuxeo-version", "2023.35", "--allow-downgrade"])


def test_refusal_is_one_block_not_a_failure_report(tmp_path: Path) -> None:
    message = check("2023.34", {"front1": "2023.35"}).message()
    result = RunResult(rc=2, status="failed", run_dir=tmp_path, recap={"front1": {"ok": 2, "failed": 1}},
                       failures=[Failure("front1", "Refuse an older Nuxeo version than a node runs", "", message,
                                         refused=True)])
    assert result.failures[0].kind == "refused"
    out = io.StringIO()
    assert report(result, out) == 2
    text = out.getvalue()
    assert text.startswith("nxprovision: REFUSED: Nuxeo 2023.34 is older")
    assert "front1 (2023.35)" in text and "  Fix: finish the upgrade" in text
    assert "nothing was changed" in text and str(tmp_path) in text
    assert "failed at task" not in text and "run failed" not in text and "ok=" not in text


def _fake_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorded: dict[str, str]) -> Path:
    home = tmp_path / "home"
    (home / "playbooks").mkdir(parents=True)
    (home / "ansible.cfg").write_text(
        f"[defaults]\nretry_files_enabled = False\naction_plugins = {ROOT}/plugins/action\n"
    )
    (home / "playbooks" / "check.yml").write_text(
        "- name: Versions\n  hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - name: Pretend the facts were read\n      ansible.builtin.set_fact:\n"
        "        ansible_local: {nuxeo: {version: '{{ recorded }}'}}\n      when: recorded is defined\n"
        "    - name: Refuse an older Nuxeo version than a node runs\n      nx_nuxeo_versions:\n"
        "        target: '2023.34'\n        allow_downgrade: '{{ nuxeo_allow_downgrade | default(false) }}'\n"
        "      run_once: true\n"
    )
    hosts = "".join(f"    {h}:\n" + (f"      recorded: '{v}'\n" if v else "") for h, v in recorded.items())
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  vars:\n    ansible_connection: local\n"
                   "    ansible_python_interpreter: '{{ ansible_playbook_python }}'\n  hosts:\n" + hosts)
    monkeypatch.setenv("NXPROVISION_HOME", str(home))
    monkeypatch.setenv("NXPROVISION_RUNS_DIR", str(tmp_path / "runs"))
    return inv


def test_action_plugin_refusal_reaches_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inv = _fake_home(tmp_path, monkeypatch, {"front1": "2023.35", "front2": "2023.34", "front3": ""})
    out = io.StringIO()
    result = run_playbook("check.yml", inv, verb="test", vault_password_file=None, secrets=[], out=out)
    assert result.rc != 0 and [f.kind for f in result.failures] == ["refused"]
    assert result.logs == []  # no service log is read for a refusal
    assert report(result, out) == 2
    text = out.getvalue()
    assert "REFUSED  front1" in text and "FAILED" not in text
    assert "nxprovision: REFUSED: Nuxeo 2023.34 is older than the version this node runs: front1 (2023.35)" in text


def test_action_plugin_lets_an_allowed_downgrade_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inv = _fake_home(tmp_path, monkeypatch, {"front1": "2023.35", "front2": ""})
    out = io.StringIO()
    result = run_playbook("check.yml", inv, verb="test", vault_password_file=None, secrets=[], out=out,
                          extravars={"nuxeo_allow_downgrade": True})
    assert result.rc == 0, out.getvalue()
    assert report(result, out) == 0


def _versions_then_marker(tmp_path: Path, recorded: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The real nuxeo_versions.yml, then a play writing a marker on every host (what the plays after it would do)."""
    marks = tmp_path / "marks"
    marks.mkdir()
    pb = tmp_path / "pb.yml"
    pb.write_text(yaml.safe_dump([
        {"ansible.builtin.import_playbook": str(ROOT / "playbooks" / "nuxeo_versions.yml")},
        {"name": "After", "hosts": "all", "gather_facts": False, "tasks": [
            {"name": "Mark",
             "ansible.builtin.copy": {"content": "ran\n", "dest": f"{marks}/{{{{ inventory_hostname }}}}"}}]},
    ]))
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  vars:\n    ansible_connection: local\n"
                   "    ansible_python_interpreter: '{{ ansible_playbook_python }}'\n"
                   "  children:\n    nuxeo:\n      hosts:\n        front1:\n        front2:\n"
                   "    postgresql:\n      hosts:\n        db1:\n")
    extra = {"nx": {"nuxeo": {"version": "2023.34"}}, "ansible_local": {"nuxeo": {"version": recorded}},
             "ansible_become": False}
    run = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inv), str(pb), "-e", json.dumps(extra)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
    )
    return run, marks


def test_a_refusal_stops_every_host_not_only_the_nuxeo_nodes(tmp_path: Path) -> None:
    """db1 is no Nuxeo node, yet the plays after the refusal must not run on it either: nothing is changed."""
    run, marks = _versions_then_marker(tmp_path, "2023.35")
    assert run.returncode != 0, run.stdout
    assert "Nuxeo 2023.34 is older than the version 2 nodes run" in run.stdout, run.stdout[-3000:]
    assert sorted(p.name for p in marks.iterdir()) == [], run.stdout[-3000:]


def test_without_a_refusal_every_host_goes_on(tmp_path: Path) -> None:
    run, marks = _versions_then_marker(tmp_path, "2023.34")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert sorted(p.name for p in marks.iterdir()) == ["db1", "front1", "front2"]


def test_an_upgrade_to_another_lts_is_validated_as_the_inventory_will_be(make_inv, run_cli,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """LTS 2025 needs Java 21, which Debian 12 does not ship: refused before any host or the mirror is contacted."""
    import nxprovision.commands as commands

    ran: list[str] = []
    monkeypatch.setattr(commands, "_run", lambda *a, **_k: ran.append(a[1]) or 0)
    inv = make_inv("compact", set=LTS2023)
    code, out, err = run_cli("upgrade", "-i", str(inv), "--nuxeo-version", "2025.9", "--full-stop")
    assert code == 2, out + err
    assert "versions.java_os" in err and "upgrade to Nuxeo 2025.9 refused" in err and "no host was touched" in err
    assert ran == []


def test_an_upgrade_to_another_lts_needs_a_backup_or_no_backup(make_inv, run_cli,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import nxprovision.commands as commands

    ran: list[tuple[str, dict]] = []
    monkeypatch.setattr(commands, "_run", lambda *a, **k: ran.append((a[1], k.get("extravars") or {})) or 0)
    monkeypatch.setattr(commands, "_set_inventory_version", lambda *_a: None)
    # Java 21 from the operator's own apt repository: the 2025 target is valid on Debian 12
    inv = make_inv("compact", set={**LTS2023, "common_java_package": "temurin-21-jre",
                                   "pgbackrest_enabled": False, "nuxeo_download_base_url": "file:///srv/mirror"})
    code, out, err = run_cli("upgrade", "-i", str(inv), "--nuxeo-version", "2025.9", "--full-stop")
    assert code == 2 and "starts with a full backup" in err and "--no-backup" in err, out + err
    assert ran == []
    code, out, err = run_cli("upgrade", "-i", str(inv), "--nuxeo-version", "2025.9", "--full-stop", "--no-backup")
    assert code == 0, out + err
    assert [p for p, _ in ran] == ["upgrade_nuxeo_full_stop.yml"]
    assert ran[0][1]["nx_upgrade_reindex"] is True and "the repository is reindexed" in out
