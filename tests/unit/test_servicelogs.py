"""The failure report's service log tails: role -> unit/log mapping, parsing, masking, a real fetch (local)."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
import yaml

from nxprovision import servicelogs
from nxprovision.commands import report
from nxprovision.runevents import Masker
from nxprovision.runner import run_playbook

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-Value-123456"


def test_every_role_with_a_service_is_mapped_to_its_unit() -> None:
    for role_dir in sorted((ROOT / "roles").iterdir()):
        handlers = role_dir / "handlers" / "main.yml"
        if role_dir.name == "common" or not handlers.exists():
            continue
        # handlers that act on a unit (the nuxeo role's restart goes through a drained rolling include)
        names = {str(h["ansible.builtin.systemd_service"]["name"])
                 for h in yaml.safe_load(handlers.read_text()) or [] if "ansible.builtin.systemd_service" in h}
        if not names:  # no service of its own (tls)
            continue
        spec = servicelogs.SERVICE_LOGS[role_dir.name]
        for unit in names:
            if "{{" in unit:  # postgresql@<version>-<cluster>: the mapping holds a glob
                assert any(u.endswith("*") for u in spec.units), role_dir.name
            else:
                assert unit in spec.units, (role_dir.name, unit)


@pytest.mark.parametrize(("role", "task", "play", "expected"), [
    ("nuxeo", "Write nuxeo.conf", "", "nuxeo"),
    ("postgresql", "Start PostgreSQL", "", "postgresql"),
    ("", "Restart Nuxeo", "Rolling restart of Nuxeo nodes", "nuxeo"),
    ("", "Gate on the node's health", "Rolling restart of Nuxeo nodes", "nuxeo"),
    ("", "Wait for zero under-replicated partitions", "Rolling restart of Kafka brokers", "kafka"),
    ("", "Set the new password of the Nuxeo role", "Database password: set it on the PostgreSQL primary", "nuxeo"),
    ("common", "Install the baseline packages", "OS baseline on every host", None),
    ("", "Breaks on b", "Probe", None),
])
def test_component_for_a_failure(role: str, task: str, play: str, expected: str | None) -> None:
    assert servicelogs.component_for(role, task, play) == expected


def test_log_command_runs_in_a_posix_shell_and_marks_each_source(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {i}\n" for i in range(50)))
    spec = servicelogs.ServiceLog(("nxprovision-no-such-unit",), (str(tmp_path / "*.log"), "/no/such/file"))
    servicelogs.SERVICE_LOGS["probe"] = spec
    try:
        cmd = servicelogs.log_command("probe", lines=5)
    finally:
        del servicelogs.SERVICE_LOGS["probe"]
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    sections = dict(servicelogs.parse_sections(out.stdout))
    assert sections[str(log)] == [f"line {i}" for i in range(45, 50)]
    assert "/no/such/file" not in sections


def test_masking_and_report_lines() -> None:
    output = (f"{servicelogs.MARK} journalctl -u nuxeo\n-- No entries --\n"
              f"{servicelogs.MARK} /var/log/nuxeo/server.log\nERROR bad password {SECRET} for nuxeo\n")
    tail = servicelogs.from_output("front1", "nuxeo", output, Masker([SECRET]))
    lines = tail.lines()
    assert lines[0] == "nxprovision: last lines of nuxeo's logs on front1 (/var/log/nuxeo/server.log):"
    assert "  | ERROR bad password ******** for nuxeo" in lines
    assert SECRET not in "\n".join(lines)
    gone = servicelogs.LogTail("front2", "nuxeo", error="unreachable: no answer over SSH")
    assert gone.lines() == ["nxprovision: no nuxeo log from front2: unreachable: no answer over SSH"]


def test_a_failed_run_reports_the_service_log_fetched_from_the_host(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A real run (local connection): the task fails, the report carries the log tail read by an ad-hoc call."""
    home = tmp_path / "home"
    (home / "playbooks").mkdir(parents=True)
    (home / "ansible.cfg").write_text("[defaults]\nretry_files_enabled = False\n")
    (home / "playbooks" / "fail.yml").write_text(
        "- name: Rolling restart of Nuxeo nodes\n  hosts: all\n  gather_facts: false\n  tasks:\n"
        '    - name: Restart Nuxeo\n      ansible.builtin.fail:\n        msg: "nuxeo did not start"\n'
        "      when: inventory_hostname == 'b'\n"
    )
    inv = tmp_path / "inv.yml"
    inv.write_text(
        "all:\n  vars:\n    ansible_connection: local\n"
        "    ansible_python_interpreter: '{{ ansible_playbook_python }}'\n  hosts:\n    a:\n    b:\n"
    )
    log = tmp_path / "server.log"
    log.write_text(f"INFO starting\nERROR cannot connect as nuxeo with {SECRET}\n")
    monkeypatch.setenv("NXPROVISION_HOME", str(home))
    monkeypatch.setenv("NXPROVISION_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setitem(servicelogs.SERVICE_LOGS, "nuxeo",
                        servicelogs.ServiceLog(("nxprovision-no-such-unit",), (str(log),)))
    out = io.StringIO()
    result = run_playbook("fail.yml", inv, verb="test", vault_password_file=None, secrets=[SECRET], out=out)
    code = report(result, out)
    text = out.getvalue()
    assert code == 1
    assert "b failed at task 'Restart Nuxeo': nuxeo did not start" in text
    assert "last lines of nuxeo's logs on b (" in text and str(log) in text
    assert "  | ERROR cannot connect as nuxeo with ********" in text
    assert text.index("failed at task") < text.index("last lines of") < text.index("run failed")
    assert SECRET not in text
    recorded = result.run_dir / "failure-logs" / "b.log"
    assert "ERROR cannot connect" in recorded.read_text()
    for f in result.run_dir.rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f


def test_an_unreachable_host_degrades_to_one_line(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  hosts:\n    gone:\n      ansible_host: 192.0.2.1\n      ansible_port: 9\n")

    class F:
        host, role, task, play, unreachable = "gone", "nuxeo", "Start Nuxeo", "", False

    tails = servicelogs.fetch([F()], inv, [], {"ANSIBLE_HOST_KEY_CHECKING": "False"}, Masker([]))
    assert len(tails) == 1 and tails[0].error, tails
    assert tails[0].lines()[0].startswith("nxprovision: no nuxeo log from gone: ")


def test_a_service_the_failed_nodes_log_names_gets_its_log_fetched_too(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """front1's Nuxeo waited for kafka1:9092 (its own log says so): the report carries kafka1's Kafka log as well,
    read by a real ad-hoc call, and no log of a host nobody named."""
    inv = tmp_path / "inv.yml"
    inv.write_text(
        "all:\n  vars:\n    ansible_connection: local\n"
        "    ansible_python_interpreter: '{{ ansible_playbook_python }}'\n"
        "  hosts:\n    front1:\n    kafka1:\n    db1:\n"
    )
    nuxeo_log, kafka_log = tmp_path / "server.log", tmp_path / "kafka.log"
    nuxeo_log.write_text("WARN Connection to node -1 (kafka1/10.0.0.20:9092) could not be established\n"
                         "ERROR Timeout expired while waiting for kafka1:9092\n")
    kafka_log.write_text("ERROR Exiting Kafka due to fatal exception during startup\n")
    monkeypatch.setitem(servicelogs.SERVICE_LOGS, "nuxeo",
                        servicelogs.ServiceLog(("nxprovision-no-such-unit",), (str(nuxeo_log),)))
    monkeypatch.setitem(servicelogs.SERVICE_LOGS, "kafka",
                        servicelogs.ServiceLog(("nxprovision-no-such-unit",), (str(kafka_log),)))

    class F:
        host, role, task, play, unreachable = "front1", "nuxeo", "Wait for Nuxeo to be running", "", False
        message = "Status code was -1 and not [200]"

    endpoints = {"kafka1:9092": ("kafka1", "kafka"), "10.0.0.20:9092": ("kafka1", "kafka"),
                 "db1:5432": ("db1", "postgresql")}
    tails = servicelogs.fetch([F()], inv, [], {"ANSIBLE_HOST_KEY_CHECKING": "False"}, Masker([]),
                              endpoints=lambda: endpoints)
    assert [(t.host, t.component, t.named) for t in tails] == [("front1", "nuxeo", False), ("kafka1", "kafka", True)]
    lines = tails[1].lines()
    assert lines[0].startswith("nxprovision: last lines of kafka's logs on kafka1, named in the failure above ("), lines
    assert "  | ERROR Exiting Kafka due to fatal exception during startup" in lines


def test_endpoints_come_from_the_cluster_model(make_inv) -> None:
    from nxprovision.inventory import load_inventory
    from nxprovision.model.cluster import build_cluster

    inv = make_inv("compact")
    c = build_cluster(load_inventory(inv, None))
    known = servicelogs.cluster_endpoints(c)
    kafka = c.kafka_brokers[0]
    assert known.get(f"{kafka.host}:9092") == (kafka.host, "kafka"), sorted(known)
    assert known[f"{c.hosts[kafka.host].address}:9092"] == (kafka.host, "kafka")
    db = c.db_hosts[0]
    assert known[f"{db}:5432"] == (db, "postgresql")
    assert servicelogs.named_backends(
        [f"waiting for {db}:5432 and {kafka.host}:9092", f"again {db}:5432", "front1:8080 is not a backend here"],
        known, skip={"front1"}) == [(db, "postgresql"), (kafka.host, "kafka")]
