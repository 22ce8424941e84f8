"""No two components on one host may listen on the same port."""

from __future__ import annotations

from collections.abc import Iterator

from nxprovision.model.cluster import Cluster, host_setting
from nxprovision.rules.finding import Finding, error, warning

# group -> (label, setting holding the port) for every port its component listens on.
_PORTS: dict[str, tuple[tuple[str, str], ...]] = {
    "nuxeo": (("Nuxeo HTTP", "nuxeo_http_port"), ("Tomcat admin", "nuxeo_tomcat_admin_port")),
    "postgresql": (("PostgreSQL", "postgresql_port"),),
    "mongodb": (("MongoDB", "mongodb_port"),),
    "opensearch": (("search HTTP", "opensearch_http_port"), ("search transport", "opensearch_transport_port")),
    "kafka": (("Kafka", "kafka_port"), ("Kafka controller", "kafka_controller_port")),
    "zookeeper": (("ZooKeeper client", "zookeeper_client_port"), ("ZooKeeper peer", "zookeeper_peer_port"),
                  ("ZooKeeper election", "zookeeper_election_port")),
    "s3": (("SeaweedFS master", "seaweedfs_master_port"), ("SeaweedFS volume", "seaweedfs_volume_port"),
           ("SeaweedFS filer", "seaweedfs_filer_port"), ("SeaweedFS S3", "seaweedfs_s3_port")),
    "loadbalancers": (("HAProxy stats", "haproxy_stats_port"),),
    "monitoring": (("Prometheus", "monitoring_prometheus_port"), ("Alertmanager", "monitoring_alertmanager_port"),
                   ("blackbox exporter", "monitoring_blackbox_port")),
}


def host_ports(c: Cluster, name: str) -> list[tuple[str, str, str, object]]:
    """(group, label, setting, port as set) of every port the components on host NAME listen on; `prechecks`
    reads the same list to check the ports are free on the host."""
    host = c.hosts[name]
    groups = set(host.groups)
    out: list[tuple[str, str, str, object]] = []
    for group, ports in _PORTS.items():
        if group not in groups:
            continue
        if group == "s3" and c.settings.get("s3_mode") == "external":
            continue
        if group == "zookeeper" and c.derived["kafka"]["mode"] == "kraft":
            continue
        for label, key in ports:
            out.append((group, label, key, host_setting(c.view, c.settings, name, key)))
    if c.derived.get("monitoring", {}).get("enabled"):
        # the node exporter runs on every host once monitoring is on, Nuxeo's reporter on the Nuxeo nodes, the
        # postgres exporter on the database hosts
        out.append(("node_exporter", "node exporter", "monitoring_node_exporter_port",
                    host_setting(c.view, c.settings, name, "monitoring_node_exporter_port")))
        if c.node(name) is not None:
            # Nuxeo's own Prometheus reporter, turned on in nuxeo.conf with monitoring
            out.append(("nuxeo", "Nuxeo Prometheus reporter", "nuxeo_metrics_port",
                        host_setting(c.view, c.settings, name, "nuxeo_metrics_port")))
        if c.database == "postgresql" and name in c.db_hosts:
            out.append(("postgres_exporter", "postgres exporter", "monitoring_postgres_exporter_port",
                        host_setting(c.view, c.settings, name, "monitoring_postgres_exporter_port")))
    lb_port = c.derived.get("lb", {}).get("frontend_port")
    if "loadbalancers" in groups and lb_port:
        out.append(("loadbalancers", "HAProxy frontend", "nx_public_url", lb_port))
        redirect = c.derived.get("lb", {}).get("redirect_port")
        if redirect:
            out.append(("loadbalancers", "HAProxy http->https redirect", "haproxy_http_port", redirect))
    return out


def check(c: Cluster) -> Iterator[Finding]:
    yield from _open_reporter(c)
    for name in c.hosts:
        used: dict[int, str] = {}
        for _group, label, key, value in host_ports(c, name):
            try:
                port = int(value)  # type: ignore[call-overload]
            except (TypeError, ValueError):
                yield error("ports.invalid", f"host {name}", f"{key} is not a port number",
                            f"set {key} to a number between 1 and 65535", c.view.source)
                continue
            yield from _claim(used, port, label, key, name, c.view.source)


def _claim(used: dict[int, str], port: int, label: str, key: str, host: str, where: str) -> Iterator[Finding]:
    if not 0 < port < 65536:
        yield error("ports.invalid", f"host {host}", f"{label} port {port} is out of range",
                    f"set {key} between 1 and 65535", where)
    elif port in used:
        yield error("ports.clash", f"host {host}",
                    f"{label} and {used[port]} both want port {port}",
                    f"set {key} (or the other component's port) to a free port on {host}", where)
    else:
        used[port] = f"{label} ({key})"


def _open_reporter(c: Cluster) -> Iterator[Finding]:
    """Nuxeo's Prometheus reporter listens on every address without TLS or authentication (Nuxeo has no option for
    any of them): without the host firewall, anything that reaches a Nuxeo node reads its metrics."""
    monitoring = c.derived.get("monitoring") or {}
    firewall = c.derived.get("firewall") or {}
    if monitoring.get("enabled") and monitoring.get("nuxeo_metrics") and not firewall.get("enabled"):
        yield warning("ports.open_metrics", "setting nx_firewall_enabled",
                      "Nuxeo's Prometheus reporter (nuxeo_metrics_port) listens on every address of each Nuxeo node, "
                      "over plain HTTP without authentication: Nuxeo offers no option for a bind address, TLS or "
                      "credentials",
                      "set nx_firewall_enabled: true (the monitoring host alone is then admitted to that port), or "
                      "filter the port in your network", c.view.source)
