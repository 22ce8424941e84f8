"""The ansible-runner wrapper: Ansible-form recap, the failing host and task named, secrets masked."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from nxprovision.commands import report
from nxprovision.runner import run_playbook

SECRET = "s3cr3t-Value-123456"


@pytest.fixture
def fake_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    (home / "playbooks").mkdir(parents=True)
    (home / "ansible.cfg").write_text("[defaults]\nretry_files_enabled = False\n")
    (home / "playbooks" / "fail.yml").write_text(
        "- name: Probe\n  hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - name: Works\n      ansible.builtin.command: 'true'\n      changed_when: true\n"
        '    - name: Breaks on b\n      ansible.builtin.fail:\n        msg: "boom {{ my_secret }}"\n'
        "      when: inventory_hostname == 'b'\n"
    )
    inv = tmp_path / "inv.yml"
    inv.write_text(
        "all:\n  vars:\n    ansible_connection: local\n"
        "    ansible_python_interpreter: '{{ ansible_playbook_python }}'\n"
        f"    my_secret: {SECRET}\n  hosts:\n    a:\n    b:\n"
    )
    monkeypatch.setenv("NXPROVISION_HOME", str(home))
    monkeypatch.setenv("NXPROVISION_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path


def test_failure_names_host_and_task_and_masks_secrets(fake_home: Path) -> None:
    out = io.StringIO()
    result = run_playbook(
        "fail.yml", fake_home / "inv.yml", verb="test", vault_password_file=None, secrets=[SECRET], out=out
    )
    code = report(result, out)
    text = out.getvalue()
    assert code == 1 and result.rc != 0
    assert "b failed at task 'Breaks on b': boom ********" in text
    assert "changed  a  Works" in text and "changed  b  Works" in text
    assert "a : ok=1  changed=1  unreachable=0  failed=0  skipped=1" in text
    assert "b : ok=1  changed=1  unreachable=0  failed=1" in text
    assert str(result.run_dir) in text
    assert SECRET not in text
    # every file the run kept (ansible-runner's stdout and job events of the failing task included), its folder 0700
    kept = [f for f in result.run_dir.rglob("*") if f.is_file()]
    assert any(f.name == "stdout" for f in kept) and any(f.parent.name == "job_events" for f in kept), kept
    assert [str(f) for f in kept if SECRET.encode() in f.read_bytes()] == []
    assert result.run_dir.stat().st_mode & 0o077 == 0


def test_runs_are_rotated(fake_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nxprovision.runner as runner

    monkeypatch.setattr(runner, "KEEP_RUNS", 2)
    for _ in range(3):
        run_playbook(
            "fail.yml",
            fake_home / "inv.yml",
            verb="t",
            vault_password_file=None,
            secrets=[],
            out=io.StringIO(),
            limit="a",
        )
    # the new run's folder is made before the rotation: two kept, plus the one being written
    assert len(list((fake_home / "runs").iterdir())) == 2


def test_read_only_runs_never_push_out_the_last_deploy(tmp_path: Path) -> None:
    from nxprovision.runner import _rotate, run_verb

    base = tmp_path / "runs"
    names = ["20261126-010000-deploy-1-aaaaaa", "20261126-010100-restart-nuxeo-2-bbbbbb"]
    names += [f"20261126-02{i:02d}00-status-probe-{i}-cccccc" for i in range(15)]
    for n in names:
        (base / n).mkdir(parents=True)
    assert run_verb(names[1]) == "restart-nuxeo" and run_verb(names[2]) == "status-probe"
    _rotate(base, keep=30, keep_read_only=10)
    left = sorted(p.name for p in base.iterdir())
    assert names[0] in left and names[1] in left
    assert [n for n in left if "status-probe" in n] == names[-10:]
    _rotate(base, keep=1, keep_read_only=10)
    assert names[0] not in {p.name for p in base.iterdir()} and names[1] in {p.name for p in base.iterdir()}


def test_run_records_keep_no_secret_and_are_private(fake_home: Path) -> None:
    """A failing task that printed a secret: ansible-runner's stdout and job events held it in clear before."""
    import stat

    result = run_playbook(
        "fail.yml", fake_home / "inv.yml", verb="test", vault_password_file=None, secrets=[SECRET],
        out=io.StringIO(),
    )
    assert result.rc != 0
    files = [f for f in result.run_dir.rglob("*") if f.is_file()]
    assert any(f.name == "stdout" for f in files) and any(f.parent.name == "job_events" for f in files)
    # the failing task's message did reach the records, masked
    assert any(b"boom ********" in f.read_bytes() for f in files)
    leaks = [str(f) for f in files if SECRET.encode() in f.read_bytes()]
    assert leaks == []
    for d in (result.run_dir.parent, result.run_dir):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d


def test_masker_covers_json_escaped_secrets(tmp_path: Path) -> None:
    from nxprovision.runevents import Masker
    from nxprovision.runner import scrub_records

    odd = 'pa"ss\\wörd-42'
    (tmp_path / "event.json").write_text(json.dumps({"msg": f"x {odd} y"}))
    (tmp_path / "plain").write_text(f"x {odd} y")
    assert sorted(p.name for p in scrub_records(tmp_path, Masker([odd]))) == ["event.json", "plain"]
    assert json.loads((tmp_path / "event.json").read_text()) == {"msg": "x ******** y"}
    assert (tmp_path / "plain").read_text() == "x ******** y"


def test_what_a_playbook_tells_the_operator_is_shown_masked_in_every_mode() -> None:
    from nxprovision.progress import make_display
    from nxprovision.runevents import Masker

    def ok(task: str, msg: object) -> dict:
        return {"event": "runner_on_ok", "event_data": {"host": "front1", "task": task, "res": {"msg": msg}}}

    told = ok("Tell the operator how the reindex went", "reindex COMPLETED on front1:\n  9 of 9 documents, key s3cr3t")
    quiet = [ok("Report the certificate of this host", "front1: certificate"), ok("Tell the operator x", ["a list"])]
    for mode in ("plain", "json", "rich"):
        out = io.StringIO()
        show, ctx = make_display(mode, 1, Masker(["s3cr3t"]), out)
        if ctx:
            ctx.__enter__()
        for event in [*quiet, told]:
            show(event)
        if ctx:
            ctx.__exit__(None, None, None)
        text = out.getvalue()
        assert "reindex COMPLETED on front1: 9 of 9 documents, key ****" in text, (mode, text)
        assert "s3cr3t" not in text and "front1: certificate" not in text and "a list" not in text, (mode, text)


def test_module_warnings_are_shown_in_every_mode() -> None:
    from nxprovision.progress import make_display
    from nxprovision.runevents import Masker

    res = {"warnings": ["haproxy is installed at\n 2.6.1, not s3cr3t"]}
    event = {"event": "runner_on_ok", "event_data": {"host": "db1", "task": "Hold packages to the version lock",
                                                     "role": "common", "res": res}}
    for mode in ("plain", "json", "rich"):
        out = io.StringIO()
        show, ctx = make_display(mode, 1, Masker(["s3cr3t"]), out)
        if ctx:
            ctx.__enter__()
        show(event)
        if ctx:
            ctx.__exit__(None, None, None)
        text = out.getvalue()
        assert "WARNING  db1  common : Hold packages to the version lock: haproxy is installed at" in text, (mode, text)
        assert "s3cr3t" not in text, (mode, text)
