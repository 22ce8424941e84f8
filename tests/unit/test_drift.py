"""Drift: diffs taken from check-mode results, secrets masked, the report and its exit codes; the same diffs in
every progress mode of `deploy --check --diff`."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from nxprovision import drift
from nxprovision.commands import EXIT_INVALID, expected_conf
from nxprovision.drift import MASK, Collector, Finding, NodeDifference, compare_nodes, diff_text, mask_text
from nxprovision.runner import run_playbook

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-Value-123456"


def event(kind: str, host: str = "h1", task: str = "t", role: str = "", stdout: str = "", action: str = "template",
          **res: object) -> dict:
    return {"event": kind, "stdout": stdout, "event_data": {"host": host, "task": task, "role": role,
                                                            "task_uuid": f"u-{task}", "task_action": action,
                                                            "res": res}}


# -- diffs and masking ---------------------------------------------------------------------------------


def test_diff_text_is_a_unified_diff_with_the_file_named() -> None:
    text = diff_text({"before": "a=1\nb=2\n", "after": "a=1\nb=3\n", "before_header": "/etc/x.conf",
                      "after_header": "/etc/x.conf"})
    assert text.splitlines()[:2] == ["--- before: /etc/x.conf", "+++ after: /etc/x.conf"]
    assert "-b=2" in text and "+b=3" in text and " a=1" in text


def test_diff_text_of_nothing_and_of_prepared_and_state_diffs() -> None:
    assert diff_text({"before": "same\n", "after": "same\n"}) == ""
    assert diff_text(None) == "" and diff_text({}) == ""
    assert diff_text({"prepared": "The following packages will be upgraded: haproxy\n"}).startswith("The following")
    # a listing of an unpacked tree (one line per file) is cut, the records keep it whole
    listing = diff_text({"prepared": "".join(f">f++++++.?? nuxeo/lib/{i}.jar\n" for i in range(500))})
    assert listing.splitlines()[-1] == "... 480 more lines in the run records" and len(listing.splitlines()) == 21
    state = diff_text({"before": {"state": "absent"}, "after": {"state": "file"}, "before_header": "/p",
                       "after_header": "/p"})
    assert "-state: absent" in state and "+state: file" in state
    assert diff_text([{"before": "1\n", "after": "2\n"}, {"before": "x\n", "after": "y\n"}]).count("@@ -1 +1 @@") == 2


def test_mask_text_replaces_secret_values_and_secret_keys() -> None:
    text = f"a=1\nnuxeo.db.password={SECRET}\nnuxeo.jwt.secret=handedited\nmy.key=plain\nother=has {SECRET} in\n"
    masked = mask_text(text, [SECRET], ["my.key"])
    assert SECRET not in masked and "handedited" not in masked and "plain" not in masked
    assert f"nuxeo.db.password={MASK}\n" in masked and f"my.key={MASK}\n" in masked
    assert f"other=has {MASK} in" in masked and "a=1\n" in masked


def test_collector_reads_changed_files_settings_services_and_no_log_tasks() -> None:
    c = Collector()
    c(event("runner_on_ok", task="Unchanged", changed=False))
    c(event("runner_on_ok", "db1", "Write settings", "postgresql", changed=True,
            diff={"before": "max_connections = 100\n", "after": "max_connections = 200\n",
                  "before_header": "/etc/pg.conf", "after_header": "/etc/pg.conf"}))
    c(event("runner_on_ok", "lb1", "Start haproxy", "haproxy", action="ansible.builtin.systemd_service",
            changed=True, name="haproxy", state="started"))
    # a no_log result reaches the callback censored, `changed` included: the callback's line still says it
    c(event("runner_on_ok", "front1", "Write nuxeo.conf", "nuxeo", stdout="changed: [front1]",
            censored="hidden"))
    c(event("runner_on_ok", "front2", "Write nuxeo.conf", "nuxeo", stdout="ok: [front2]", censored="hidden"))
    by = {(f.host, f.kind): f for f in c.findings}
    assert set(by) == {("db1", "file"), ("lb1", "service"), ("front1", "hidden")}
    assert by[("db1", "file")].path == "/etc/pg.conf" and "+max_connections = 200" in by[("db1", "file")].diff
    assert by[("lb1", "service")].detail == "haproxy should be running, is stopped"
    # the masked diff shown after the no_log task replaces its bare "differs"
    c(event("runner_on_ok", "front1", "Show the nuxeo.conf change (secrets masked)", "nuxeo", changed=True,
            nx_diff_of="Write nuxeo.conf", nx_path="/etc/nuxeo/nuxeo.conf",
            diff={"before": "k=1\n", "after": "k=2\n", "before_header": "/etc/nuxeo/nuxeo.conf",
                  "after_header": "/etc/nuxeo/nuxeo.conf"}))
    front1 = [f for f in c.findings if f.host == "front1"]
    assert len(front1) == 1 and front1[0].kind == "file" and front1[0].path == "/etc/nuxeo/nuxeo.conf"
    assert "+k=2" in front1[0].diff


def test_collector_tells_which_roles_would_install_and_what_their_preview_leaves_out() -> None:
    """Check mode on a host a role has not installed (an adopted cluster): the role's message is a finding."""
    c = Collector()
    msg = ("postgresql: would install on db1 (install stamp missing or different). This preview installs nothing: the\n"
           "tasks after the install see the host as it is; left out until the first deploy: the Nuxeo role")
    c(event("runner_on_ok", "db1", c.pending_task, "postgresql", action="ansible.builtin.debug", msg=msg))
    c(event("runner_on_skipped", "db2", c.pending_task, "postgresql", action="ansible.builtin.debug"))
    assert [(f.host, f.kind) for f in c.findings] == [("db1", "install")]
    assert c.findings[0].line().startswith("install pending: postgresql: would install on db1 (install stamp")
    assert "\n" not in c.findings[0].detail and drift.exit_code(c.findings, []) == drift.DRIFT


def test_collector_names_the_file_a_loop_item_changed() -> None:
    """One task writing several files (a loop): the changed item's file is named, with its diff only."""
    c = Collector()
    c(event("runner_on_ok", "h1", "Raise the open files limit", "common", action="ansible.builtin.copy",
            changed=True, results=[
                {"changed": False, "dest": "/etc/security/limits.d/90-nxprovision.conf", "item": {}},
                {"changed": True, "dest": "/etc/systemd/system.conf.d/90-nxprovision.conf", "item": {},
                 "diff": {"before": "DefaultLimitNOFILE=1\n", "after": "DefaultLimitNOFILE=65535\n",
                          "before_header": "/etc/systemd/system.conf.d/90-nxprovision.conf",
                          "after_header": "/etc/systemd/system.conf.d/90-nxprovision.conf"}}]))
    c(event("runner_on_ok", "h2", "Raise the open files limit", "common", action="ansible.builtin.copy",
            changed=False, results=[{"changed": False, "dest": "/etc/x", "item": {}}]))
    assert [(f.host, f.kind, f.path) for f in c.findings] == [
        ("h1", "file", "/etc/systemd/system.conf.d/90-nxprovision.conf")]
    assert "+DefaultLimitNOFILE=65535" in c.findings[0].diff and "limits.d" not in c.findings[0].diff


def test_collector_skips_handlers_and_keeps_failures_and_readings() -> None:
    c = Collector()
    c({"event": "playbook_on_handler_task_start", "event_data": {"task": "Restart nuxeo", "task_uuid": "u-R"}})
    c(event("runner_on_ok", task="R", changed=True) | {"event_data": {"host": "h1", "task": "Restart nuxeo",
                                                                      "task_uuid": "u-R", "res": {"changed": True}}})
    c(event("runner_on_failed", "h2", "Wait for the port", msg="timeout"))
    c(event("runner_on_unreachable", "h3", "Gather", msg="no route"))
    c(event("runner_on_ok", "front1", c.reading_task, version="2023.34", keys={"a": "1"}, exists=True))
    assert [(f.host, f.kind) for f in c.findings] == [("h2", "failed"), ("h3", "unreachable")]
    assert c.readings["front1"] == {"version": "2023.34", "keys": {"a": "1"}, "exists": True}


# -- between nodes -------------------------------------------------------------------------------------


def test_compare_nodes_reports_only_what_the_model_does_not_explain() -> None:
    readings = {
        "front1": {"exists": True, "version": "2023.34", "keys": {"id": "1", "url": "u", "x": "a", "pw": MASK}},
        "front2": {"exists": True, "version": "2023.35", "keys": {"id": "2", "url": "u", "x": "b", "pw": MASK}},
        "worker1": {"exists": True, "version": "2023.34", "keys": {"id": "3", "url": "u", "x": "a", "pw": MASK,
                                                                   "extra": "y"}},
    }
    model = {h: {"id": str(i), "url": "u", "x": "a", "pw": MASK} for i, h in enumerate(readings, 1)}
    diffs = {d.what: d for d in compare_nodes(readings, model)}
    assert set(diffs) == {"Nuxeo version", "nuxeo.conf x", "nuxeo.conf extra"}
    assert diffs["nuxeo.conf x"].values == {"front1": "a", "front2": "b", "worker1": "a"}
    assert diffs["nuxeo.conf extra"].values["front1"] == "(absent)"
    same = {h: {"exists": True, "version": "2023.34", "keys": dict(model[h])} for h in readings}
    assert compare_nodes(same, model) == []


def test_collector_names_packages_that_differ_from_the_version_lock() -> None:
    """nx_apt_lock leaves a package installed at another version alone and returns it: drift names it, beside the
    pins file it would rewrite."""
    c, PINS = Collector(), "/etc/apt/preferences.d/nxprovision-lock"
    c(event("runner_on_ok", "lb1", "Hold packages to the version lock", "common", action="nx_apt_lock",
            changed=False, nx_lock_differ={"haproxy": ["2.6.13-1", "2.6.12-1"]}))
    c(event("runner_on_ok", "lb2", "Hold packages to the version lock", "common", action="nx_apt_lock",
            changed=False, nx_lock_differ={}))
    c(event("runner_on_ok", "lb3", "Hold packages to the version lock", "common", action="nx_apt_lock",
            changed=True, nx_lock_differ={},
            diff={"before": "", "after": "Package: haproxy\n", "before_header": PINS, "after_header": PINS}))
    assert [(f.host, f.kind, f.line()) for f in c.findings if f.kind == "package"] == [
        ("lb1", "package", "package: haproxy 2.6.13-1 is installed, the version lock holds 2.6.12-1  "
                           "(task 'common : Hold packages to the version lock')")]
    assert [(f.host, f.kind, f.path) for f in c.findings if f.kind != "package"] == [
        ("lb3", "file", PINS)]
    assert drift.exit_code(c.findings[:1], []) == drift.DRIFT


def test_exit_codes_and_report() -> None:
    assert drift.exit_code([], []) == drift.CLEAN == 0
    f = Finding("db1", "file", "postgresql : Write", "/etc/pg.conf", "--- before: /etc/pg.conf\n+x")
    n = NodeDifference("nuxeo", "nuxeo.conf x", {"front1": "a", "front2": "b"})
    assert drift.exit_code([f], []) == drift.exit_code([], [n]) == drift.DRIFT == 1
    lines = drift.report_lines([f], [n])
    assert lines[0] == "db1:" and "file /etc/pg.conf" in lines[1] and lines[2] == "    --- before: /etc/pg.conf"
    assert lines[-1] == "  nuxeo: nuxeo.conf x differs: front1=a, front2=b"
    assert EXIT_INVALID == 2


def test_expected_conf_masks_the_secret_values(samples_dir: Path | None = None) -> None:
    from nxprovision.inventory import load_inventory
    from nxprovision.model.cluster import build_cluster

    inv = ROOT / "inventories" / "compact"
    if not inv.exists():
        pytest.skip("no compact sample inventory")
    cluster = build_cluster(load_inventory(inv, None))
    conf = expected_conf(cluster)
    assert set(conf) == {n.host for n in cluster.nuxeo_nodes}
    node = cluster.nuxeo_nodes[0]
    for item in node.conf:
        if item.secret:
            assert conf[node.host][item.key] == MASK


def test_drift_exits_2_on_an_invalid_inventory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nxprovision.cli import main

    bad = tmp_path / "inv"
    bad.mkdir()
    (bad / "hosts.yml").write_text("all:\n  hosts:\n    x:\n")
    assert main(["drift", "-i", str(bad), "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["clean"] is False


# -- through Ansible: check mode with diff, nothing written ------------------------------------------------


@pytest.fixture
def diff_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    (home / "playbooks").mkdir(parents=True)
    (home / "ansible.cfg").write_text(f"[defaults]\nretry_files_enabled = False\naction_plugins = "
                                      f"{ROOT / 'plugins' / 'action'}\n")
    (tmp_path / "t.j2").write_text("a=1\nnuxeo.db.password={{ my_secret }}\nb=3\n")
    (tmp_path / "plain.j2").write_text("max_connections = 200\n")
    (home / "playbooks" / "diff.yml").write_text(f"""
- name: Probe
  hosts: all
  gather_facts: false
  tasks:
    - name: Write plain
      ansible.builtin.template: {{src: {tmp_path}/plain.j2, dest: {tmp_path}/plain.conf}}
    - name: Write secret
      ansible.builtin.template: {{src: {tmp_path}/t.j2, dest: {tmp_path}/secret.conf}}
      register: __w
      no_log: true
    - name: Show the secret change
      nx_masked_diff:
        result: "{{{{ __w }}}}"
        path: {tmp_path}/secret.conf
        of: Write secret
        content: "{{{{ lookup('ansible.builtin.template', '{tmp_path}/t.j2') }}}}"
        secrets: ["{{{{ my_secret }}}}"]
      when: __w is changed
""")
    (tmp_path / "plain.conf").write_text("max_connections = 100\n")
    (tmp_path / "secret.conf").write_text("a=1\nnuxeo.db.password=an-older-pass\nb=2\n")
    (tmp_path / "inv.yml").write_text(
        "all:\n  vars:\n    ansible_connection: local\n"
        "    ansible_python_interpreter: '{{ ansible_playbook_python }}'\n"
        f"    my_secret: {SECRET}\n  hosts:\n    a:\n")
    monkeypatch.setenv("NXPROVISION_HOME", str(home))
    monkeypatch.setenv("NXPROVISION_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path


def _sums(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.glob("*.conf"))}


@pytest.mark.parametrize("mode", ["plain", "json", "rich"])
def test_check_diff_shows_masked_diffs_in_every_progress_mode(diff_home: Path, mode: str) -> None:
    before = _sums(diff_home)
    out = io.StringIO()
    result = run_playbook("diff.yml", diff_home / "inv.yml", verb="test", vault_password_file=None, secrets=[SECRET],
                          check=True, diff=True, out=out, progress=mode)
    text = out.getvalue()
    assert result.rc == 0, text
    assert _sums(diff_home) == before  # check mode: nothing written
    assert SECRET not in text and "an-older-pass" not in text
    if mode == "json":
        events = [json.loads(ln) for ln in text.splitlines() if ln.startswith("{")]
        diffs = {e["task"]: e["diff"] for e in events if e.get("diff")}
        assert "+max_connections = 200" in diffs["Write plain"]
        assert "-b=2" in diffs["Show the secret change"] and f"nuxeo.db.password={MASK}" in diffs[
            "Show the secret change"]
        assert any(e.get("task") == "Write secret" and e.get("changed") for e in events)
    else:
        assert "+max_connections = 200" in text and "-max_connections = 100" in text
        assert "-b=2" in text and "+b=3" in text and f"nuxeo.db.password={MASK}" in text
        if mode == "plain":
            # the no_log task is named as changed (its censored result carries no `changed`)
            assert "changed  a  Write secret" in text


def test_collector_through_a_check_run(diff_home: Path) -> None:
    c = Collector()
    before = _sums(diff_home)
    run_playbook("diff.yml", diff_home / "inv.yml", verb="test", vault_password_file=None, secrets=[SECRET],
                 check=True, diff=True, display=c, out=io.StringIO())
    assert _sums(diff_home) == before
    by = {f.path: f for f in c.findings}
    assert set(by) == {str(diff_home / "plain.conf"), str(diff_home / "secret.conf")}, c.findings
    assert all(f.kind == "file" for f in c.findings)
    assert SECRET not in by[str(diff_home / "secret.conf")].diff and "+b=3" in by[str(diff_home / "secret.conf")].diff
