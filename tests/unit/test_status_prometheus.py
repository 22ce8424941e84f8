"""`status --from-prometheus`: the fleet read from Prometheus's HTTP API (TLS verified with the cluster CA, basic
auth), in `status`'s row shape: a fake Prometheus answers the queries the way Prometheus 2.42 does."""

from __future__ import annotations

import base64
import http.server
import json
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nxprovision import promstatus
from nxprovision.inventory import load_inventory
from nxprovision.model.cluster import Cluster, build_cluster
from tests.unit.test_monitoring import ADDRESSES, COMPACT
from tests.unit.test_status_nuxeo import _ca_and_server

USER, PASSWORD = "monitoring", "mon-pw"


def _sample(value: float, **labels: str) -> dict[str, Any]:
    return {"metric": labels, "value": [1700000000.0, str(value)]}


class _FakePrometheus(http.server.BaseHTTPRequestHandler):
    answers: dict[str, list[dict[str, Any]]]
    alerts: list[dict[str, Any]]
    seen: list[str]

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        self.seen.append(self.path)
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {token}":
            self._send(401, {"status": "error", "error": "Unauthorized"})
        elif url.path == "/api/v1/query":
            q = urllib.parse.parse_qs(url.query)["query"][0]
            self._send(200, {"status": "success", "data": {"resultType": "vector", "result": self.answers.get(q, [])}})
        elif url.path == "/api/v1/alerts":
            self._send(200, {"status": "success", "data": {"alerts": self.alerts}})
        else:
            self._send(404, {"status": "error", "error": "not found"})

    def _send(self, code: int, data: dict[str, Any]) -> None:
        body = json.dumps(data).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[dict[str, Any]]:
    crt, key, ca = _ca_and_server(tmp_path)
    state: dict[str, Any] = {"answers": {}, "alerts": [], "seen": []}
    handler = type("Handler", (_FakePrometheus,), state)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield {**state, "port": srv.server_address[1], "ca": ca}
    srv.shutdown()


def _cluster(make_inv: Any) -> Cluster:
    return build_cluster(load_inventory(make_inv("compact", layout={**COMPACT, "monitoring": ["lb1"]},
                                                 hostvars=ADDRESSES)))


def _prom(c: Cluster, fake: dict[str, Any], password: str = PASSWORD) -> promstatus.Prometheus:
    p = promstatus.Prometheus.__new__(promstatus.Prometheus)
    p.url = f"https://127.0.0.1:{fake['port']}"
    p.ctx = ssl.create_default_context(cafile=str(fake["ca"]))
    p.auth = (USER, password)
    return p


def _up_everywhere(c: Cluster, fake: dict[str, Any], down: tuple[str, str] | None = None) -> None:
    fake["answers"]["up"] = [_sample(0 if (j["name"], t["host"]) == down else 1, job=j["name"],
                                     instance=t["address"], nx_host=t["host"])
                             for j in c.derived["monitoring"]["jobs"] for t in j["targets"]]


def test_rows_per_target_and_front_node(make_inv, fake: dict[str, Any]) -> None:
    c = _cluster(make_inv)
    _up_everywhere(c, fake, down=("node", "db2"))
    fake["answers"]["haproxy_process_build_info"] = [_sample(1, nx_host="lb1", version="2.6.12-1+deb12u4")]
    routes = {n.host: n.jvm_route for n in c.nuxeo_nodes}
    # HAProxy 2.4+: one series per state, 1 on the current one; front2 is DOWN, front1 UP
    fake["answers"]['haproxy_server_status{proxy="nuxeo"}'] = [
        _sample(1 if s == st else 0, proxy="nuxeo", server=routes[h], state=s, nx_host="lb1")
        for h, st in (("front1", "UP"), ("front2", "DOWN")) for s in ("UP", "DOWN", "MAINT")]
    fake["alerts"].append({"state": "firing", "labels": {"alertname": "NxDiskAlmostFull", "nx_host": "search1"}})
    rows = promstatus.collect(c, _prom(c, fake))
    by = {(r.host, r.component): r for r in rows}
    assert by[("db2", "host (node exporter)")].health == "down"
    assert by[("db1", "host (node exporter)")].health == "ok"
    assert by[("lb1", "haproxy")].version == "2.6.12-1+deb12u4" and by[("lb1", "haproxy")].health == "ok"
    assert by[("search1", "host (node exporter)")].health == "degraded"
    assert "NxDiskAlmostFull" in by[("search1", "host (node exporter)")].detail
    assert (by[("front1", "nuxeo (front)")].health, by[("front1", "nuxeo (front)")].lb_state) == ("ok", "UP")
    assert (by[("front2", "nuxeo (front)")].health, by[("front2", "nuxeo (front)")].lb_state) == ("down", "DOWN")
    assert ("worker1", "nuxeo (worker)") not in by  # behind no balancer: its host row says whether it is up
    # every host of the inventory has its row, plus HAProxy, Prometheus and Alertmanager
    assert {h for h, comp in by if comp.startswith("host")} == set(c.hosts)
    assert {("lb1", "prometheus"), ("lb1", "alertmanager")} <= set(by)
    # only Prometheus's HTTP API was asked
    assert all(p.startswith("/api/v1/") for p in fake["seen"])


def test_a_target_prometheus_does_not_have_is_unknown(make_inv, fake: dict[str, Any]) -> None:
    c = _cluster(make_inv)
    _up_everywhere(c, fake)
    fake["answers"]["up"] = [s for s in fake["answers"]["up"] if s["metric"]["nx_host"] != "kafka1"]
    rows = promstatus.collect(c, _prom(c, fake))
    [row] = [r for r in rows if r.host == "kafka1"]
    assert row.health == "unknown" and "not among Prometheus's targets" in row.detail


def test_wrong_password_and_no_monitoring_are_errors(make_inv, fake: dict[str, Any], run_cli) -> None:
    from nxprovision.errors import NxError

    c = _cluster(make_inv)
    with pytest.raises(NxError, match="refused the monitoring user's password"):
        promstatus.collect(c, _prom(c, fake, password="wrong"))
    code, _out, err = run_cli("status", "-i", str(make_inv("compact")), "--from-prometheus")
    assert code != 0 and "no monitoring host" in err


def test_the_cli_reads_prometheus_not_the_hosts(make_inv, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[str] = []
    monkeypatch.setattr(promstatus, "collect", lambda c: called.append("prom") or [
        promstatus.Row("lb1", "haproxy", "10.2.0.10", "ok", detail="haproxy target up")])
    import nxprovision.status as status

    monkeypatch.setattr(status, "collect", lambda c: pytest.fail("probed the hosts"))
    monkeypatch.setattr(status, "probe_hosts", lambda *a, **k: pytest.fail("ran the SSH probe"))
    inv = make_inv("compact", layout={**COMPACT, "monitoring": ["lb1"]}, hostvars=ADDRESSES)
    code, out, _err = run_cli("status", "-i", str(inv), "--from-prometheus")
    assert code == 0 and called == ["prom"] and "haproxy target up" in out and "1/1 healthy" in out


def test_each_row_names_its_hosts_address(make_inv, fake: dict[str, Any]) -> None:
    """A probe's target is a URL and a search exporter answers on the monitoring host's loopback: the rows still
    show the address of the host they speak of."""
    c = _cluster(make_inv)
    _up_everywhere(c, fake)
    rows = promstatus.collect(c, _prom(c, fake))
    assert {r.address for r in rows if r.host == "search2"} == {c.hosts["search2"].address}
    assert ("search2", "opensearch (exporter)") in {(r.host, r.component) for r in rows}
    assert {r.address for r in rows if r.host == "front1"} == {c.hosts["front1"].address}
