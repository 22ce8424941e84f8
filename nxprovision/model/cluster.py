"""The cluster model: one typed description of "a Nuxeo cluster on these hosts" and every derived value.

Node ids, jvmRoutes, endpoints, each node's nuxeo.conf, the LB backends, the Kafka quorum, pg_hba clients:
each is computed here and only here (design principle 1). Roles get them as the `nx` fact; `plan` renders
the roles' own templates with them.
"""

from __future__ import annotations

import base64
import posixpath
import re
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from nxprovision.inventory import InventoryView, host_setting
from nxprovision.model.artifacts import (
    DEFAULT_CPU_ARCH,
    VENDOR_BASE_URLS,
    Platform,
    archive_checksum,
    archive_root_dir,
    artifact_url,
)
from nxprovision.model.compat import load as load_compat
from nxprovision.model.defaults import DEFAULTS
from nxprovision.model.firewall import firewall
from nxprovision.model.roledefaults import role_defaults
from nxprovision.model.versions import NuxeoVersion, java_for, supports_kraft
from nxprovision.rotation import masked_names

SECRET_PLACEHOLDER = "@@SECRET@@"

# Settings that must be identical on every host: they describe the cluster, not a host.
CLUSTER_WIDE = (
    "nx_architecture", "nx_cluster_name", "nx_public_url", "nx_database", "nuxeo_version", "nuxeo_packages",
    "search_distribution", "search_version", "kafka_version", "kafka_mode", "s3_mode", "s3_bucket",
    "s3_endpoint", "s3_region", "postgresql_version", "mongodb_version", "nx_tls_enabled", "nx_tls_ca_cert_file",
    "nx_tls_ca_key_file", "nx_tls_search", "nx_tls_kafka", "nx_tls_s3", "nuxeo_search_client", "nuxeo_audit_backend",
)


@dataclass
class ConfItem:
    key: str
    value: str
    secret: str | None = None  # name of the secret replacing SECRET_PLACEHOLDER in value

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value, "secret": self.secret}


@dataclass
class Host:
    name: str
    address: str
    groups: list[str]
    vars: dict[str, Any]


@dataclass
class NuxeoNode:
    host: str
    address: str
    role: str  # front | worker
    node_id: str
    jvm_route: str
    port: int
    conf: list[ConfItem] = field(default_factory=list)


@dataclass
class KafkaBroker:
    host: str
    address: str
    node_id: int
    port: int
    controller_port: int


@dataclass
class Cluster:
    view: InventoryView
    architecture: str
    settings: dict[str, Any]
    hosts: dict[str, Host]
    nuxeo_nodes: list[NuxeoNode]
    lb_hosts: list[str]
    database: str
    db_hosts: list[str]
    search_hosts: list[str]
    kafka_brokers: list[KafkaBroker]
    zookeeper_hosts: list[str]
    s3_hosts: list[str]
    etcd_hosts: list[str]
    # the `monitoring` group (Prometheus and Alertmanager); empty: monitoring is off
    monitoring_hosts: list[str] = field(default_factory=list)
    derived: dict[str, Any] = field(default_factory=dict)

    def setting(self, key: str) -> Any:
        return self.settings.get(key)

    @property
    def nuxeo_version(self) -> NuxeoVersion | None:
        return NuxeoVersion.parse(str(self.settings.get("nuxeo_version", "")))

    def node(self, host: str) -> NuxeoNode | None:
        return next((n for n in self.nuxeo_nodes if n.host == host), None)

    def to_facts(self) -> dict[str, Any]:
        """The `nx` fact roles read. Secret values are never in it: only secret names."""
        return {
            "architecture": self.architecture,
            "cluster_name": self.settings.get("nx_cluster_name"),
            "hosts": {
                h.name: {"address": h.address, "components": components_of(self, h.name),
                         "platform": _platform_fact(self, h.name)}
                for h in self.hosts.values()
            },
            "nodes": {
                n.host: {
                    "role": n.role, "node_id": n.node_id, "jvm_route": n.jvm_route, "address": n.address,
                    "port": n.port, "conf": [c.to_dict() for c in n.conf],
                }
                for n in self.nuxeo_nodes
            },
            **self.derived,
        }


# --------------------------------------------------------------------------- helpers


def _platform_fact(c: Cluster, host: str) -> dict[str, str]:
    p = host_platform(c, host)
    return {"os_release": p.os_release, "cpu_arch": p.cpu_arch}


def _sanitize_id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)


def _host_address(hostvars: dict[str, Any], name: str) -> str:
    addr = hostvars.get("ansible_host") or name
    return str(addr)


def components_of(cluster: Cluster, host: str) -> list[str]:
    comps = []
    for group in ("loadbalancers", "nuxeo_front", "nuxeo_worker", "postgresql", "mongodb", "opensearch",
                  "kafka", "zookeeper", "s3", "etcd", "monitoring"):
        if host in cluster.view.groups.get(group, []):
            comps.append(group)
    return comps


def _kafka_cluster_id(cluster_name: str) -> str:
    # Deterministic: the same inventory formats the same id, so rebuilds are repeatable.
    u = uuid.uuid5(uuid.NAMESPACE_URL, f"nxprovision:kafka:{cluster_name}")
    return base64.urlsafe_b64encode(u.bytes).decode().rstrip("=")


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


# --------------------------------------------------------------------------- build


# Settings whose type the model relies on; a wrong type is reported and the default used instead.
_LIST_SETTINGS = ("nuxeo_packages",)
_DICT_SETTINGS = ("nx_compat_overrides", "nuxeo_conf_extra")
_SCALAR_SETTINGS = ("nx_architecture", "nx_cluster_name", "nx_public_url", "nx_database", "nuxeo_version",
                    "search_distribution", "search_version", "kafka_version", "kafka_mode", "s3_mode",
                    "s3_endpoint", "s3_bucket", "s3_region", "postgresql_version", "mongodb_version", "nx_vip",
                    "nuxeo_download_base_url", "nx_tls_ca_cert_file", "nx_tls_ca_key_file")


def _type_problems(settings: dict[str, Any], defaults: dict[str, Any]) -> list[tuple[str, str]]:
    problems = []
    for key in _LIST_SETTINGS:
        v = settings.get(key)
        if v is not None and not (isinstance(v, list) and all(isinstance(i, str) for i in v)):
            problems.append((key, "a list of names"))
            settings[key] = defaults.get(key, [])
    for key in _DICT_SETTINGS:
        v = settings.get(key)
        if v is not None and not isinstance(v, dict):
            problems.append((key, "a mapping"))
            settings[key] = defaults.get(key, {})
    for key in _SCALAR_SETTINGS:
        v = settings.get(key)
        if isinstance(v, dict | list):
            problems.append((key, "a single value"))
            settings[key] = defaults.get(key, "")
        elif v is None:
            settings[key] = defaults.get(key, "")
        elif not isinstance(v, str):
            settings[key] = str(v).lower() if isinstance(v, bool) else str(v)
    return problems


def cluster_settings(view: InventoryView) -> dict[str, Any]:
    """Effective cluster-wide settings: role defaults < nxprovision defaults < inventory (first host)."""
    settings: dict[str, Any] = dict(role_defaults())
    settings.update(DEFAULTS)
    defaults = dict(settings)
    hosts = view.groups.get("all") or list(view.hostvars)
    if hosts:
        first = view.hostvars.get(hosts[0], {})
        settings.update(first)
    settings["_type_problems"] = _type_problems(settings, defaults)
    for product, base in VENDOR_BASE_URLS.items():
        settings.setdefault(f"{product}_download_base_url", base)
        if not settings.get(f"{product}_download_base_url"):
            settings[f"{product}_download_base_url"] = base
    return settings


def build_cluster(view: InventoryView) -> Cluster:
    """Derive everything from the inventory. Never raises on bad input: rules report it."""
    settings = cluster_settings(view)
    arch = str(settings.get("nx_architecture", ""))
    groups = view.groups
    all_hosts = list(dict.fromkeys(groups.get("all") or list(view.hostvars)))
    hosts = {
        h: Host(h, _host_address(view.hostvars.get(h, {}), h),
                [g for g, members in groups.items() if h in members and g not in ("all", "ungrouped")],
                view.hostvars.get(h, {}))
        for h in all_hosts
    }
    db_flavour = str(settings.get("nx_database") or "")
    if db_flavour not in ("postgresql", "mongodb"):
        db_flavour = "mongodb" if groups.get("mongodb") and not groups.get("postgresql") else "postgresql"
    fronts = groups.get("nuxeo_front", [])
    workers = [h for h in groups.get("nuxeo_worker", []) if h not in fronts]

    def hs(host: str, key: str) -> Any:
        return host_setting(view, settings, host, key)

    nodes: list[NuxeoNode] = []
    for role, members in (("front", fronts), ("worker", workers)):
        for h in members:
            node_id = str(hs(h, "nuxeo_cluster_nodeid") or _sanitize_id(h))
            route = str(hs(h, "nuxeo_jvm_route") or node_id)
            nodes.append(NuxeoNode(h, hosts[h].address if h in hosts else h, role, node_id, route,
                                   _int(hs(h, "nuxeo_http_port"), 8080)))

    kafka_hosts = groups.get("kafka", [])
    brokers = []
    for i, h in enumerate(kafka_hosts):
        brokers.append(KafkaBroker(h, hosts[h].address if h in hosts else h,
                                   _int(hs(h, "kafka_node_id"), i + 1),
                                   _int(hs(h, "kafka_port"), 9092), _int(hs(h, "kafka_controller_port"), 9093)))

    cluster = Cluster(
        view=view, architecture=arch, settings=settings, hosts=hosts, nuxeo_nodes=nodes,
        lb_hosts=groups.get("loadbalancers", []), database=db_flavour,
        db_hosts=groups.get(db_flavour, []), search_hosts=groups.get("opensearch", []),
        kafka_brokers=brokers, zookeeper_hosts=groups.get("zookeeper", []),
        s3_hosts=groups.get("s3", []), etcd_hosts=groups.get("etcd", []),
        monitoring_hosts=groups.get("monitoring", []),
    )
    cluster.derived = _derive(cluster)
    cluster.derived["firewall"] = firewall(cluster)  # reads the other derived values
    for node in cluster.nuxeo_nodes:
        node.conf = nuxeo_conf(cluster, node)
    return cluster


def _addr(cluster: Cluster, host: str) -> str:
    return cluster.hosts[host].address if host in cluster.hosts else host


def kafka_mode(cluster: Cluster) -> str:
    mode = str(cluster.settings.get("kafka_mode", "auto"))
    if mode in ("kraft", "zookeeper"):
        return mode
    v = cluster.nuxeo_version
    return "kraft" if v is None or supports_kraft(v) else "zookeeper"


def _derive(c: Cluster) -> dict[str, Any]:
    s = c.settings
    public = urlsplit(str(s.get("nx_public_url") or ""))
    public_port = public.port or (443 if public.scheme == "https" else 80)
    # First: which links use TLS decides the scheme of the search URLs, the S3 endpoint and Kafka's listener.
    tls = _tls(c, public.hostname or "")

    # Database
    db: dict[str, Any] = {"flavour": c.database, "hosts": [], "primary": None, "replicas": []}
    if c.database == "postgresql" and c.db_hosts:
        explicit = [h for h in c.db_hosts if c.hosts.get(h) and c.hosts[h].vars.get("postgresql_primary")]
        primary = explicit[0] if explicit else c.db_hosts[0]
        port = _int(s.get("postgresql_port"), 5432)
        db.update(
            hosts=list(c.db_hosts), primary=primary, replicas=[h for h in c.db_hosts if h != primary],
            port=port, address=_addr(c, primary), version=str(s.get("postgresql_version")),
            name=s.get("nuxeo_db_name", "nuxeo"), user=s.get("nuxeo_db_user", "nuxeo"),
            hba_clients=sorted({_addr(c, n.host) for n in c.nuxeo_nodes}),
            replication_clients=sorted({_addr(c, h) for h in c.db_hosts if h != primary}),
            # Sized with room for nodes added later: max_connections only changes with a server restart, and
            # add-node must not restart the primary under load.
            max_connections=max(len(c.nuxeo_nodes), _int(s.get("postgresql_nuxeo_nodes_capacity"), 8))
            * (_int(s.get("nuxeo_db_max_pool_size"), 100) + _int(s.get("nuxeo_vcs_max_pool_size"), 20))
            + _int(s.get("postgresql_max_connections_reserve"), 20),
            tuning_tiers=PG_TUNING_TIERS,
        )
        db["manager"] = "streaming"
        if _patroni_managed(c):
            db.update(_patroni(c, port, primary))
    elif c.database == "mongodb" and c.db_hosts:
        port = _int(s.get("mongodb_port"), 27017)
        rs = str(s.get("mongodb_replica_set", "rs0")) if len(c.db_hosts) > 1 else ""
        # Every host runs mongod, a member of the replica set the first host initiates.
        servers = list(c.db_hosts)
        members = [f"{_addr(c, h)}:{port}" for h in servers]
        db.update(hosts=list(c.db_hosts), servers=servers, primary=c.db_hosts[0], replicas=servers[1:], port=port,
                  members=members, replica_set=rs, name=s.get("nuxeo_db_name", "nuxeo"),
                  user=s.get("nuxeo_db_user", "nuxeo"), version=str(s.get("mongodb_version")),
                  archives=host_archives(c, "mongodb", str(s.get("mongodb_version")), servers))

    # Search
    search_port = _int(s.get("opensearch_http_port"), 9200)
    search_scheme = "https" if tls["search"] else "http"
    search = {
        "distribution": s.get("search_distribution"), "version": str(s.get("search_version")),
        "hosts": list(c.search_hosts), "http_port": search_port,
        "transport_port": _int(s.get("opensearch_transport_port"), 9300),
        "urls": [f"{search_scheme}://{_addr(c, h)}:{search_port}" for h in c.search_hosts],
        # REST over https with the node certificates (and TLS between the nodes); clients verify with the CA
        "tls": tls["search"],
        "ca_file": tls["ca_path"] if tls["search"] else "",
        "seed_hosts": [_addr(c, h) for h in c.search_hosts],
        "initial_cluster_managers": list(c.search_hosts),
        "index_name": s.get("nuxeo_search_index_name", "nuxeo"),
        # -1 (the default): one replica of each shard once there are two search nodes.
        "replicas": (r if (r := _int(s.get("nuxeo_search_index_replicas"), -1)) >= 0
                     else min(1, max(0, len(c.search_hosts) - 1))),
        "cluster_name": f"{s.get('nx_cluster_name', 'nuxeo')}-search",
        "archives": host_archives(c, search_product(s), str(s.get("search_version")), c.search_hosts),
        # Heap: half the host's RAM, at most 31 GiB (compressed oops), at least 512 MiB [doc: half RAM].
        "heap_percent": 50, "heap_max_mb": 31744, "heap_min_mb": 512,
    }
    search["security"] = _search_security(c, search, tls)

    # Kafka
    n_brokers = len(c.kafka_brokers)
    rf = min(3, n_brokers) if n_brokers else 0
    mode = kafka_mode(c)
    kafka = {
        "mode": mode, "version": str(s.get("kafka_version")),
        "brokers": [{"host": b.host, "address": b.address, "node_id": b.node_id, "port": b.port,
                     "controller_port": b.controller_port} for b in c.kafka_brokers],
        "bootstrap_servers": ",".join(f"{b.address}:{b.port}" for b in c.kafka_brokers),
        # The client (and inter-broker) listener: SSL with the broker certificates when Kafka TLS is on.
        "tls": tls["kafka"],
        "protocol": "SSL" if tls["kafka"] else "PLAINTEXT",
        "ca_file": tls["ca_path"] if tls["kafka"] else "",
        "controller_quorum_voters": ",".join(
            f"{b.node_id}@{b.address}:{b.controller_port}" for b in c.kafka_brokers) if mode == "kraft" else "",
        "cluster_id": _kafka_cluster_id(str(s.get("nx_cluster_name", "nuxeo"))),
        "replication_factor": rf,
        "min_insync_replicas": max(1, rf - 1) if rf else 0,
        "topic_prefix": f"{s.get('nx_cluster_name', 'nuxeo')}-",
        "zookeeper_connect": ",".join(
            f"{_addr(c, h)}:{_int(s.get('zookeeper_client_port'), 2181)}" for h in c.zookeeper_hosts),
        "zookeeper_ids": {h: i + 1 for i, h in enumerate(c.zookeeper_hosts)},
        "zookeeper_servers": [{"id": i + 1, "host": h, "address": _addr(c, h)}
                              for i, h in enumerate(c.zookeeper_hosts)],
        "archive_url": artifact_url(str(s.get("kafka_download_base_url") or ""), "kafka",
                                    str(s.get("kafka_version"))),
        "archive_checksum": _checksum(s, "kafka", artifact_url(str(s.get("kafka_download_base_url") or ""),
                                                                "kafka", str(s.get("kafka_version")))),
        "archive_dir": archive_root_dir("kafka", str(s.get("kafka_version"))),
    }

    # S3
    s3_mode = str(s.get("s3_mode", "seaweedfs"))
    if s3_mode == "external":
        endpoint = str(s.get("s3_endpoint") or "")
    elif c.s3_hosts:
        scheme = "https" if tls["s3"] else "http"
        endpoint = f"{scheme}://{_addr(c, c.s3_hosts[0])}:{_int(s.get('seaweedfs_s3_port'), 8333)}"
    else:
        endpoint = ""
    s3 = {"mode": s3_mode, "endpoint": endpoint, "bucket": s.get("s3_bucket"), "region": s.get("s3_region"),
          # the self-hosted store serves its S3 API over https only; every client verifies it with the CA
          "tls": tls["s3"], "ca_file": tls["ca_path"] if tls["s3"] else "",
          "hosts": list(c.s3_hosts), "version": str(s.get("seaweedfs_version") or ""),
          # dir empty: the archive's members are the release (weed at its root), unpacked into a versioned folder
          "archives": host_archives(c, "seaweedfs", str(s.get("seaweedfs_version") or ""),
                                    c.s3_hosts if s3_mode == "seaweedfs" else []),
          "master_peers": [f"{_addr(c, h)}:{_int(s.get('seaweedfs_master_port'), 9333)}" for h in c.s3_hosts],
          # SeaweedFS's master and volume servers answer HTTP only to these addresses ([guard] white_list): the
          # store's own hosts talk to each other; every client goes through the S3 gateway with its keys.
          "white_list": sorted({_addr(c, h) for h in c.s3_hosts}
                               | {str(a) for a in (s.get("seaweedfs_white_list_extra") or [])}),
          # gRPC between master, volume, filer and S3 gateway with mutual TLS (the cluster CA): it has no other
          # authentication, and it hands out whole volumes. Only with the cluster's certificates (nx_tls_s3).
          "grpc_tls": tls["s3"],
          # ... and only from certificates naming one of the store's hosts (their common name).
          "grpc_common_names": [tls["certs"][h]["common_name"] for h in c.s3_hosts if h in tls["certs"]]}

    lb = {
        "hosts": list(c.lb_hosts), "public_url": s.get("nx_public_url"), "frontend_port": public_port,
        "public_host": public.hostname, "scheme": public.scheme,
        "backends": [{"name": n.jvm_route, "host": n.host, "address": n.address, "port": n.port}
                     for n in c.nuxeo_nodes if n.role == "front"],
        "vip": str(s.get("nx_vip") or "") if len(c.lb_hosts) > 1 else "",
        "vrrp": _vrrp(c),
        # The stats page (haproxy_stats_enabled, cluster-wide) is served over TLS with the load balancer's
        # certificate when the frontend has one.
        "stats": {"enabled": _bool(s.get("haproxy_stats_enabled", True)), "tls": tls["lb"]},
    }
    # The public frontend listens on the load balancer's cluster address; on every address only when a virtual IP
    # moves between the load balancers (or as the operator lists in haproxy_bind_addresses).
    lb["bind"] = {h: [str(a) for a in (c.hosts[h].vars.get("haproxy_bind_addresses") or [])]
                  or (["*"] if lb["vip"] else [_addr(c, h)]) for h in c.lb_hosts}
    # where this host's own checks (the haproxy role's wait, keepalived's track script) knock on the frontend
    lb["probe"] = {h: "127.0.0.1" if a[0] == "*" else a[0] for h, a in lb["bind"].items()}

    version = c.nuxeo_version
    search_packages = nuxeo_search_packages(c)
    packages = list(s.get("nuxeo_packages") or [])
    packages += [p for p in (search_packages.get("client_package"), search_packages.get("audit_package"))
                 if p and p not in packages]
    nuxeo = {
        "version": str(s.get("nuxeo_version")),
        "java": java_for(version) if version else "17",
        "packages": packages,
        # LTS 2025 on: the search client and audit packages chosen ({} before: both are built in)
        "search_packages": search_packages,
        "templates": nuxeo_templates(c),
        "cluster_enabled": len(c.nuxeo_nodes) > 1,
        "distribution_url": artifact_url(str(s.get("nuxeo_download_base_url") or ""), "nuxeo",
                                         str(s.get("nuxeo_version"))),
        "package_urls": {p: artifact_url(str(s.get("nuxeo_download_base_url") or ""), "nuxeo_package",
                                         str(s.get("nuxeo_version")), p)
                         for p in packages},
        "distribution_checksum": _checksum(s, "nuxeo", artifact_url(str(s.get("nuxeo_download_base_url") or ""),
                                                                     "nuxeo", str(s.get("nuxeo_version")))),
        "package_checksums": {p: archive_checksum(
            artifact_url(str(s.get("nuxeo_download_base_url") or ""), "nuxeo_package", str(s.get("nuxeo_version")),
                         p), _package_pins(s).get(p, "")) for p in packages},
        "archive_dir": archive_root_dir("nuxeo", str(s.get("nuxeo_version"))),
        "transaction_timeout": _int(s.get("nuxeo_transaction_timeout"), 300),
        # the Management REST API's repository reindex (doc.nuxeo.com REST API reference: "Search Endpoint", since
        # LTS 2025, which supersedes "Elasticsearch Endpoint"); its bulk status is read at management/bulk/<id>
        "reindex_path": "/management/search/reindex" if version and version.lts >= 2025
        else "/management/elasticsearch/reindex",
    }
    if tls["postgresql"] and c.database == "postgresql" and c.db_hosts:
        db["ssl"] = True
        db["jdbc_url"] = _jdbc_with_tls(db.get("jdbc_url") or (
            f"jdbc:postgresql://{db['address']}:{db['port']}/{db['name']}"), tls["ca_path"])
    else:
        db["ssl"] = False
    if tls["lb"]:
        lb["redirect_port"] = _int(s.get("haproxy_http_port"), 80)
        lb["cert_path"] = tls["certs"].get(c.lb_hosts[0], {}).get("paths", {}).get("haproxy", {}).get("cert", "") \
            if c.lb_hosts else ""
    else:
        lb["redirect_port"] = 0
    return {"db": db, "search": search, "kafka": kafka, "s3": s3, "lb": lb, "nuxeo": nuxeo, "etcd": _etcd(c),
            "java": {h: _java(c, h, nuxeo["java"]) for h in c.hosts},
            "tls": tls, "backup": _backup(c, db, s3, search, tls), "monitoring": _monitoring(c, tls, lb, db, search)}


# --------------------------------------------------------------------------- monitoring


def _monitoring(c: Cluster, tls: dict[str, Any], lb: dict[str, Any], db: dict[str, Any],
                search: dict[str, Any]) -> dict[str, Any]:
    """Prometheus and Alertmanager on the `monitoring` host, the node exporter on every host, and the scrape
    targets: the one list the monitoring role writes into prometheus.yml (and add-node / remove-node change with
    the inventory). Off (enabled false, no targets) while the group is empty."""
    s = c.settings
    hosts = list(c.monitoring_hosts)
    if not hosts:
        return {"enabled": False, "hosts": [], "host": "", "tls": False, "scheme": "http", "jobs": [],
                "search_exporters": []}
    host = hosts[0]
    scheme = "https" if tls["monitoring"] else "http"
    prometheus_port = _int(s.get("monitoring_prometheus_port"), 9090)
    alertmanager_port = _int(s.get("monitoring_alertmanager_port"), 9095)
    node_port = _int(s.get("monitoring_node_exporter_port"), 9100)
    blackbox_port = _int(s.get("monitoring_blackbox_port"), 9115)
    postgres_port = _int(s.get("monitoring_postgres_exporter_port"), 9187)
    postgres = c.database == "postgresql" and bool(c.db_hosts)

    user = str(s.get("monitoring_user") or "monitoring")

    def target(h: str, port: int) -> dict[str, Any]:
        return {"host": h, "address": f"{_addr(c, h)}:{port}"}

    # Every job but HAProxy's authenticates with the monitoring user (the vault's nx_secret_monitoring_password);
    # HAProxy's exporter sits on its stats frontend, behind the stats user and password.
    jobs = [
        {"name": "prometheus", "scheme": scheme, "auth": "monitoring", "user": user, "metrics_path": "/metrics",
         "targets": [target(host, prometheus_port)]},
        {"name": "alertmanager", "scheme": scheme, "auth": "monitoring", "user": user, "metrics_path": "/metrics",
         "targets": [target(host, alertmanager_port)]},
        {"name": "node", "scheme": scheme, "auth": "monitoring", "user": user, "metrics_path": "/metrics",
         "targets": [target(h, node_port) for h in sorted(c.hosts)]},
    ]
    if postgres:
        # Debian's postgres exporter on each database host, reading its local PostgreSQL (replication lag)
        jobs.append({"name": "postgres", "scheme": scheme, "auth": "monitoring", "user": user,
                     "metrics_path": "/metrics", "targets": [target(h, postgres_port) for h in c.db_hosts]})
    if c.nuxeo_nodes:
        # each node's runningstatus as users' requests would meet it, probed by the blackbox exporter on the
        # monitoring host (probe_success, the NxRunningstatusFailing alert): the target is the probed URL
        jobs.append({"name": "nuxeo_runningstatus", "scheme": scheme, "auth": "monitoring", "user": user,
                     "metrics_path": "/probe",
                     "probe": {"module": "nuxeo_runningstatus", "exporter": f"{_addr(c, host)}:{blackbox_port}"},
                     "targets": [{"host": n.host, "address": f"http://{n.address}:{n.port}/nuxeo/runningstatus"}
                                 for n in c.nuxeo_nodes]})
    nuxeo_metrics = {n.host: f"{n.address}:{_int(host_setting(c.view, s, n.host, 'nuxeo_metrics_port'), 9464)}"
                     for n in c.nuxeo_nodes}
    if c.nuxeo_nodes:
        # Nuxeo's own Prometheus reporter on every node, front and worker (documents, requests, work queues,
        # stream lag). Nuxeo serves it on every address over plain HTTP without authentication and has no option
        # for either: no credentials to send, and the host firewall admits the monitoring host only.
        jobs.append({"name": "nuxeo", "scheme": "http", "auth": "none", "user": "", "metrics_path": "/metrics",
                     "targets": [{"host": h, "address": a} for h, a in nuxeo_metrics.items()]})
    patroni = db.get("patroni") or {}
    if patroni:
        # Patroni's own /metrics (patroni_primary, patroni_cluster_unlocked: NxPatroniWithoutLeader) on its REST
        # port, over https with the cluster CA when the REST API has TLS. Patroni answers GET requests without
        # its REST password (the password guards the changing calls), so Prometheus holds no Patroni secret.
        jobs.append({"name": "patroni", "scheme": "https" if patroni["rest_tls"] else "http", "auth": "none",
                     "user": "", "metrics_path": "/metrics",
                     "targets": [target(m["host"], patroni["rest_port"]) for m in patroni["members"]]})
    search_exporters = _search_exporters(c, search)
    if search_exporters:
        # Debian's elasticsearch exporter (it reads OpenSearch too), one per search node, on the monitoring host:
        # its listener has no TLS or authentication in Debian 12's release, so it answers on the loopback only and
        # Prometheus scrapes it there; it reads its node over https as the search user `monitoring_user`.
        jobs.append({"name": "search", "scheme": "http", "auth": "none", "user": "", "metrics_path": "/metrics",
                     "targets": [{"host": e["host"], "address": e["listen"]} for e in search_exporters]})
    haproxy = bool(c.lb_hosts) and lb["stats"]["enabled"]
    if haproxy:
        jobs.append({"name": "haproxy", "scheme": "https" if lb["stats"]["tls"] else "http", "auth": "haproxy",
                     "user": str(s.get("haproxy_stats_user") or "admin"), "metrics_path": "/metrics",
                     "targets": [target(h, _int(host_setting(c.view, s, h, "haproxy_stats_port"), 8404))
                                 for h in c.lb_hosts]})
    return {
        "enabled": True,
        "hosts": hosts,
        "user": user,
        "host": host,
        "address": _addr(c, host),
        "tls": tls["monitoring"],
        "scheme": scheme,
        "prometheus_port": prometheus_port,
        "alertmanager_port": alertmanager_port,
        "node_exporter_port": node_port,
        "blackbox_port": blackbox_port,
        "postgres_exporter": postgres,
        "postgres_exporter_bind": {h: f"{_addr(c, h)}:{postgres_port}" for h in c.db_hosts} if postgres else {},
        "prometheus_url": f"{scheme}://{_addr(c, host)}:{prometheus_port}",
        "alertmanager_url": f"{scheme}://{_addr(c, host)}:{alertmanager_port}",
        # where each host's node exporter listens: its cluster address, never every address
        "node_exporter_bind": {h: f"{_addr(c, h)}:{node_port}" for h in sorted(c.hosts)},
        "haproxy": haproxy,
        "search_exporters": search_exporters,
        # where each Nuxeo node's reporter answers (it listens on every address: Nuxeo has no bind option)
        "nuxeo_metrics": nuxeo_metrics,
        "ca_file": tls["ca_path"] if tls["monitoring"] else "",
        # the node exporter's textfile collector: playbooks outside the role (backup) write their metrics there
        "textfile_dir": str(s.get("monitoring_textfile_dir") or "/var/lib/prometheus/node-exporter"),
        "jobs": jobs,
    }


def _search_exporters(c: Cluster, search: dict[str, Any]) -> list[dict[str, Any]]:
    """One elasticsearch exporter per search node, all on the monitoring host's loopback (ports from
    monitoring_search_exporter_port up, in the order of the search group): each asks its own node, so a node that
    is down costs its own exporter only and the others still report the cluster's health."""
    base = _int(c.settings.get("monitoring_search_exporter_port"), 9120)  # the role default
    return [{"host": h, "instance": _sanitize_id(h), "listen": f"127.0.0.1:{base + i}", "url": url}
            for i, (h, url) in enumerate(zip(c.search_hosts, search["urls"], strict=True))]


# --------------------------------------------------------------------------- search users


def _search_security(c: Cluster, search: dict[str, Any], tls: dict[str, Any]) -> dict[str, Any]:
    """The security plugin's users and roles (it needs TLS: without search TLS the plugin stays off).

    Three internal users, each with its vault password (secret names only): `admin` for the role's own calls
    (health, secure settings, the security configuration), `nuxeo` for Nuxeo (its indices, no snapshot or cluster
    settings API) and `backup` for the audit index's snapshot repository and snapshots. The configuration is
    applied with the plugin's securityadmin tool and an admin client certificate (admin_dn), issued by the cluster
    CA on the search hosts.
    """
    s = c.settings
    enabled = bool(tls["search"])
    index = str(search.get("index_name") or "nuxeo")
    cluster_name = str(s.get("nx_cluster_name", "nuxeo"))
    admin_cn = f"{cluster_name}-search-admin"
    tls_dir = str(s.get("tls_dir") or "/etc/nxprovision/tls")
    return {
        "enabled": enabled,
        "admin_dn": f"CN={admin_cn}",
        "admin_common_name": admin_cn,
        "admin_cert": f"{tls_dir}/opensearch-admin.crt",
        "admin_key": f"{tls_dir}/opensearch-admin.key",
        "nodes_dn": [f"CN={h}" for h in c.search_hosts],
        "users": {
            "admin": {"secret": "nx_secret_search_admin_password", "role": "all_access",
                      "description": "nxprovision: the opensearch role's own calls"},
            "nuxeo": {"secret": "nx_secret_search_nuxeo_password", "role": "nxprovision_nuxeo",
                      "description": "Nuxeo's search, audit and sequence indices"},
            "backup": {"secret": "nx_secret_search_backup_password", "role": "nxprovision_backup",
                       "description": "the audit index's S3 snapshot repository and snapshots"},
            # the monitoring host's exporters: the cluster's health and statistics, nothing else
            **({str(s.get("monitoring_user") or "monitoring"): {
                "secret": "nx_secret_monitoring_password", "role": "nxprovision_monitoring",
                "description": "the monitoring host's exporters: cluster health and statistics"}}
               if c.monitoring_hosts else {}),
        },
        # Nuxeo's indices: <index>, <index>-audit, <index>-uidgen (and their aliases)
        "nuxeo_index_patterns": [f"{index}*"],
        "audit_index_patterns": [f"{index}-audit*"],
    }


# --------------------------------------------------------------------------- backups


def _backup(c: Cluster, db: dict[str, Any], s3: dict[str, Any], search: dict[str, Any],
            tls: dict[str, Any]) -> dict[str, Any]:
    """Backups in the order Nuxeo documents: the database (pgBackRest), then the binaries, then the audit index.

    The backup repository is a bucket of the cluster's S3 store (or of another endpoint): pgBackRest keeps its
    repository under `repo_path`, the binaries go to a content pool under `binaries_prefix` (Nuxeo names a blob by
    its digest, so a pool keeps one copy of each blob whatever the number of backups), and each backup's
    manifest under `manifests_prefix`.
    """
    s = c.settings
    endpoint = str(s.get("pgbackrest_s3_endpoint") or s3.get("endpoint") or "")
    wanted = str(s.get("pgbackrest_enabled", True)).lower() not in ("false", "0", "no", "off")
    enabled = wanted and c.database == "postgresql" and bool(db.get("primary")) and bool(endpoint)
    url = urlsplit(endpoint)
    stanza = _sanitize_id(str(s.get("pgbackrest_stanza") or s.get("nx_cluster_name") or "nuxeo"))
    proxy_port = _int(s.get("pgbackrest_tls_proxy_port"), 8443)
    # pgBackRest (2.45) speaks S3 over TLS only: a plain-http endpoint (the self-hosted SeaweedFS) is reached
    # through a local TLS proxy on each database host, whose certificate pgBackRest verifies.
    tls_proxy = url.scheme == "http"
    default_port = 443 if url.scheme == "https" else 80
    # The cluster's own store over TLS (nx.s3.tls): pgBackRest talks to it directly and verifies it with the cluster
    # CA (its certificate carries the address as a DNS name too: pgBackRest 2.45 checks DNS names only).
    own_tls = bool(s3.get("tls")) and endpoint == s3.get("endpoint")
    repo = {
        "endpoint": "localhost" if tls_proxy else (url.hostname or ""),
        # The proxy listens on IPv4 only: pgBackRest must not try ::1 for localhost.
        "connect_host": "127.0.0.1" if tls_proxy else "",
        "port": proxy_port if tls_proxy else (url.port or default_port),
        "upstream": f"{url.hostname}:{url.port or default_port}" if tls_proxy else "",
        # '' = the system's CA certificates (an external https endpoint)
        "ca_file": s3["ca_file"] if own_tls else "",
    }
    bucket = str(s.get("pgbackrest_s3_bucket") or f"{s3.get('bucket') or 'nuxeo'}-backup")
    return {
        "enabled": enabled,
        "tool": "pgbackrest",
        "stanza": stanza,
        "endpoint": endpoint,
        "bucket": bucket,
        "region": str(s.get("pgbackrest_s3_region") or s3.get("region") or "us-east-1"),
        "repo_path": "/pgbackrest",
        "binaries_prefix": "binaries/",
        "manifests_prefix": "manifests/",
        "source_bucket": s3.get("bucket"),
        "source_endpoint": s3.get("endpoint"),
        # CA certificate the S3 clients on the hosts verify the cluster's store with ('' = the system's)
        "ca_file": s3.get("ca_file") or "",
        "hosts": list(db.get("hosts", [])) if enabled else [],
        "primary": db.get("primary") if enabled else None,
        # Debian's cluster `main`, or Patroni's own data directory (roles/patroni).
        "data_dir": f"/var/lib/postgresql/{db.get('version')}/"
                    f"{'patroni' if db.get('manager') == 'patroni' else 'main'}",
        "archive_command": f"pgbackrest --stanza={stanza} archive-push %p",
        # A restore's recovery fetches the archived WAL with this (Patroni's custom bootstrap, roles/patroni).
        "archive_get_command": f'pgbackrest --stanza={stanza} archive-get %f "%p"',
        "tls_proxy": tls_proxy and enabled,
        "repo": repo,
        "retention_full": _int(s.get("pgbackrest_retention_full"), 2),
        # Where the binaries copy runs: a Nuxeo node always reaches the binary store, whatever the S3 mode.
        "copy_host": c.nuxeo_nodes[0].host if c.nuxeo_nodes else None,
        # Nuxeo's audit lives in the search cluster (audit.elasticsearch.enabled=true): `<index>-audit`.
        "audit_index": f"{search.get('index_name', 'nuxeo')}-audit",
        "audit_snapshot_repository": str(s.get("pgbackrest_search_repository") or ""),
        "audit_snapshot": _audit_snapshot(c, enabled, endpoint, bucket, repo["ca_file"], search, tls),
        "search_url": (search.get("urls") or [""])[0],
        "order": ["database", "binaries", "audit"],
    }


def _audit_snapshot(c: Cluster, backups: bool, endpoint: str, bucket: str, ca_file: str, search: dict[str, Any],
                    tls: dict[str, Any]) -> dict[str, Any]:
    """The search cluster's S3 snapshot repository for the audit index, in the backup bucket under its own prefix.

    Registered through the first search node (a repository is cluster-wide, and the backups talk to that same
    node). Its settings are written as OpenSearch answers them (strings):
    the role compares them as they are. Endpoint, protocol and path-style access are repository settings (the S3
    client's, overridden per repository), so opensearch.yml stays as it is; the keys go to the keystore. No region:
    the S3 client signs for the endpoint's own (an S3-compatible store takes any).
    """
    s = c.settings
    name = str(s.get("pgbackrest_search_repository") or "")
    url = urlsplit(endpoint)
    settings = {"bucket": bucket, "base_path": "audit-snapshots"}
    if url.hostname:
        settings.update(endpoint=f"{url.hostname}:{url.port or (443 if url.scheme == 'https' else 80)}",
                        protocol=url.scheme or "https", path_style_access="true")
    # https to the cluster's own store: OpenSearch's JVM trusts the cluster CA through a trust store of its own
    # (javax.net.ssl.trustStore); an external endpoint keeps the JVM's default CAs.
    home = str(s.get("opensearch_home") or "/opt/opensearch")
    truststore = ({"path": f"{home}/config/s3-truststore.jks", "type": "JKS", "ca_file": ca_file,
                   "password": tls["truststore"]["password"]} if ca_file and url.scheme == "https" else {})
    return {
        "enabled": backups and bool(name) and bool(c.search_hosts) and search.get("distribution") == "opensearch",
        "repository": name,
        "type": "s3",
        "settings": settings,
        # the S3 keys of the cluster (secret names; the values never leave the vault but into the keystore)
        "keystore": {"s3.client.default.access_key": "nx_secret_s3_access_key",
                     "s3.client.default.secret_key": "nx_secret_s3_secret_key"},
        "plugin": "repository-s3",
        "truststore": truststore,
        "host": c.search_hosts[0] if c.search_hosts else None,
        "url": (search.get("urls") or [""])[0],
    }


# --------------------------------------------------------------------------- TLS


def _bool(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes", "on")


def _jdbc_with_tls(url: str, ca_path: str) -> str:
    """pgjdbc's own TLS parameters: encrypt, check the chain against the cluster CA and the host name."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}ssl=true&sslmode=verify-full&sslrootcert={ca_path}"


def _tls(c: Cluster, public_host: str) -> dict[str, Any]:
    """Which hosts get which certificate, with which names, and where every file goes.

    Internal CA (default): `nxprovision certs init` keeps ca.crt and the vault-encrypted ca.key in the inventory
    folder, the tls role issues one certificate per server host with it. Operator certificates: a host's
    `nx_tls_cert_file` / `nx_tls_key_file` (paths on the controller) are installed as they are, and
    `nx_tls_ca_cert_file` is the CA that signed them."""
    s = c.settings
    enabled = _bool(s.get("nx_tls_enabled", False))
    tls_dir = str(s.get("tls_dir") or "/etc/nxprovision/tls")
    # Where PostgreSQL reads its certificate: beside its configuration, owned by postgres. Patroni (distributed)
    # writes PostgreSQL's settings itself and Debian's cluster `main` is dropped there, so its members keep theirs
    # beside Patroni's configuration.
    patroni = _patroni_managed(c)
    if patroni:
        pg_tls = f"{posixpath.dirname(str(s.get('patroni_config_path') or '/etc/patroni/config.yml'))}/tls"
    else:
        pg_tls = f"/etc/postgresql/{s.get('postgresql_version')}/main/tls"
    lb_https = enabled and str(s.get("nx_public_url") or "").startswith("https://")
    pg = enabled and c.database == "postgresql"
    # One switch per link, on by default with the cluster's TLS (nx_tls_search / nx_tls_kafka / nx_tls_s3: false
    # keeps that link plain). S3: only the self-hosted store; an external endpoint keeps its own certificate.
    search = enabled and _bool(s.get("nx_tls_search", True)) and bool(c.search_hosts)
    kafka = enabled and _bool(s.get("nx_tls_kafka", True)) and bool(c.kafka_brokers)
    s3 = (enabled and _bool(s.get("nx_tls_s3", True)) and str(s.get("s3_mode", "seaweedfs")) == "seaweedfs"
          and bool(c.s3_hosts))
    # Prometheus, Alertmanager and every host's node exporter serve https with the host's certificate
    monitoring = enabled and _bool(s.get("nx_tls_monitoring", True)) and bool(c.monitoring_hosts)
    broker_hosts = {b.host for b in c.kafka_brokers}
    nuxeo_hosts = {n.host for n in c.nuxeo_nodes}
    os_tls = f"{s.get('opensearch_home') or '/opt/opensearch'}/config/tls"
    kafka_tls = f"{s.get('kafka_config_dir') or '/etc/kafka'}/tls"
    sw_tls = f"{s.get('seaweedfs_config_dir') or '/etc/seaweedfs'}/tls"
    etcd_tls = "/etc/etcd/tls"
    certs: dict[str, Any] = {}
    for name, host in c.hosts.items():
        services = []
        if lb_https and name in c.lb_hosts:
            services.append("haproxy")
        if pg and name in c.db_hosts:
            services.append("postgresql")
        if search and name in c.search_hosts:
            services.append("opensearch")
        if kafka and name in broker_hosts:
            services.append("kafka")
        if s3 and name in c.s3_hosts:
            services.append("seaweedfs")
        # Kafka authenticates its clients by certificate (ssl.client.auth=required): each Nuxeo node has one
        if kafka and name in nuxeo_hosts:
            services.append("kafka-client")
        # Patroni's etcd: https with client certificates, between the members and from Patroni (roles/etcd).
        if pg and patroni and name in c.etcd_hosts:
            services.append("etcd")
        if monitoring:
            services.append("monitoring")
        if not services:
            continue
        dns = [name]
        ips: list[str] = []
        if _is_ip(host.address):
            ips.append(host.address)
        elif host.address not in dns:
            dns.append(host.address)
        if "haproxy" in services and public_host:
            if _is_ip(public_host):
                ips.append(public_host)
            else:
                dns.append(public_host)
        if "seaweedfs" in services and _is_ip(host.address) and host.address not in dns:
            # pgBackRest 2.45 matches the host it connects to against the certificate's DNS names only (never an
            # IP address entry): the S3 host's address is also written as a DNS name for it.
            dns.append(host.address)
        vip = str(s.get("nx_vip") or "")
        if "haproxy" in services and vip and len(c.lb_hosts) > 1:
            ips.append(vip)
        paths: dict[str, dict[str, str]] = {}
        if "haproxy" in services:
            # HAProxy loads <crt>.key beside the certificate by itself (ssl-load-extra-files).
            paths["haproxy"] = {"cert": "/etc/haproxy/tls/nuxeo.pem", "key": "/etc/haproxy/tls/nuxeo.pem.key"}
        if "postgresql" in services:
            paths["postgresql"] = {"cert": f"{pg_tls}/server.crt", "key": f"{pg_tls}/server.key"}
        # OpenSearch reads its PEM files inside its config directory, the key in PKCS#8.
        if "opensearch" in services:
            paths["opensearch"] = {"cert": f"{os_tls}/node.crt", "key": f"{os_tls}/node.key", "ca": f"{os_tls}/ca.crt"}
        # Kafka: a PEM key store (PKCS#8 key + certificate, assembled from keystore.d) and a PEM trust store
        # (ssl.keystore.type=PEM, ssl.truststore.type=PEM).
        if "kafka" in services:
            paths["kafka"] = {"cert": f"{kafka_tls}/keystore.d/2-cert.pem", "key": f"{kafka_tls}/keystore.d/1-key.pem",
                              "keystore": f"{kafka_tls}/keystore.pem", "ca": f"{kafka_tls}/ca.crt"}
        if "seaweedfs" in services:
            paths["seaweedfs"] = {"cert": f"{sw_tls}/s3.crt", "key": f"{sw_tls}/s3.key"}
        # Nuxeo's Kafka client reads a PKCS12 key store (a PEM one takes no store password, which Nuxeo always sets)
        if "kafka-client" in services:
            paths["kafka-client"] = {"keystore": f"{tls_dir}/kafka-client.p12"}
        # Debian's prometheus, prometheus-alertmanager and prometheus-node-exporter all run as user prometheus
        if "monitoring" in services:
            paths["monitoring"] = {"cert": "/etc/prometheus/tls/server.crt", "key": "/etc/prometheus/tls/server.key"}
        if "etcd" in services:
            paths["etcd"] = {"cert": f"{etcd_tls}/server.crt", "key": f"{etcd_tls}/server.key"}
        # Client certificates the cluster CA issues on the host besides its own (the search admin, securityadmin)
        clients = []
        if "opensearch" in services:
            admin_cn = f"{s.get('nx_cluster_name', 'nuxeo')}-search-admin"
            clients.append({"name": "opensearch-admin", "common_name": admin_cn,
                            "cert": f"{tls_dir}/opensearch-admin.crt", "key": f"{tls_dir}/opensearch-admin.key"})
        hv = host.vars
        # A certificate its host also presents as a TLS client carries clientAuth besides serverAuth: SeaweedFS's
        # servers (gRPC between themselves), Kafka's brokers (between themselves) and clients, OpenSearch's nodes
        # (transport), etcd's members (--peer-client-cert-auth), and Patroni's database hosts towards etcd.
        client_auth = (bool({"seaweedfs", "kafka", "kafka-client", "opensearch", "etcd"} & set(services))
                       or (patroni and "postgresql" in services))
        usages = ["serverAuth", "clientAuth"] if client_auth else ["serverAuth"]
        certs[name] = {
            "common_name": name,
            "dns": list(dict.fromkeys(dns)),
            "ips": list(dict.fromkeys(ips)),
            "services": services,
            "cert": f"{tls_dir}/{_sanitize_id(name)}.crt",
            "key": f"{tls_dir}/{_sanitize_id(name)}.key",
            # operator-provided certificate and key (controller paths); empty = issued by the internal CA
            "source_cert": str(hv.get("nx_tls_cert_file") or ""),
            "source_key": str(hv.get("nx_tls_key_file") or ""),
            "paths": paths,
            "usages": usages,
            "client_auth": client_auth,
            "clients": clients,
        }
    # The Nuxeo nodes' trust store (Java clients: the search REST client, Kafka, the AWS SDK): the cluster CA in a
    # JKS file the tls role writes itself (no keytool needed on the hosts). JKS because each of the three reads
    # it (KeyStore JKS; PKCS12 made by openssl without Java's trust attribute loads empty, and Nuxeo's search and
    # S3 clients take no PEM). Its password only guards the integrity of public data: a setting, not a secret.
    uses_truststore = search or kafka or s3
    return {
        "enabled": enabled,
        "lb": lb_https,
        "postgresql": pg,
        "search": search,
        "kafka": kafka,
        "s3": s3,
        "monitoring": monitoring,
        "truststore": {
            "path": f"{tls_dir}/truststore.jks" if uses_truststore else "",
            "type": "JKS",
            "password": str(s.get("nx_tls_truststore_password") or "changeit"),
            "hosts": [n.host for n in c.nuxeo_nodes] if uses_truststore else [],
        },
        "dir": tls_dir,
        "ca_path": f"{tls_dir}/ca.crt",
        # inventory-relative unless absolute; the tls role resolves them against inventory_dir
        "ca_cert_file": str(s.get("nx_tls_ca_cert_file") or ".pki/ca.crt"),
        "ca_key_file": str(s.get("nx_tls_ca_key_file") or ".pki/ca.key"),
        "cert_days": _int(s.get("nx_tls_cert_days"), 365),
        "renew_days": _int(s.get("nx_tls_renew_days"), 30),
        "hosts": sorted(c.hosts) if enabled else [],
        "certs": certs,
        "internal_ca": any(not v["source_cert"] for v in certs.values()),
    }


def _is_ip(value: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- HA (distributed architecture)


def _patroni_managed(c: Cluster) -> bool:
    """PostgreSQL HA: Patroni on etcd in the distributed architecture; the compact one keeps plain streaming."""
    return c.architecture == "distributed" and c.database == "postgresql" and len(c.etcd_hosts) >= 3


def _patroni(c: Cluster, port: int, primary: str) -> dict[str, Any]:
    """Patroni settings. Nuxeo reaches the leader with a multi-host JDBC URL (targetServerType=primary):
    no extra hop, and a load balancer failure never touches the database connections."""
    s = c.settings
    name = s.get("nuxeo_db_name", "nuxeo")
    rest_port = _int(s.get("patroni_rest_port"), 8008)
    # The REST API over https with the database host's certificate when the cluster has TLS (roles/patroni).
    rest_scheme = "https" if _patroni_etcd_tls(c) else "http"
    hosts = ",".join(f"{_addr(c, h)}:{port}" for h in c.db_hosts)
    return {
        "manager": "patroni",
        # Any host may be the leader: every database host must be allowed to stream from every other.
        "replication_clients": sorted({_addr(c, h) for h in c.db_hosts}),
        "jdbc_url": f"jdbc:postgresql://{hosts}/{name}?targetServerType=primary",
        "patroni": {
            "scope": f"{s.get('nx_cluster_name', 'nuxeo')}-postgresql",
            "namespace": "/nxprovision/",
            "rest_port": rest_port,
            "rest_tls": rest_scheme == "https",
            "rest_user": str(s.get("patroni_rest_user") or "patroni"),
            "members": [{"host": h, "name": _sanitize_id(h), "address": _addr(c, h),
                         "rest_url": f"{rest_scheme}://{_addr(c, h)}:{rest_port}"} for h in c.db_hosts],
            # nx.db.primary bootstraps the cluster alone, so the first leader is known; any host may lead later.
            "bootstrap_host": primary,
            "synchronous_mode": str(s.get("patroni_synchronous_mode", False)).lower() in ("true", "1", "yes"),
            "etcd_hosts": [f"{_addr(c, h)}:{_int(s.get('etcd_client_port'), 2379)}" for h in c.etcd_hosts],
            "etcd_protocol": "https" if _patroni_etcd_tls(c) else "http",
        },
    }


def _patroni_etcd_tls(c: Cluster) -> bool:
    """etcd and Patroni's REST API take TLS (client certificates for etcd) with the cluster's TLS: the database
    hosts, which run both, already get a certificate from the cluster CA then."""
    return _patroni_managed(c) and _bool(c.settings.get("nx_tls_enabled", False))


def _etcd(c: Cluster) -> dict[str, Any]:
    s = c.settings
    client_port = _int(s.get("etcd_client_port"), 2379)
    peer_port = _int(s.get("etcd_peer_port"), 2380)
    tls = _patroni_etcd_tls(c)
    scheme = "https" if tls else "http"
    members = [{"host": h, "name": _sanitize_id(h), "address": _addr(c, h),
                "peer_url": f"{scheme}://{_addr(c, h)}:{peer_port}",
                "client_url": f"{scheme}://{_addr(c, h)}:{client_port}"}
               for h in c.etcd_hosts]
    return {
        "hosts": list(c.etcd_hosts), "members": members, "client_port": client_port, "peer_port": peer_port,
        # https between the members and for clients, each side presenting a certificate of the cluster CA.
        "tls": tls,
        "initial_cluster": ",".join(f"{m['name']}={m['peer_url']}" for m in members),
        "endpoints": [m["client_url"] for m in members],
        "cluster_token": f"{s.get('nx_cluster_name', 'nuxeo')}-etcd",
    }


def _vrrp(c: Cluster) -> dict[str, Any]:
    """keepalived VRRP between the load balancers: unicast peers, the first LB preferred (highest priority)."""
    s = c.settings
    if len(c.lb_hosts) < 2:
        return {"enabled": False, "instances": []}
    cluster = str(s.get("nx_cluster_name", "nuxeo"))
    # Stable per cluster, so two clusters on one network segment do not share a router id by default.
    router_id = _int(s.get("keepalived_virtual_router_id"), 0) or (zlib.crc32(cluster.encode()) % 254 + 1)
    base = _int(s.get("keepalived_priority_base"), 150)
    return {
        "enabled": True,
        "router_id": router_id,
        "instance": f"{_sanitize_id(cluster)}_vip",
        "peers": [{"host": h, "address": _addr(c, h), "priority": max(1, base - 10 * i)}
                  for i, h in enumerate(c.lb_hosts)],
    }


# PostgreSQL tuning by host RAM (nuxeo-facts.md 2.3, Nuxeo's table for 4/8/16/32 GB). The role picks the
# last tier whose ram_mb the host reaches; the first tier (under 4 GB, lab and trial hosts) is [ours].
# max_connections is not here: it is sized on the cluster's pools (db.max_connections).
PG_TUNING_TIERS: list[dict[str, Any]] = [
    {"ram_mb": 0, "shared_buffers": "256MB", "effective_cache_size": "768MB", "work_mem": "8MB",
     "maintenance_work_mem": "128MB"},
    {"ram_mb": 3584, "shared_buffers": "1GB", "effective_cache_size": "1536MB", "work_mem": "12MB",
     "maintenance_work_mem": "512MB"},
    {"ram_mb": 7168, "shared_buffers": "2GB", "effective_cache_size": "4GB", "work_mem": "12MB",
     "maintenance_work_mem": "1GB"},
    {"ram_mb": 14336, "shared_buffers": "4GB", "effective_cache_size": "8GB", "work_mem": "16MB",
     "maintenance_work_mem": "1GB"},
    {"ram_mb": 28672, "shared_buffers": "8GB", "effective_cache_size": "16GB", "work_mem": "20MB",
     "maintenance_work_mem": "1GB"},
]


def search_product(s: dict[str, Any]) -> str:
    return "elasticsearch" if s.get("search_distribution") == "elasticsearch" else "opensearch"


def host_platform(c: Cluster, host: str) -> Platform:
    """The OS release and CPU architecture the inventory declares for a host (nx_os_release, nx_cpu_arch): the model
    runs on the controller before any fact, so the archive names come from these; prechecks and the common role's
    preflight hold the host to them."""
    release = str(host_setting(c.view, c.settings, host, "nx_os_release") or "")
    arch = str(host_setting(c.view, c.settings, host, "nx_cpu_arch") or DEFAULT_CPU_ARCH)
    return Platform(os_release=release, cpu_arch=arch)


def host_archives(c: Cluster, product: str, version: str, hosts: list[str]) -> dict[str, dict[str, str]]:
    """host -> the release archive of a product built for that host's platform: url, checksum (a pinned
    <product>_archive_checksum, per host or group, else the one published beside it) and the top directory."""
    base = str(c.settings.get(f"{product}_download_base_url") or "")
    out: dict[str, dict[str, str]] = {}
    for h in hosts:
        platform = host_platform(c, h)
        url = artifact_url(base, product, version, platform=platform)
        pinned = host_setting(c.view, c.settings, h, f"{product}_archive_checksum") or ""
        out[h] = {"url": url, "checksum": archive_checksum(url, pinned),
                  "dir": archive_root_dir(product, version, platform)}
    return out


JAVA_HOMES = "/opt/nxprovision/java"


def _java(c: Cluster, host: str, nuxeo_java: str) -> dict[str, Any]:
    """The Java runtime of a host (used where its components need one, common_java_components): an apt package,
    or on a Nuxeo node whose OS release ships no OpenJDK of Nuxeo's Java, a JRE archive from the operator's mirror
    (java_download_base_url, java_version) unpacked under JAVA_HOMES, which nuxeo.conf's JAVA_HOME names."""
    def setting(key: str) -> str:
        return str(host_setting(c.view, c.settings, host, key) or "")

    known = load_compat().os_releases.get(setting("nx_os_release"))
    shipped = list(known.openjdk) if known else [nuxeo_java]
    out: dict[str, Any] = {"major": nuxeo_java, "package": "", "archive": {}, "home": ""}
    if setting("common_java_package"):
        out["package"] = setting("common_java_package")
    elif nuxeo_java in shipped:
        out["package"] = f"openjdk-{nuxeo_java}-jre-headless"
    elif c.node(host) is not None:
        if "kafka" in c.hosts[host].groups:
            # a broker beside the node (single architecture): Kafka takes the release's own OpenJDK from PATH
            out["package"] = f"openjdk-{shipped[0]}-jre-headless"
        version = setting("java_version")
        platform = host_platform(c, host)
        url = artifact_url(setting("java_download_base_url"), "java", version, platform=platform)
        root = archive_root_dir("java", version, platform)
        out["archive"] = {"version": version, "url": url, "checksum": archive_checksum(url, setting(
            "java_archive_checksum")), "dir": root}
        out["home"] = f"{JAVA_HOMES}/{root}"
    else:
        # a Kafka host: Kafka runs on any Java from 11, so the release's own OpenJDK
        out.update(major=shipped[0], package=f"openjdk-{shipped[0]}-jre-headless")
    return out


def _checksum(s: dict[str, Any], product: str, url: str) -> str:
    """What get_url checks the archive against: the inventory's <product>_archive_checksum, else the published
    <url>.sha512 (nxprovision.model.artifacts)."""
    return archive_checksum(url, s.get(f"{product}_archive_checksum") or "")


def _package_pins(s: dict[str, Any]) -> dict[str, str]:
    pins = s.get("nuxeo_package_checksums")
    return {str(k): str(v) for k, v in pins.items()} if isinstance(pins, dict) else {}


def nuxeo_search_packages(c: Cluster) -> dict[str, str]:
    """LTS 2025 on: the search client and audit packages the nodes install, from nuxeo_search_client and
    nuxeo_audit_backend (validate checks the choice against the compatibility matrix); {} before LTS 2025.

    Each package deploys a template of its own (doc.nuxeo.com, Search Setup and the audit backend pages):
    <key>-search-client and <key>-audit; the MongoDB and SQL audit templates' names are inferred the same way.
    """
    v = c.nuxeo_version
    m = load_compat().lts.get(v.lts) if v else None
    if m is None or not m.packaged_search:
        return {}
    host = c.nuxeo_nodes[0].host if c.nuxeo_nodes else None

    def setting(key: str) -> str:
        return str((host_setting(c.view, c.settings, host, key) if host else c.settings.get(key)) or "auto")

    dist, sv = str(c.settings.get("search_distribution")), str(c.settings.get("search_version"))
    client = m.pick_search_client(setting("nuxeo_search_client"), dist, sv) if c.search_hosts else None
    out = {"client": "", "client_package": "", "client_template": "",
           "audit": "", "audit_package": "", "audit_template": "", "audit_store": "memory"}
    if client:
        out.update(client=client.key, client_package=client.package, client_template=f"{client.key}-search-client")
    chosen = setting("nuxeo_audit_backend")
    audit = out["client"] if chosen == "auto" else chosen
    backends = m.audit_backends()
    if audit in backends:
        package, needs = backends[audit]
        out.update(audit=audit, audit_package=package, audit_template=f"{audit}-audit", audit_store=needs)
    return out


def nuxeo_templates(c: Cluster) -> list[str]:
    packaged = nuxeo_search_packages(c)
    # LTS 2025: the mongodb template stands alone (doc.nuxeo.com, upgrade from LTS 2023 to LTS 2025)
    tpl = [] if (packaged and c.database == "mongodb") else ["default"]
    if c.database == "mongodb":
        tpl.append("mongodb")
    else:
        tpl.append("postgresql-quartz-cluster" if len(c.nuxeo_nodes) > 1 else "postgresql")
    # The S3 package adds s3binaries at install; a rendered nuxeo.conf must keep it or the next render drops it.
    if "amazon-s3-online-storage" in (c.settings.get("nuxeo_packages") or []) or c.derived.get("s3", {}).get(
            "endpoint"):
        tpl.append("s3binaries")
    # Their packages add these templates at install, as the S3 one does s3binaries: the rendered nuxeo.conf keeps them
    tpl += [t for t in (packaged.get("client_template"), packaged.get("audit_template")) if t]
    return tpl


def _heap_opts(c: Cluster, node: NuxeoNode) -> str:
    heap = _int(host_setting(c.view, c.settings, node.host, "nuxeo_heap_mb"), 0)
    base = ("-Dfile.encoding=UTF-8 -Dmail.mime.decodeparameters=true -Dnet.sf.ehcache.skipUpdateCheck=true "
            "-Djava.util.Arrays.useLegacyMergeSort=true -Dsun.net.http.retryPost=false")
    if heap > 0:
        return f"-Xms{heap}m -Xmx{heap}m {base}"
    return f"-XX:InitialRAMPercentage=50 -XX:MaxRAMPercentage=50 {base}"


def _search_conf_2025(put: Any, search: dict[str, Any], truststore: dict[str, Any], packaged: dict[str, str]) -> None:
    """LTS 2025's search and audit keys, those of the chosen packages (doc.nuxeo.com: Search Setup, OpenSearch 1.x
    Audit Backend): nuxeo.<key>.client.*, nuxeo.search.client.default.<key>.*, nuxeo.audit.backend.default.<key>.*.
    None of the elasticsearch.* / audit.elasticsearch.* keys: they have no effect since LTS 2025. The trust store
    and replica key names follow the client's naming [inferred: no public 2025 template to read them from]."""
    key = packaged.get("client")
    if key:
        client = f"nuxeo.{key}.client."
        put(client + "server", ",".join(search["urls"]))
        if search.get("tls"):
            put(client + "trustStorePath", truststore["path"])
            put(client + "trustStorePassword", truststore["password"])
            put(client + "trustStoreType", truststore["type"])
        if search.get("security", {}).get("enabled"):
            put(client + "username", "nuxeo")
            put(client + "password", SECRET_PLACEHOLDER, "nx_secret_search_nuxeo_password")
        put(f"nuxeo.search.client.default.{key}.index.name", search["index_name"])
        put(f"nuxeo.search.client.default.{key}.index.numberOfReplicas", search["replicas"])
    if packaged.get("audit_store") == "search" and packaged.get("audit"):
        # the audit index beside the repository's, as before (backups snapshot `<index>-audit`)
        put(f"nuxeo.audit.backend.default.{packaged['audit']}.index.name", f"{search['index_name']}-audit")


def nuxeo_conf(c: Cluster, node: NuxeoNode) -> list[ConfItem]:
    """Every nuxeo.conf key of one node, in the order written (nuxeo-facts.md 4.6)."""
    s = c.settings
    d = c.derived

    def hs(key: str) -> Any:
        return host_setting(c.view, s, node.host, key)

    items: list[ConfItem] = []

    def put(key: str, value: Any, secret: str | None = None) -> None:
        if isinstance(value, bool):
            value = "true" if value else "false"
        items.append(ConfItem(key, str(value), secret))

    if d["java"][node.host]["home"]:
        # a JRE from the operator's mirror: nuxeoctl takes JAVA_HOME from nuxeo.conf before looking for a java
        put("JAVA_HOME", d["java"][node.host]["home"])
    put("JAVA_OPTS", _heap_opts(c, node))
    put("nuxeo.data.dir", hs("nuxeo_data_dir"))
    put("nuxeo.log.dir", hs("nuxeo_log_dir"))
    put("nuxeo.pid.dir", hs("nuxeo_pid_dir"))
    put("nuxeo.tmp.dir", hs("nuxeo_tmp_dir"))
    put("nuxeo.templates", ",".join(d["nuxeo"]["templates"]))
    put("nuxeo.url", s.get("nx_public_url"))
    put("nuxeo.bind.address", node.address)  # Tomcat on the cluster address only, never every interface
    put("nuxeo.server.http.port", node.port)
    put("nuxeo.server.tomcat_admin.port", hs("nuxeo_tomcat_admin_port"))
    put("nuxeo.cluster.enabled", d["nuxeo"]["cluster_enabled"])
    put("nuxeo.cluster.nodeid", node.node_id)
    put("nuxeo.server.jvmRoute", node.jvm_route)
    put("nuxeo.db.transactiontimeout", hs("nuxeo_transaction_timeout"))
    put("launcher.start.max.wait", hs("nuxeo_start_max_wait"))
    put("launcher.stop.max.wait", hs("nuxeo_stop_max_wait"))

    db = d["db"]
    if c.database == "postgresql":
        put("nuxeo.db.host", db.get("address", ""))
        put("nuxeo.db.port", db.get("port", 5432))
        if db.get("jdbc_url"):
            # Patroni: every database host, the driver picks the one that is primary (read-write). With TLS the
            # URL also carries sslmode=verify-full and the cluster CA (pgjdbc's own parameters).
            put("nuxeo.db.jdbc.url", db["jdbc_url"])
        put("nuxeo.db.name", db.get("name", "nuxeo"))
        put("nuxeo.db.user", db.get("user", "nuxeo"))
        put("nuxeo.db.password", SECRET_PLACEHOLDER, "nx_secret_db_password")
        put("nuxeo.db.max-pool-size", hs("nuxeo_db_max_pool_size"))
        put("nuxeo.vcs.max-pool-size", hs("nuxeo_vcs_max_pool_size"))
    else:
        members = ",".join(db.get("members", []))
        query = f"?replicaSet={db['replica_set']}" if db.get("replica_set") else ""
        put("nuxeo.mongodb.server",
            f"mongodb://{db.get('user', 'nuxeo')}:{SECRET_PLACEHOLDER}@{members}/{db.get('name', 'nuxeo')}{query}",
            "nx_secret_db_password")
        put("nuxeo.mongodb.dbname", db.get("name", "nuxeo"))

    search = d["search"]
    truststore = d["tls"]["truststore"]
    packaged = d["nuxeo"].get("search_packages") or {}
    if packaged:
        _search_conf_2025(put, search, truststore, packaged)
    else:
        put("elasticsearch.client", "RestClient")
        put("elasticsearch.addressList", ",".join(search["urls"]))
        if search.get("tls"):
            put("elasticsearch.restClient.truststore.path", truststore["path"])
            put("elasticsearch.restClient.truststore.password", truststore["password"])
            put("elasticsearch.restClient.truststore.type", truststore["type"])
        if search.get("security", {}).get("enabled"):
            # Nuxeo's own search user (elasticsearch.restClient.username/password): its indices only
            put("elasticsearch.restClient.username", "nuxeo")
            put("elasticsearch.restClient.password", SECRET_PLACEHOLDER, "nx_secret_search_nuxeo_password")
        put("elasticsearch.indexName", search["index_name"])
        put("elasticsearch.indexNumberOfReplicas", search["replicas"])
        put("audit.elasticsearch.enabled", True)

    kafka = d["kafka"]
    if kafka["brokers"]:
        put("kafka.enabled", True)
        put("kafka.bootstrap.servers", kafka["bootstrap_servers"])
        put("kafka.topicPrefix", kafka["topic_prefix"])
        if kafka.get("tls"):
            put("kafka.ssl", True)
            put("kafka.truststore.path", truststore["path"])
            put("kafka.truststore.password", truststore["password"])
            put("kafka.truststore.type", truststore["type"])
            # The brokers require a client certificate (ssl.client.auth=required): the node's, from the cluster CA
            client = d["tls"]["certs"].get(node.host, {}).get("paths", {}).get("kafka-client", {})
            if client:
                put("kafka.keystore.path", client["keystore"])
                put("kafka.keystore.password", SECRET_PLACEHOLDER, "nx_secret_kafka_keystore_password")
                put("kafka.keystore.type", "PKCS12")
        put("nuxeo.stream.work.enabled", True)
        put("nuxeo.pubsub.provider", "stream")

    s3 = d["s3"]
    if "s3binaries" in d["nuxeo"]["templates"]:
        put("nuxeo.s3storage.bucket", s3["bucket"])
        if s3["endpoint"]:
            put("nuxeo.s3storage.endpoint", s3["endpoint"])
            put("nuxeo.s3storage.pathstyleaccess", True)
        if s3.get("tls"):
            put("nuxeo.aws.trustStorePath", truststore["path"])
            put("nuxeo.aws.trustStorePassword", truststore["password"])
            put("nuxeo.aws.trustStoreType", truststore["type"])
        put("nuxeo.aws.region", s3["region"])
        put("nuxeo.aws.accessKeyId", SECRET_PLACEHOLDER, "nx_secret_s3_access_key")
        put("nuxeo.aws.secretKey", SECRET_PLACEHOLDER, "nx_secret_s3_secret_key")

    put("nuxeo.jwt.secret", SECRET_PLACEHOLDER, "nx_secret_nuxeo_jwt_secret")
    put("server.status.key", SECRET_PLACEHOLDER, "nx_secret_nuxeo_status_key")

    if d["monitoring"]["enabled"]:
        # Nuxeo's Prometheus reporter (metrics-config.xml: reporters start only with metrics.enabled), scraped
        # by the monitoring host (job `nuxeo`); without monitoring the keys are left to Nuxeo's defaults (off)
        put("metrics.enabled", True)
        put("metrics.prometheus.enabled", True)
        put("metrics.prometheus.port", _int(hs("nuxeo_metrics_port"), 9464))

    # Without worker nodes the front nodes must process work themselves, or nothing ever would.
    processing = node.role == "worker" or not any(n.role == "worker" for n in c.nuxeo_nodes)
    put("nuxeo.stream.processing.enabled", processing)
    put("nuxeo.work.processing.enabled", processing)

    extra = hs("nuxeo_conf_extra") or {}
    if isinstance(extra, dict):
        # A value that is a secret (an operator wrote "{{ nx_secret_... }}") stays a reference to it.
        by_value = {str(s.get(name)): name for name in masked_names() if len(str(s.get(name) or "")) >= 6}
        for k, v in extra.items():
            name = by_value.get(str(v))
            if name:
                put(str(k), SECRET_PLACEHOLDER, name)
            else:
                put(str(k), v)
    return items
