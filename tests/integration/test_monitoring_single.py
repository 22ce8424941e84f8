"""Monitoring on the single architecture (issue 20): the one host also runs the `monitoring` group.

Deployed from nothing into a one-host lab, then checked from outside: Prometheus, Alertmanager and the node
exporter refuse a request without credentials (401) over TLS verified with the cluster CA, Prometheus reports every
target of the model up (Nuxeo's own reporter among them) and has loaded the alert rules, Nuxeo's document and
request counters rise in Prometheus while the official client writes through the load balancer, and a second
deploy changes nothing. Its own lab and two full deploys: `slow`.
"""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from cluster_checks import create_document_with_blob, monitoring_access, monitoring_get, recap, wait_for
from conftest import Lab, bring_up, lab, lab_name, nxprovision, require_lab_machine

pytestmark = [pytest.mark.lab, pytest.mark.slow]

NAME = lab_name("nxmon")
HOST = "nuxeo1"


@pytest.fixture(scope="module")
def monitored() -> Iterator[tuple[Lab, subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]]:
    require_lab_machine()
    try:
        lab_ = bring_up(NAME, "--architecture", "single")
        hosts_yml = lab_.inventory / "hosts.yml"
        data = yaml.safe_load(hosts_yml.read_text())
        data["all"]["children"]["monitoring"] = {"hosts": {HOST: None}}
        hosts_yml.write_text(yaml.safe_dump(data, sort_keys=False))
        first = nxprovision("deploy", "-i", str(lab_.inventory), "--progress", "plain")
        second = nxprovision("deploy", "-i", str(lab_.inventory), "--progress", "plain") if first.returncode == 0 \
            else first
        yield lab_, first, second
    finally:
        lab("down", "--name", NAME, check=False)



def test_first_deploy_converges(monitored) -> None:
    _lab, first, _ = monitored
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]


def test_every_service_wants_credentials(monitored) -> None:
    lab_, first, _ = monitored
    assert first.returncode == 0
    d, m, ca, auth = monitoring_access(lab_.inventory)
    assert m["scheme"] == "https"
    for url in (m["prometheus_url"] + "/api/v1/targets", m["alertmanager_url"] + "/api/v2/status",
                f"https://{m['node_exporter_bind'][HOST]}/metrics", f"https://{m['address']}:{m['blackbox_port']}/",
                f"https://{m['postgres_exporter_bind'][HOST]}/metrics"):
        assert monitoring_get(url, ca, None)[0] == 401, url
        assert monitoring_get(url, ca, ("monitoring", "wrong"))[0] == 401, url
        assert monitoring_get(url, ca, auth)[0] == 200, url
    # HAProxy's exporter: behind the stats page's password
    lb = next(j for j in m["jobs"] if j["name"] == "haproxy")["targets"][0]["address"]
    assert monitoring_get(f"https://{lb}/metrics", ca, None)[0] == 401
    # the node exporter listens on the cluster address only
    listening = lab_.ssh(HOST, "ss -Hltn 'sport = :9100'").stdout
    assert f"{d.address(HOST)}:9100" in listening and "0.0.0.0:9100" not in listening and "*:9100" not in listening


def test_prometheus_reports_every_target_up(monitored) -> None:
    lab_, first, _ = monitored
    assert first.returncode == 0
    _d, m, ca, auth = monitoring_access(lab_.inventory)
    expected = {(j["name"], t["address"]) for j in m["jobs"] for t in j["targets"]}
    assert {name for name, _ in expected} == {"prometheus", "alertmanager", "node", "haproxy", "nuxeo_runningstatus",
                                              "postgres", "nuxeo"}

    def all_up() -> Any:
        code, body = monitoring_get(m["prometheus_url"] + "/api/v1/targets", ca, auth)
        assert code == 200, code
        active = body["data"]["activeTargets"]
        seen = {(t["labels"]["job"], t["labels"]["instance"]): t["health"] for t in active}
        assert set(seen) == expected, seen
        return seen if all(h == "up" for h in seen.values()) else None

    wait_for(all_up, 120, "every scrape target up", interval=5)
    code, body = monitoring_get(m["prometheus_url"] + "/api/v1/rules", ca, auth)
    names = {r["name"] for g in body["data"]["groups"] for r in g["rules"]}
    assert code == 200 and {"NxTargetDown", "NxFrontNodeOutOfPool", "NxCertificateExpiring"} <= names
    # the certificate expiry metrics reach Prometheus through the node exporter's textfile collector
    query = m["prometheus_url"] + "/api/v1/query?query=nxprovision_tls_certificate_not_after_timestamp_seconds"
    wait_for(lambda: monitoring_get(query, ca, auth)[1]["data"]["result"], 90, "certificate expiry metrics", interval=5)
    # each Nuxeo node's runningstatus, probed through the blackbox exporter: the NxRunningstatusFailing alert's input
    query = m["prometheus_url"] + '/api/v1/query?query=probe_success%7Bjob%3D%22nuxeo_runningstatus%22%7D'
    probes = wait_for(lambda: monitoring_get(query, ca, auth)[1]["data"]["result"], 90, "runningstatus probes",
                      interval=5)
    assert {(p["metric"]["nx_host"], p["value"][1]) for p in probes} == {(HOST, "1")}, probes
    # the postgres exporter reads the local server (pg_up 1) as the peer-authenticated monitoring role, and the
    # replication lag the NxDatabaseReplicaLag alert reads is there (0 on a primary)
    for metric in ("pg_up", "pg_replication_lag"):
        query = m["prometheus_url"] + f"/api/v1/query?query={metric}"
        found = wait_for(lambda q=query: monitoring_get(q, ca, auth)[1]["data"]["result"], 90, metric, interval=5)
        assert {(r["metric"]["nx_host"], r["value"][1]) for r in found} == {(HOST, "1" if metric == "pg_up" else "0")}


def _value(prom: str, ca: str, auth: tuple[str, str], query: str) -> float | None:
    code, body = monitoring_get(prom + "/api/v1/query?query=" + urllib.parse.quote(query), ca, auth)
    assert code == 200, code
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_nuxeo_reporter_counts_what_the_client_writes(monitored) -> None:
    lab_, first, _ = monitored
    assert first.returncode == 0
    d, m, ca, auth = monitoring_access(lab_.inventory)
    target = next(j for j in m["jobs"] if j["name"] == "nuxeo")["targets"]
    assert target == [{"host": HOST, "address": f"{d.address(HOST)}:9464"}]
    # what Nuxeo's reporter is (no option for a bind address, TLS or credentials): plain HTTP on every address,
    # which is why the model's firewall admits the monitoring host only (this lab runs without the firewall)
    listening = lab_.ssh(HOST, "ss -Hltn 'sport = :9464'").stdout
    assert "0.0.0.0:9464" in listening or "*:9464" in listening, listening
    conf = lab_.ssh(HOST, "grep '^metrics\\.' /etc/nuxeo/nuxeo.conf").stdout.split()
    assert conf == ["metrics.enabled=true", "metrics.prometheus.enabled=true", "metrics.prometheus.port=9464"], conf
    prom = m["prometheus_url"]
    created = 'sum(dropwizard5_nuxeo_repositories_repository_documents_create_counter{job="nuxeo"})'
    requests = 'sum(dropwizard5_nuxeo_web_authentication_requests_timer_timer_count{job="nuxeo"})'
    for q in (created, requests):
        wait_for(lambda q=q: _value(prom, ca, auth, q) is not None, 90, q, interval=5)
    before = {q: _value(prom, ca, auth, q) or 0.0 for q in (created, requests)}
    # the official client, through the load balancer
    nx = d.client()
    for i in range(3):
        create_document_with_blob(nx, f"monitored {i}", f"counted by Nuxeo's reporter {i}")

    def risen() -> dict[str, float] | None:
        now = {q: _value(prom, ca, auth, q) or 0.0 for q in (created, requests)}
        return now if now[created] >= before[created] + 3 and now[requests] >= before[requests] + 3 else None

    wait_for(risen, 120, "Nuxeo's document and request counters risen in Prometheus", interval=5)
    # the work queue gauges the NxWorkQueueBacklogGrowing alert reads are there too
    assert _value(prom, ca, auth, 'max(dropwizard5_nuxeo_works_global_queue_scheduled_gauge{queue="common"})') \
        is not None


def test_second_deploy_changes_nothing(monitored) -> None:
    _lab, first, second = monitored
    assert first.returncode == 0
    assert second.returncode == 0, second.stdout[-6000:] + second.stderr[-3000:]
    hosts = recap(second.stdout)
    changed = {h: v[1] for h, v in hosts.items() if v[1]}
    assert not changed, (changed, [ln for ln in second.stdout.splitlines() if ln.startswith("changed:")][-20:])
