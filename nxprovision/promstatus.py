"""`nxprovision status --from-prometheus`: the fleet as the monitoring host's Prometheus sees it, read from its HTTP
API (over TLS verified with the cluster CA, basic auth with the monitoring user), without SSH or a probe per host.

Rows have the shape of `status`'s (nxprovision.status.Row): one per scrape target of the model (`nx.monitoring.jobs`:
a host's node exporter, each load balancer's HAProxy, Prometheus, Alertmanager) and one per Nuxeo node, whose state
is what the load balancers report of it (haproxy_server_status). Firing alerts are shown on the host they name.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from nxprovision.errors import NxError
from nxprovision.model.cluster import Cluster
from nxprovision.status import Row, _http, tls_context
from nxprovision.status_remote import TIMEOUT

# job of the model -> component column
_COMPONENT = {"node": "host (node exporter)", "haproxy": "haproxy", "prometheus": "prometheus",
              "alertmanager": "alertmanager", "nuxeo": "nuxeo (metrics)", "patroni": "patroni (metrics)",
              "search": "opensearch (exporter)"}
_VERSION_OF = {"haproxy": "haproxy_process_build_info", "prometheus": "prometheus_build_info",
               "alertmanager": "alertmanager_build_info"}


class Prometheus:
    def __init__(self, c: Cluster) -> None:
        m = c.derived.get("monitoring") or {}
        if not m.get("enabled"):
            raise NxError("this cluster has no monitoring host (the inventory's `monitoring` group is empty)",
                          "add a host to the `monitoring` group and deploy, or run `status` without --from-prometheus")
        self.url = str(m["prometheus_url"])
        self.ctx = tls_context(c) if m.get("tls") else None
        if m.get("tls") and self.ctx is None:
            raise NxError("Prometheus serves https, but the cluster CA certificate is not on this machine",
                          "run from where the inventory's nx_tls_ca_cert_file is")
        self.auth = (str(m["user"]), str(c.settings.get("nx_secret_monitoring_password") or ""))

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.url}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        try:
            code, body, _ = _http(url, self.auth, timeout=TIMEOUT, context=self.ctx)
        except OSError as exc:
            raise NxError(f"Prometheus at {self.url} did not answer: {getattr(exc, 'reason', exc)}",
                          "check the monitoring host (`nxprovision status` probes it directly)") from exc
        if code == 401:
            raise NxError(f"Prometheus at {self.url} refused the monitoring user's password (401)",
                          "the vault's nx_secret_monitoring_password is not the one deployed: run deploy")
        try:
            data = json.loads(body or b"{}")
        except ValueError as exc:
            raise NxError(f"Prometheus at {self.url} answered {code} with no JSON", "check its URL and port") from exc
        if code != 200 or data.get("status") != "success":
            raise NxError(f"Prometheus at {self.url} answered {code}: {data.get('error', '')}",
                          "check the monitoring host's Prometheus")
        return data["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/query", query=expr).get("result") or [])


def _value(sample: dict[str, Any]) -> float:
    return float(sample["value"][1])


def collect(c: Cluster, prom: Prometheus | None = None) -> list[Row]:
    prom = prom or Prometheus(c)
    m = c.derived["monitoring"]
    up = {(s["metric"].get("job"), s["metric"].get("instance")): s for s in prom.query("up")}
    versions: dict[tuple[str, str], str] = {}
    for job, metric in _VERSION_OF.items():
        for s in prom.query(metric):
            versions[(job, str(s["metric"].get("nx_host")))] = str(s["metric"].get("version", ""))
    firing: dict[str, list[str]] = {}
    for a in prom.get("/api/v1/alerts").get("alerts") or []:
        if a.get("state") == "firing":
            host = str(a.get("labels", {}).get("nx_host", ""))
            firing.setdefault(host, []).append(str(a.get("labels", {}).get("alertname")))
    rows: list[Row] = []
    for job in m["jobs"]:
        for t in job["targets"]:
            host, address = t["host"], t["address"]
            # the host's cluster address: a probe's target is a URL, a search exporter listens on the monitoring
            # host's loopback, yet each row speaks of the host it names
            row = Row(host, _COMPONENT.get(job["name"], job["name"]), c.hosts[host].address, "unknown",
                      version=versions.get((job["name"], host), ""))
            s = up.get((job["name"], address))
            if s is None:
                row.detail = "not among Prometheus's targets (a deploy writes them)"
            elif _value(s) == 1:
                row.health, row.detail = "ok", f"{job['name']} target up"
            else:
                row.health, row.detail = "down", f"{job['name']} target down"
            rows.append(row)
    # Nuxeo nodes as the load balancers see them: a server is UP on one balancer at least (status's rule)
    states: dict[str, str] = {}
    for s in prom.query('haproxy_server_status{proxy="nuxeo"}'):
        server, state = str(s["metric"].get("server")), str(s["metric"].get("state", ""))
        if _value(s) == 1 and (state == "UP" or server not in states):
            states[server] = state or "UP"
    drained = {str(s["metric"].get("server")) for s in prom.query('haproxy_server_weight{proxy="nuxeo"} == 0')}
    # front nodes only: workers are behind no balancer, and Nuxeo's own metrics are not scraped in this release
    for node in (n for n in c.nuxeo_nodes if n.role == "front"):
        state = states.get(node.jvm_route, "")
        if state == "UP" and node.jvm_route in drained:
            state = "DRAIN"
        rows.append(Row(node.host, f"nuxeo ({node.role})", node.address,
                        "ok" if state == "UP" else "degraded" if state in ("DRAIN", "MAINT") else
                        "down" if state else "unknown", lb_state=state or "-",
                        detail=f"load balancer reports {state}" if state else "no load balancer reports it"))
    for r in rows:
        if r.component.startswith("host") and firing.get(r.host):
            r.detail += "; firing: " + ", ".join(sorted(set(firing[r.host])))
            if r.health == "ok":
                r.health = "degraded"
    return rows
