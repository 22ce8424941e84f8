"""Every port each component listens on, host by host: the one list validate's port rule, prechecks, the host
firewall and the failure report's service lookup read."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nxprovision.inventory import host_setting

if TYPE_CHECKING:
    from nxprovision.model.cluster import Cluster

# group -> (label, setting holding the port) for every port its component listens on.
PORTS: dict[str, tuple[tuple[str, str], ...]] = {
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
    for group, ports in PORTS.items():
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
