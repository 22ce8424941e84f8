"""`nxprovision prechecks`: what each host needs (from the model) and how its facts are judged."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from nxprovision import prechecks
from nxprovision.inventory import load_inventory
from nxprovision.model.cluster import build_cluster
from nxprovision.prechecks import ERROR, OK, WARN, HostPlan

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compact():
    return build_cluster(load_inventory(ROOT / "inventories" / "compact"))


def _facts(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "uid": 0, "time": 1000.0, "os": {"id": "debian", "version_id": "12", "pretty_name": "Debian 12"},
        "cpus": 4, "memory_mb": 16384, "disks": {}, "listeners": {}, "resolved": {}, "urls": {},
    }
    base.update(over)
    return base


def _status(rows: list[prechecks.Row], check: str) -> list[str]:
    return [r.status for r in rows if r.check == check]


# -- what a host needs ---------------------------------------------------------------------------------------


def test_ports_come_from_the_model_the_roles_use(compact) -> None:
    front = prechecks.host_plan(compact, "front1")
    assert {p["port"] for p in front.ports} == {8080, 8005}
    assert front.ports[0]["units"] == ["nuxeo.service"] and front.ports[0]["users"] == ["nuxeo"]
    lb = prechecks.host_plan(compact, "lb1")
    assert {p["port"] for p in lb.ports} == {443, 80, 8404}
    db = prechecks.host_plan(compact, "db1")
    assert [p["port"] for p in db.ports] == [5432]


def test_minimums_combine_per_host_and_are_overridable(compact, make_inv) -> None:
    db = prechecks.host_plan(compact, "db1")
    assert (db.cpus, db.memory_mb) == (2, 2048)
    assert next(iter(db.paths.values()))["disk_mb"] == 20480
    inv = make_inv("single")
    single = build_cluster(load_inventory(inv))
    host = next(iter(single.hosts))
    plan = prechecks.host_plan(single, host)
    # cores are shared (the largest need), memory adds up
    assert plan.cpus == 2
    assert plan.memory_mb == sum(prechecks.DEFAULT_MINIMUMS[g]["memory_mb"] for g in plan.components)
    inv = make_inv("single", set={"nxprovision_prechecks_minimums": {"nuxeo": {"memory_mb": 1}, "opensearch":
                                                                        {"cpus": 8}}})
    over = prechecks.host_plan(build_cluster(load_inventory(inv)), host)
    assert over.cpus == 8
    assert over.memory_mb == plan.memory_mb - prechecks.DEFAULT_MINIMUMS["nuxeo"]["memory_mb"] + 1


def test_download_urls_only_on_hosts_that_download(compact) -> None:
    assert any("nuxeo-server" in u for u in prechecks.host_plan(compact, "front1").urls)
    assert prechecks.host_plan(compact, "db1").urls == {}
    assert prechecks.module_args(prechecks.host_plan(compact, "db1"))["names"]  # sample hosts are names


# -- judging the facts ---------------------------------------------------------------------------------------


def _plan(**over: Any) -> HostPlan:
    base: dict[str, Any] = {
        "host": "db1", "components": ["postgresql"], "cpus": 2, "memory_mb": 2048,
        "paths": {"/var/lib/postgresql/15/main": {"groups": ["postgresql"], "disk_mb": 20480}},
        "ports": [{"port": 5432, "group": "postgresql", "label": "PostgreSQL", "key": "postgresql_port",
                   "units": ["postgresql@*.service", "patroni.service"], "users": ["postgres"]}],
        "peers": {"db2": "10.0.0.2"}, "urls": {},
    }
    base.update(over)
    return HostPlan(**base)


def test_a_healthy_host_passes() -> None:
    facts = _facts(disks={"/var/lib/postgresql/15/main": {"mount": "/", "free_mb": 50000}})
    rows = prechecks.evaluate(_plan(), facts, 1000.2, 0.05)
    assert prechecks.exit_code(rows) == 0, [r for r in rows if r.status != OK]
    checks = {r.check for r in rows}
    assert {"ssh", "become", "os", "cpu", "memory", "disk /", "port 5432", "clock", "resolve"} <= checks


def test_minimums_are_errors_with_the_fix() -> None:
    facts = _facts(cpus=1, memory_mb=1024, disks={"/var/lib/postgresql/15/main": {"mount": "/srv", "free_mb": 100}})
    rows = prechecks.evaluate(_plan(), facts, 1000.0, 0)
    bad = {r.check: r for r in rows if r.status == ERROR}
    assert set(bad) == {"cpu", "memory", "disk /srv"}
    assert "nxprovision_prechecks_minimums" in bad["memory"].fix
    assert "20.0 GB" in bad["disk /srv"].detail and "100 MB" in bad["disk /srv"].detail


def test_paths_on_one_filesystem_share_its_space() -> None:
    plan = _plan(paths={"/a": {"groups": ["nuxeo"], "disk_mb": 600}, "/b": {"groups": ["kafka"], "disk_mb": 600}})
    facts = _facts(disks={"/a": {"mount": "/", "free_mb": 1000}, "/b": {"mount": "/", "free_mb": 1000}})
    rows = [r for r in prechecks.resource_rows(plan, facts) if r.check.startswith("disk")]
    assert [(r.check, r.status) for r in rows] == [("disk /", ERROR)]


@pytest.mark.parametrize(("listener", "status"), [
    ({"pid": 7, "process": "postgres", "user": "postgres", "unit": "postgresql@15-main.service"}, OK),
    ({"pid": 7, "process": "postgres", "user": "postgres", "unit": "patroni.service"}, OK),
    ({"pid": 7, "process": "postgres", "user": "postgres", "unit": ""}, OK),  # the service user is enough
    ({"pid": 9, "process": "python3", "user": "root", "unit": "session-3.scope"}, ERROR),
    ({"pid": None, "process": "", "user": "", "unit": ""}, ERROR),
])
def test_port_ownership(listener: dict[str, Any], status: str) -> None:
    rows = prechecks.port_rows(_plan(), {"5432": [listener]})
    assert [r.status for r in rows] == [status]
    if status == ERROR:
        assert "port 5432" in rows[0].detail and (listener["process"] or "?") in rows[0].detail
        assert "postgresql_port" in rows[0].fix


def test_a_foreign_listener_beside_ours_is_still_an_error() -> None:
    ours = {"pid": 7, "process": "postgres", "user": "postgres", "unit": "postgresql@15-main.service"}
    theirs = {"pid": 9, "process": "nc", "user": "bob", "unit": ""}
    rows = prechecks.port_rows(_plan(), {"5432": [ours, theirs]})
    assert rows[0].status == ERROR and "nc (pid 9, user bob)" in rows[0].detail


def test_free_ports_pass() -> None:
    assert _status(prechecks.port_rows(_plan(), {}), "port 5432") == [OK]


@pytest.mark.parametrize(("host_time", "uncertainty", "status"), [
    (1000.3, 0.1, OK), (1002.0, 0.1, WARN), (995.0, 0.1, WARN), (1002.0, 1.5, OK),
])
def test_clock_offset(host_time: float, uncertainty: float, status: str) -> None:
    row = prechecks.clock_row(_plan(), host_time, 1000.0, uncertainty)
    assert row.status == status
    if status == WARN:
        assert "NTP" in row.fix


def test_clock_threshold_is_the_plans() -> None:
    assert prechecks.clock_row(_plan(clock_max_offset_s=10.0), 1005.0, 1000.0, 0).status == OK


def test_os_release() -> None:
    assert prechecks.os_row("h", {"id": "debian", "version_id": "13"}).status == OK
    bad = prechecks.os_row("h", {"id": "ubuntu", "version_id": "24.04", "pretty_name": "Ubuntu 24.04"})
    assert bad.status == ERROR and "Debian 12" in bad.detail


def test_become_and_unreachable_rows() -> None:
    rows = prechecks.evaluate(_plan(), _facts(uid=1000), 1000.0, 0)
    assert _status(rows, "become") == [ERROR]
    down = prechecks.failed_host_rows("db1", "Failed to connect to the host via ssh: No route\nmore", True)
    assert [(r.check, r.status) for r in down] == [("ssh", ERROR)] and "No route" in down[0].detail
    sudo = prechecks.failed_host_rows("db1", "sudo: a password is required", False)
    assert [(r.check, r.status) for r in sudo] == [("ssh", OK), ("become", ERROR)]


def test_resolution() -> None:
    by_name = _plan(peers={"db2": "db2.corp", "s1": "10.0.0.5"})
    ok = prechecks.resolve_rows(by_name, {"db2.corp": {"addresses": ["10.0.0.2"]}})
    assert [r.status for r in ok] == [OK]
    bad = prechecks.resolve_rows(by_name, {"db2.corp": {"addresses": [], "error": "Name or service not known"}})
    assert bad[0].status == ERROR and "db2.corp (db2)" in bad[0].detail
    assert "skipped" in prechecks.resolve_rows(_plan(), {})[0].detail


def test_mirror() -> None:
    plan = _plan(urls={"http://m/x.zip": "Nuxeo distribution", "http://m/y.tgz": "Kafka archive"})
    rows = prechecks.url_rows(plan, {"http://m/x.zip": {"status": 200}, "http://m/y.tgz": {"status": 404}})
    assert [r.status for r in rows] == [OK, ERROR]
    assert "HTTP 404" in rows[1].detail


def test_fast_subset() -> None:
    rows = prechecks.fast_rows(_plan(), _facts(cpus=1))
    assert {r.check for r in rows} == {"ssh", "become", "os", "port 5432"}
    marks = [prechecks.Row("(inventory)", "placeholder", ERROR, "nx_public_url"),
             prechecks.Row("db1", "placeholder", ERROR, "address"), prechecks.Row("db2", "placeholder", ERROR, "x"),
             prechecks.Row("db1", "placeholder", WARN, "no ansible_host")]
    rows = prechecks.fast_rows(_plan(), _facts(), marks)
    assert [(r.host, r.status) for r in rows if r.check == "placeholder"] == [("(inventory)", ERROR), ("db1", ERROR)]


# -- placeholders, on the controller ----------------------------------------------------------------------------


def test_placeholders_left_by_init(make_inv) -> None:
    inv = make_inv("compact", hostvars={"lb1": {"ansible_host": "lb1.example.com"},
                                        "db1": {"ansible_host": "10.1.1.1"}})
    c = build_cluster(load_inventory(inv))
    rows = prechecks.placeholder_rows(c, resolve=lambda name: name == "front1")
    subjects = {(r.host, r.detail.split(":")[0]) for r in rows}
    assert ("(inventory)", "nx_public_url") in subjects
    assert ("(inventory)", "nuxeo_download_base_url") in subjects
    hosts = {r.host for r in rows}
    assert "lb1" in hosts  # example.com address
    assert "db1" not in hosts  # a real address
    assert "front1" not in hosts  # no address, but the name resolves
    # no address and the name does not resolve here: SSH may still reach it (ssh config, jump host)
    assert [r.status for r in rows if r.host == "front2"] == [WARN]
    assert all(r.status == ERROR for r in rows if r.host in ("(inventory)", "lb1"))
    assert all(r.fix for r in rows)
    assert not any("secret" in r.detail for r in rows)


def test_a_real_inventory_has_no_placeholders(make_inv) -> None:
    hv = {h: {"ansible_host": f"10.0.0.{i}"} for i, h in enumerate(
        ["lb1", "front1", "front2", "worker1", "db1", "db2", "search1", "search2", "search3", "kafka1", "s3-1"])}
    inv = make_inv("compact", hostvars=hv, set={"nx_public_url": "https://nuxeo.corp.lan/nuxeo",
                                                "nuxeo_download_base_url": "http://files.corp.lan/nuxeo"})
    assert prechecks.placeholder_rows(build_cluster(load_inventory(inv)), resolve=lambda _n: False) == []


# -- the module, on this machine ---------------------------------------------------------------------------------


def _module():
    spec = importlib.util.spec_from_file_location("nx_host_facts", ROOT / "plugins" / "modules" / "nx_host_facts.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["nx_host_facts"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_module_reads_a_listener_and_its_process(tmp_path: Path) -> None:
    import os
    import socket

    m = _module()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        port = s.getsockname()[1]
        found = m.listeners({port})
        assert found[str(port)][0]["pid"] == os.getpid()
    finally:
        s.close()
    d = m.disk(str(tmp_path / "not" / "there"))
    assert d["free_mb"] > 0 and d["exists"] is False
    assert m.os_release().get("id")


# -- the verb: rows from the run's events, one table, the exit code ------------------------------------------------


def test_verb_folds_events_into_one_table(make_inv, run_cli, monkeypatch, tmp_path: Path) -> None:
    import json
    from types import SimpleNamespace

    from nxprovision import commands

    names = ["lb1", "front1", "front2", "worker1", "db1", "db2", "search1", "search2", "search3", "kafka1", "s3-1"]
    hv = {h: {"ansible_host": f"10.0.0.{i + 1}", "ansible_connection": "local"} for i, h in enumerate(names)}
    inv = make_inv("compact", hostvars=hv, set={"nx_public_url": "https://nuxeo.corp.lan/nuxeo",
                                                "nuxeo_download_base_url": "http://files.corp.lan/nuxeo"})
    seen: dict[str, Any] = {}

    def fake_run(playbook: str, inventory: Path, **kw: Any) -> Any:
        seen.update(kw, playbook=playbook)
        show = kw["display"]
        for h in names:
            if h == "kafka1":
                show({"event": "runner_on_unreachable", "event_data": {"host": h, "res": {"msg": "No route to host"}}})
                continue
            rows = [{"host": h, "check": "ssh", "status": "ok", "detail": "connected", "fix": ""}]
            if h == "db1":
                rows.append({"host": h, "check": "port 5432", "status": "error", "detail": "held by nc (pid 9)",
                             "fix": "stop it"})
            kind = "runner_on_failed" if h == "db1" else "runner_on_ok"
            show({"event": kind, "event_data": {"host": h, "task": "Read and judge the host", "res": {"rows": rows}}})
        return SimpleNamespace(run_dir=tmp_path / "run", rc=2)

    monkeypatch.setattr(commands, "run_playbook", fake_run)
    code, out, _err = run_cli("prechecks", "-i", str(inv))
    assert code == 1
    assert seen["playbook"] == "prechecks.yml" and seen["check"] is True
    assert "db1" in out and "port 5432" in out and "held by nc" in out
    assert "kafka1" in out and "unreachable: No route to host" in out
    assert "front1  ssh" not in out  # passing rows hidden without --all
    code, out, _err = run_cli("prechecks", "-i", str(inv), "--json")
    data = json.loads(out)
    assert code == 1 and data["ok"] is False
    assert {r["host"] for r in data["rows"]} == set(names)
