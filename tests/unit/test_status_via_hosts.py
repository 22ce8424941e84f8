"""`status --via-hosts`: the probes of `status` run by the cluster's own hosts (behind a bastion the controller
reaches only SSH). Which host probes what, the answers folded into the very rows the controller's probes make, the
passwords read on the hosts (never passed in, never shown), and the probe program that leaves nothing behind."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from nxprovision import status, status_remote
from nxprovision.cli import build_parser
from nxprovision.inventory import load_inventory
from nxprovision.model.cluster import Cluster, build_cluster
from nxprovision.rotation import masked_names

ROOT = Path(__file__).resolve().parents[2]


def _cluster(make_inv: Any, **kw: Any) -> tuple[Cluster, list[str]]:
    view = load_inventory(make_inv("compact", **kw))
    secrets = [str(v) for h in view.hostvars.values() for k, v in h.items() if k in masked_names()]
    return build_cluster(view), sorted(set(secrets))


def _plan(c: Cluster) -> tuple[list[status.Job], status.ViaPlan]:
    jobs = status._jobs(c, status.HostCA(ssl.PROTOCOL_TLS_CLIENT))
    return jobs, status.via_plan(c, jobs)


def test_each_component_is_probed_by_a_host_that_talks_to_it(make_inv: Any) -> None:
    c, secrets = _cluster(make_inv)
    jobs, plan = _plan(c)
    who = {(kind, host): src for (kind, host, _run), src in zip(jobs, plan.source, strict=True)}
    front = c.nuxeo_nodes[0].host
    assert who[("haproxy", "lb1")] == "lb1"  # its own stats page, over its own address
    assert {src for (kind, _h), src in who.items() if kind == "nuxeo"} == {"lb1"}  # the LB reaches each backend
    for kind in ("database", "search", "kafka", "s3"):
        assert {src for (k, _h), src in who.items() if k == kind} == {front}, kind
    # every probe the controller would make is in the plan, of the host that runs it
    urls = [p.get("url") for p in plan.probes["lb1"]]
    assert any(u and u.endswith("/stats;csv") for u in urls)
    assert sum(bool(u and u.endswith("/nuxeo/runningstatus")) for u in urls) == len(c.nuxeo_nodes)
    kinds = {(p["kind"], p.get("port")) for p in plan.probes[front]}
    assert ("tcp", int(c.derived["db"]["port"])) in kinds and ("pg_tls", int(c.derived["db"]["port"])) in kinds
    assert set(plan.probes) == {"lb1", front}
    # logins are named, never valued: the hosts read the passwords from the vault themselves
    assert "nx_secret_haproxy_stats_password" in plan.secret_names
    assert not any(s in json.dumps(plan.probes) for s in secrets)


def test_distributed_servers_are_probed_by_the_first_nuxeo_node(make_inv: Any) -> None:
    view = load_inventory(make_inv("distributed"))
    c = build_cluster(view)
    jobs, plan = _plan(c)
    first = c.nuxeo_nodes[0].host
    for (kind, host, _run), src in zip(jobs, plan.source, strict=True):
        want = {"haproxy": host, "nuxeo": c.lb_hosts[0]}.get(kind, first)
        assert src == want, (kind, host, src)
    assert set(plan.probes) == {*c.lb_hosts, first}
    # each host's probes are numbered once, whatever the number of jobs asking the same thing
    for probes in plan.probes.values():
        assert len({p["id"] for p in probes}) == len(probes)


def test_without_load_balancer_a_node_probes_itself_and_servers_on_nuxeo_hosts_answer_their_own() -> None:
    c = build_cluster(load_inventory(ROOT / "inventories" / "compact"))
    assert status.prober(c, "haproxy", "lb1") == "lb1"
    assert status.prober(c, "database", "front2") == "front2"  # a server on a Nuxeo host: that host
    c.lb_hosts = []
    assert status.prober(c, "nuxeo", "front2") == "front2"


class _Fake:
    """One network as both sides see it: the controller's primitives and the host program's answer the same."""

    def __init__(self, c: Cluster) -> None:
        self.c = c
        self.logins: list[tuple[str, str] | None] = []

    def http(self, url: str, auth: Any = None, timeout: float = 5.0, context: Any = None,
             headers: Any = None) -> tuple[int, bytes, dict]:
        self.logins.append(tuple(auth) if auth else None)
        if url.endswith("/stats;csv"):
            body = "# pxname,svname,status,weight\n" + "".join(
                f"nuxeo,{n.jvm_route},{'DOWN' if i else 'UP'},1\n" for i, n in enumerate(self.c.nuxeo_nodes)
                if n.role == "front")
            return 200, body.encode(), {}
        if url.endswith("/runningstatus"):
            return 200, b'{"runtimeStatus": "ok"}', {}
        if url.endswith("/json/cmis"):
            return 200, b'{"default": {"productVersion": "2023.40"}}', {}
        if url.endswith("/_cluster/health"):
            return 200, b'{"status": "yellow", "number_of_nodes": 3}', {}
        if ":9200/" in url:
            return 200, b'{"version": {"number": "2.19.1"}}', {}
        raise OSError(f"connection refused: {url}")

    def tcp(self, address: str, port: int) -> bool:
        return port != 9092  # Kafka down

    def tls(self, address: str, port: int, ctx: Any) -> str:
        return "TLSv1.3"

    def pg_tls(self, address: str, port: int, ctx: Any) -> str:
        raise ValueError("the server refused TLS (answered b'N')")


def test_the_hosts_answers_make_the_rows_the_controller_would(make_inv: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    c, secrets = _cluster(make_inv)
    fake = _Fake(c)
    for name, fn in (("_http", fake.http), ("_tcp", fake.tcp), ("_tls_handshake", fake.tls),
                     ("_pg_tls_handshake", fake.pg_tls)):
        monkeypatch.setattr(status, name, fn)
    monkeypatch.setattr(status, "tls_context", lambda c: status.HostCA(ssl.PROTOCOL_TLS_CLIENT))
    local = status.as_json(status.collect(c))
    local_logins = list(fake.logins)

    # the host program, with the same network under it and the vault's values it reads on the host
    for name, fn in (("http", fake.http), ("tcp", fake.tcp), ("tls_handshake", fake.tls),
                     ("pg_tls_handshake", fake.pg_tls)):
        monkeypatch.setattr(status_remote, name, fn)
    monkeypatch.setattr(status_remote.ssl, "create_default_context",
                        lambda cafile=None: ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    jobs, plan = _plan(c)
    vault = {n: c.settings.get(n) for n in plan.secret_names}
    fake.logins.clear()
    found: dict[tuple[str, str], Any] = {
        (src, "via"): {"rc": 0, "stderr": "", "stdout": json.dumps(
            {p["id"]: status_remote.answer(p, vault, "/etc/nxprovision/tls/ca.crt") for p in probes})}
        for src, probes in plan.probes.items()}
    via = status.as_json(status.via_rows(c, jobs, plan, found, secrets))
    assert via == local
    assert sorted(map(str, fake.logins)) == sorted(map(str, local_logins))  # the same logins, the same passwords
    by = {(r["host"], r["component"]): r for r in via}
    assert by[("lb1", "haproxy")]["detail"] == "1/2 Nuxeo servers UP"
    assert by[("kafka1", "kafka")]["health"] == "down"
    assert "refused TLS" in by[(c.db_hosts[0], "postgresql")]["detail"]
    assert by[(c.search_hosts[0], "opensearch")]["version"] == "2.19.1"


def test_a_host_that_did_not_answer_leaves_its_rows_down_with_the_reason(make_inv: Any) -> None:
    c, secrets = _cluster(make_inv)
    jobs, plan = _plan(c)
    front = c.nuxeo_nodes[0].host
    found = {("lb1", "via"): {"rc": 1, "stdout": "", "stderr": "Traceback ...\nSyntaxError: bad"}}
    rows = status.via_rows(c, jobs, plan, found, secrets)
    assert all(r.health == "unknown" and not r.healthy for r in rows)
    by = {(r.host, r.component.split()[0]): r for r in rows}
    assert "the probe failed on lb1: SyntaxError: bad" in by[("lb1", "haproxy")].detail
    assert f"{front} did not answer over SSH" in by[(c.db_hosts[0], "postgresql")].detail


def test_a_secret_a_host_sends_back_never_reaches_the_output(make_inv: Any, capsys: pytest.CaptureFixture[str]) -> None:
    c, secrets = _cluster(make_inv)
    password = str(c.settings["nx_secret_haproxy_stats_password"])
    assert password in secrets
    jobs, plan = _plan(c)
    answers = {p["id"]: {"error": f"proxy said: bad login admin:{password}", "type": "OSError"}
               for p in plan.probes["lb1"]}
    answers |= {p["id"]: {"code": 500, "body": f"<pre>{password}</pre>"}
                for p in plan.probes["lb1"] if p.get("url", "").endswith("/stats;csv")}
    rows = status.via_rows(c, jobs, plan, {("lb1", "via"): {"rc": 0, "stdout": json.dumps(answers)}}, secrets)
    text = json.dumps(status.as_json(rows))
    assert password not in text and "********" in text


def test_the_run_gets_secret_names_only_and_the_probe_task_logs_nothing(make_inv: Any) -> None:
    c, secrets = _cluster(make_inv)
    _jobs, plan = _plan(c)
    seen: dict[str, Any] = {}

    def fake_run(playbook: str, inventory: Path, **kw: Any) -> None:
        seen.update(kw, playbook=playbook)

    status._probe(c, Path("inv"), None, secrets, lambda e: None, fake_run, via=plan, quick=True)
    assert seen["playbook"] == "status_probe.yml" and seen["tags"] == "status_via"
    extra = seen["extravars"]
    assert extra["status_via_plan"] == plan.probes and Path(extra["status_via_script"]).name == "status_remote.py"
    assert not any(s in json.dumps(extra) for s in secrets)
    plays = yaml.safe_load((ROOT / "playbooks" / "status_probe.yml").read_text())
    via = next(p for p in plays if "status_via" in (p.get("tags") or []))
    probe, report = via["tasks"]
    assert probe["no_log"] is True and probe["check_mode"] is False and probe["changed_when"] is False
    assert via["become"] is False and "nx_status_via" in report["ansible.builtin.debug"]["msg"]
    assert status.PROBE_TASKS[report["name"]] == "via"
    # without --via-hosts, nothing of it
    seen.clear()
    status._probe(c, Path("inv"), None, secrets, lambda e: None, fake_run)
    assert seen["tags"] is None and "status_via_plan" not in seen["extravars"]


def test_the_host_program_is_standalone_and_leaves_nothing(tmp_path: Path) -> None:
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    request = {"probes": [{"id": "p0", "kind": "tcp", "address": "127.0.0.1", "port": port},
                          {"id": "p1", "kind": "http", "url": f"http://127.0.0.1:{port + 1 if port < 65535 else 1}/",
                           "auth": ["admin", "nx_secret_x"], "ca": False, "headers": {}},
                          {"id": "p2", "kind": "pg_tls", "address": "127.0.0.1", "port": port, "ca": True}],
               "secrets": {"nx_secret_x": "not-printed-secret"}, "ca_path": str(tmp_path / "missing-ca.crt")}
    # as the hosts run it: the source on the command line, isolated from this checkout, in an empty directory
    work = tmp_path / "cwd"
    work.mkdir()
    out = subprocess.run([sys.executable, "-I", "-c", (ROOT / "nxprovision" / "status_remote.py").read_text()],
                         input=json.dumps(request), capture_output=True, text=True, cwd=work, timeout=60, check=True)
    srv.close()
    answers = json.loads(out.stdout)
    assert answers["p0"] == {"open": True}
    assert answers["p1"]["type"] == "OSError" and "refused" in answers["p1"]["error"].lower()
    assert answers["p2"]["type"] == "OSError" and "cannot read the cluster CA" in answers["p2"]["error"]
    assert "not-printed-secret" not in out.stdout + out.stderr
    assert list(work.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["cwd"]


def test_the_cli_option(run_cli: Any, make_inv: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    args = build_parser().parse_args(["status", "-i", "inv", "--via-hosts", "--quick"])
    assert args.via_hosts and args.quick
    assert not build_parser().parse_args(["status", "-i", "inv"]).via_hosts
    with pytest.raises(SystemExit):
        build_parser().parse_args(["status", "-i", "inv", "--via-hosts", "--from-prometheus"])
    inv = make_inv("compact")
    called: dict[str, Any] = {}

    def fake_via(c: Cluster, inventory: Path, vpf: Any, secrets: list[str], options: Any, quick: bool) -> list[Any]:
        called.update(inventory=inventory, quick=quick)
        return [status.Row("lb1", "haproxy", "10.0.0.1", "ok", detail="2/2 Nuxeo servers UP"),
                status.Row("db1", "postgresql", "10.0.0.2", "down", detail="not probed: front1 did not answer")]

    monkeypatch.setattr(status, "collect_via_hosts", fake_via)
    monkeypatch.setattr(status, "collect", lambda c: pytest.fail("probed from the controller"))
    code, out, _err = run_cli("status", "-i", str(inv), "--via-hosts", "--json")
    assert code == 1 and called == {"inventory": inv, "quick": False}
    doc = json.loads(out)
    assert doc["healthy"] is False and [r["host"] for r in doc["components"]] == ["lb1", "db1"]


def test_the_hosts_reports_are_read_from_the_run_events(make_inv: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from nxprovision import runner

    c, secrets = _cluster(make_inv)
    _jobs, plan = _plan(c)
    report = {"rc": 0, "stdout": '{"p0": {"open": true}}', "stderr": ""}

    def fake_run(playbook: str, inventory: Path, **kw: Any) -> None:
        show = kw["display"]
        show({"event": "runner_on_ok", "event_data": {"task": "Report what this host's probes saw", "host": "lb1",
                                                      "res": {"msg": report, "changed": False}}})
        show({"event": "runner_on_ok", "event_data": {"task": "Probe the components this host talks to",
                                                      "host": "lb1", "res": {"censored": "hidden"}}})
        show({"event": "runner_on_ok", "event_data": {"task": "Read the server's role and replication state",
                                                      "host": "db1", "res": {"rc": 0, "stdout": "{}"}}})

    monkeypatch.setattr(runner, "run_playbook", fake_run)
    found = status.probe_hosts(c, Path("inv"), None, secrets, via=plan)
    assert found == {("lb1", "via"): report, ("db1", "postgresql"): {"rc": 0, "stdout": "{}"}}
