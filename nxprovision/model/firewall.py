"""The host firewall (`nx_firewall_enabled`): which addresses may reach each port of each host.

Off by default: a host firewall changes the operator's hosts beyond the services nxprovision installs (their own
monitoring agents, backup clients and jump hosts reach them too), so it is opted into once the operator has listed
those sources in `nx_firewall_admin_sources`. Every service is bound and authenticated without it (README's
security matrix); the firewall narrows who can knock at all.

Ports come from the same list validate's port rule and prechecks read (model.ports.host_ports) plus the derived
ports of etcd, Patroni and SeaweedFS's gRPC; sources come from the derived values the roles already use (pg_hba
clients, SeaweedFS's white list, the load balancers' backends, the monitoring scrape targets, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nxprovision.model.ports import host_ports

if TYPE_CHECKING:
    from nxprovision.model.cluster import Cluster

ANY = "any"  # a port open to every source (the public frontend, sshd)
LOOPBACK = "loopback"  # a port bound to loopback only: no rule at all

# SeaweedFS's gRPC port of each server is its HTTP port + 10000 (the role leaves SeaweedFS's default offsets).
SEAWEEDFS_GRPC_OFFSET = 10000


def _true(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "yes", "1", "on")


def _sources(c: Cluster) -> dict[str, list[str]]:
    """Setting naming a port -> the addresses that need that port, from the model's derived values."""
    d = c.derived

    def addr(hosts: Any) -> list[str]:
        return [c.hosts[h].address if h in c.hosts else str(h) for h in hosts]

    nuxeo = addr(n.host for n in c.nuxeo_nodes)
    lbs = addr(c.lb_hosts)
    db = d.get("db", {})
    backup = d.get("backup", {})
    s3 = d.get("s3", {})
    monitoring = d.get("monitoring", {})
    watcher = [monitoring["address"]] if monitoring.get("enabled") else []
    search_clients = nuxeo + addr(c.search_hosts)
    if backup.get("audit_snapshot", {}).get("host"):
        search_clients += addr([backup["audit_snapshot"]["host"]])
    if monitoring.get("search_exporters"):
        search_clients += watcher  # the monitoring host's exporters read each node's health and statistics
    s3_clients = nuxeo + addr(c.s3_hosts) + addr(c.search_hosts)  # the audit snapshots' repository
    if backup.get("enabled"):
        s3_clients += addr(backup.get("hosts", [])) + addr([h for h in [backup.get("copy_host")] if h])
    store = [str(a) for a in s3.get("white_list", [])] or addr(c.s3_hosts)
    zk = addr(c.zookeeper_hosts)
    brokers = [b.address for b in c.kafka_brokers]
    return {
        # users reach Nuxeo through the load balancers; without any, directly
        # the monitoring host's blackbox exporter probes each node's runningstatus
        "nuxeo_http_port": (lbs + watcher) if lbs else [ANY],
        "nuxeo_tomcat_admin_port": [LOOPBACK],
        "postgresql_port": list(db.get("hba_clients", [])) + list(db.get("replication_clients", []))
        + addr(c.db_hosts),
        "mongodb_port": nuxeo + addr(c.db_hosts),
        "opensearch_http_port": search_clients,
        "opensearch_transport_port": addr(c.search_hosts),
        "kafka_port": nuxeo + brokers,
        "kafka_controller_port": brokers,
        "zookeeper_client_port": brokers + zk,
        "zookeeper_peer_port": zk,
        "zookeeper_election_port": zk,
        "seaweedfs_master_port": store,
        "seaweedfs_volume_port": store,
        "seaweedfs_filer_port": store,
        "seaweedfs_s3_port": s3_clients,
        "seaweedfs_grpc": store,
        "haproxy_stats_port": watcher if monitoring.get("haproxy") else [],
        "monitoring_prometheus_port": watcher,
        "monitoring_alertmanager_port": watcher,
        "monitoring_node_exporter_port": watcher,
        "monitoring_blackbox_port": watcher,
        "monitoring_postgres_exporter_port": watcher,
        # Nuxeo's reporter listens on every address without TLS or authentication: the monitoring host only
        "nuxeo_metrics_port": watcher,
        "nx_public_url": [ANY],
        "haproxy_http_port": [ANY],
        "etcd_client_port": addr(c.etcd_hosts) + addr(c.db_hosts),  # Patroni on the database hosts
        "etcd_peer_port": addr(c.etcd_hosts),
        # the members call each other; the monitoring host reads each member's /metrics
        "patroni_rest_port": addr(c.db_hosts) + watcher,
    }


def _ports(c: Cluster, host: str) -> list[tuple[str, str, int]]:
    """(label, setting, port) of every port the components on HOST listen on beyond loopback."""
    out: list[tuple[str, str, int]] = []
    for _group, label, key, value in host_ports(c, host):
        try:
            port = int(str(value))
        except ValueError:
            continue  # validate reports it
        out.append((label, key, port))
        if key.startswith("seaweedfs_"):
            # only the store's own servers call each other over gRPC
            out.append((label + " gRPC", "seaweedfs_grpc", port + SEAWEEDFS_GRPC_OFFSET))
    etcd = c.derived.get("etcd") or {}
    if host in c.etcd_hosts and etcd.get("client_port"):
        out += [("etcd client", "etcd_client_port", int(etcd["client_port"])),
                ("etcd peer", "etcd_peer_port", int(etcd["peer_port"]))]
    patroni = (c.derived.get("db") or {}).get("patroni") or {}
    if host in c.db_hosts and patroni.get("rest_port"):
        out.append(("Patroni REST", "patroni_rest_port", int(patroni["rest_port"])))
    return out


def firewall(c: Cluster) -> dict[str, Any]:
    """`nx.firewall`: per host, each port with the sorted addresses of the cluster admitted to it (or `any`), and
    the ports the operator's own sources (`nx_firewall_admin_sources`) reach: every port not open to all."""
    s = c.settings
    admin = [str(a) for a in (s.get("nx_firewall_admin_sources") or [])]
    sources = _sources(c)
    hosts: dict[str, Any] = {}
    for name in c.hosts:
        own = c.hosts[name].address
        rules = []
        for label, key, port in _ports(c, name):
            allowed = sources.get(key)
            if allowed is None:
                allowed = [h.address for h in c.hosts.values()]  # a port nobody classified: the cluster's hosts
            if LOOPBACK in allowed:
                continue
            if ANY in allowed:
                rules.append({"label": label, "port": port, "sources": ANY})
            else:
                # the host itself comes in over loopback
                rules.append({"label": label, "port": port, "sources": sorted(set(allowed) - {own})})
        rules.sort(key=lambda r: (r["port"], r["label"]))
        vrrp = (c.derived.get("lb") or {}).get("vrrp") or {}
        peers = [p["address"] for p in vrrp.get("peers", []) if p["host"] != name] \
            if vrrp.get("enabled") and name in c.lb_hosts else []
        hosts[name] = {"rules": rules, "vrrp_peers": peers,
                       "admin_ports": sorted({r["port"] for r in rules if r["sources"] != ANY}) if admin else []}
    return {
        "enabled": _true(s.get("nx_firewall_enabled", False)),
        # in rules of their own: an operator's network may hold cluster addresses, and nft refuses overlapping
        # elements in one set
        "admin_sources": admin,
        "hosts": hosts,
    }
