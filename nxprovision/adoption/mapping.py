"""From what each host runs (found.py) to the inventory that reproduces it, and the report of what it could not map.

The model is the one source of truth here too: which nuxeo.conf keys nxprovision writes, and which of them hold a
secret, come from `nuxeo_conf` of a cluster built from the adopted settings, not from a list of our own. A key the
model writes is the model's; a key it does not write is carried over in `nuxeo_conf_extra` (per node where the
nodes differ); a secret is put into the vault under the model's name, never into a file in clear.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from nxprovision.adoption.found import Found, conninfo, pg_settings
from nxprovision.inventory import InventoryView
from nxprovision.model.cluster import SECRET_PLACEHOLDER, Cluster, build_cluster
from nxprovision.model.defaults import SAMPLE_GROUP_VARS

SECRET_KEY = re.compile(r"(password|passwd|secret|token|credential|awsid|private[._-]?key)", re.IGNORECASE)
# keys every Nuxeo distribution reads from nuxeo.conf but that nxprovision derives from the hosts it runs on
NODE_LOCAL_KEYS = frozenset({"nuxeo.bind.address", "nuxeo.cluster.nodeid", "nuxeo.server.jvmRoute"})
# keys of the components the model wires itself (addresses, clients, stores): one it does not write for this version
# (elasticsearch.* under LTS 2025, say) is left behind, not carried over
COMPONENT_KEYS = re.compile(r"^(nuxeo\.db\.|nuxeo\.mongodb\.|elasticsearch\.|audit\.elasticsearch\."
                            r"|nuxeo\.search\.client\.|nuxeo\.audit\.backend\.|nuxeo\.(opensearch|elasticsearch)\w*\.client\."
                            r"|kafka\.|nuxeo\.s3storage\.|nuxeo\.aws\.|nuxeo\.stream\.|nuxeo\.pubsub\.)")
# nuxeo.conf keys the model writes from one role variable each: a found value becomes that variable (per node
# where the nodes differ), so the deploy writes the value the node has
TUNABLE_KEYS: dict[str, tuple[str, type]] = {
    "nuxeo.db.max-pool-size": ("nuxeo_db_max_pool_size", int),
    "nuxeo.vcs.max-pool-size": ("nuxeo_vcs_max_pool_size", int),
    "nuxeo.db.transactiontimeout": ("nuxeo_transaction_timeout", int),
    "launcher.start.max.wait": ("nuxeo_start_max_wait", int),
    "launcher.stop.max.wait": ("nuxeo_stop_max_wait", int),
    "nuxeo.server.http.port": ("nuxeo_http_port", int),
    "nuxeo.server.tomcat_admin.port": ("nuxeo_tomcat_admin_port", int),
    "nuxeo.data.dir": ("nuxeo_data_dir", str),
    "nuxeo.log.dir": ("nuxeo_log_dir", str),
    "nuxeo.tmp.dir": ("nuxeo_tmp_dir", str),
    "nuxeo.pid.dir": ("nuxeo_pid_dir", str),
}
INDEX_NAME_KEY = re.compile(r"^(elasticsearch\.indexName|nuxeo\.search\.client\.default\.\w+\.index\.name)$")
# PostgreSQL settings the postgresql role writes itself or that Debian's cluster creation sets per host
PG_MANAGED = frozenset({
    "data_directory", "hba_file", "ident_file", "external_pid_file", "port", "unix_socket_directories",
    "listen_addresses", "ssl", "ssl_cert_file", "ssl_key_file", "ssl_ca_file", "ssl_min_protocol_version",
    "cluster_name", "include_dir", "primary_conninfo", "primary_slot_name", "hot_standby", "wal_level",
    "max_wal_senders", "max_replication_slots", "wal_keep_size", "max_connections", "password_encryption",
    "shared_buffers", "effective_cache_size", "random_page_cost", "default_statistics_target", "log_line_prefix",
    "log_timezone", "timezone", "datestyle", "lc_messages", "lc_monetary", "lc_numeric", "lc_time",
    "default_text_search_config", "dynamic_shared_memory_type", "max_wal_size", "min_wal_size",
    "archive_mode", "archive_command", "restore_command", "work_mem", "maintenance_work_mem",
})
# `weed server` flags -> the seaweedfs role's variables
WEED_FLAGS = {("port", "master.port"): "seaweedfs_master_port", ("volume.port",): "seaweedfs_volume_port",
              ("filer.port",): "seaweedfs_filer_port", ("s3.port",): "seaweedfs_s3_port",
              ("master.volumeSizeLimitMB", "volumeSizeLimitMB"): "seaweedfs_volume_size_limit_mb",
              ("volume.max",): "seaweedfs_volume_max"}
# what Debian's pg_createcluster (and initdb) write uncommented into a new cluster's postgresql.conf: found there,
# they say nothing about the hand that built the cluster
PG_CREATED = frozenset({
    "data_directory", "hba_file", "ident_file", "external_pid_file", "port", "max_connections",
    "unix_socket_directories", "ssl", "ssl_cert_file", "ssl_key_file", "shared_buffers", "dynamic_shared_memory_type",
    "max_wal_size", "min_wal_size", "log_line_prefix", "log_timezone", "cluster_name", "datestyle", "timezone",
    "lc_messages", "lc_monetary", "lc_numeric", "lc_time", "default_text_search_config", "include_dir",
})
# a role's link to its release folder (default path) -> the group it serves, the variable that moves it, and where:
# a real folder of the hand build at that path is never replaced, the role links elsewhere
ROLE_LINK_VARS = {
    "/opt/nuxeo": ("nuxeo", "nuxeo_home", "/opt/nxprovision-nuxeo"),
    "/opt/opensearch": ("opensearch", "opensearch_home", "/opt/nxprovision-opensearch"),
    "/opt/kafka": ("kafka", "kafka_home", "/opt/nxprovision-kafka"),
    "/opt/seaweedfs": ("s3", "seaweedfs_install_root", "/opt/nxprovision"),
}
# the groups other than Nuxeo's (whose changes are told key by key) and their roles
ROLE_OF_GROUP = {"loadbalancers": "haproxy", "postgresql": "postgresql", "mongodb": "mongodb",
                 "opensearch": "opensearch", "kafka": "kafka", "s3": "seaweedfs"}
ROLE_UNITS = {"nuxeo": "nuxeo", "haproxy": "haproxy", "opensearch": "opensearch", "elasticsearch": "opensearch",
              "kafka": "kafka", "seaweedfs": "seaweedfs", "mongodb": "mongod"}
ROLE_DEFAULT_PATHS = {"nuxeo": "/opt/nuxeo", "opensearch": "/opt/opensearch", "kafka": "/opt/kafka"}


@dataclass
class Item:
    where: str
    what: str
    why: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"where": self.where, "what": self.what, "why": self.why}


@dataclass
class Adoption:
    architecture: str = "compact"
    database: str = "postgresql"
    layout: dict[str, list[str]] = field(default_factory=dict)
    group_vars: dict[str, Any] = field(default_factory=dict)
    host_vars: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    mapped: list[Item] = field(default_factory=list)
    differences: list[Item] = field(default_factory=list)
    unmapped: list[Item] = field(default_factory=list)
    changes: dict[str, list[Item]] = field(default_factory=dict)
    problems: list[Item] = field(default_factory=list)

    def set(self, key: str, value: Any, where: str, source: str) -> None:
        self.group_vars[key] = value
        self.mapped.append(Item(where, f"{key}: {value}", source))

    def host_set(self, host: str, key: str, value: Any, source: str) -> None:
        self.host_vars.setdefault(host, {})[key] = value
        self.mapped.append(Item(f"host {host}", f"{key}: {value}", source))

    def change(self, host: str, role: str, why: str) -> None:
        self.changes.setdefault(host, []).append(Item(role, why))


def _majority(values: dict[str, Any]) -> Any:
    counted = Counter(str(v) for v in values.values() if v not in (None, ""))
    if not counted:
        return None
    best = counted.most_common(1)[0][0]
    return next(v for v in values.values() if str(v) == best)


def _address(given: InventoryView, host: str) -> str:
    return str((given.hostvars.get(host) or {}).get("ansible_host") or host)


def _package_name(pkg_id: str) -> str:
    return re.sub(r"-\d[\w.\-]*$", "", pkg_id)


def _heap_mb(java_opts: str) -> int | None:
    m = re.search(r"-Xmx(\d+)([gGmMkK]?)", java_opts or "")
    if not m:
        return None
    n, unit = int(m.group(1)), m.group(2).lower()
    return n * 1024 if unit == "g" else n // 1024 if unit == "k" else n if unit == "m" else n // (1024 * 1024)


def layout_of(found: dict[str, Found], given: InventoryView, a: Adoption) -> None:
    hosts = list(found)
    by_address = {_address(given, h): h for h in hosts}
    lbs = [h for h in hosts if found[h].has("haproxy")]
    nuxeo = [h for h in hosts if found[h].has("nuxeo")]
    served = {by_address.get(s.address, s.address) for h in lbs for s in found[h].haproxy.servers}
    fronts = [h for h in nuxeo if h in served] if lbs else list(nuxeo)
    workers = [h for h in nuxeo if h not in fronts]
    pg = [h for h in hosts if found[h].pg_cluster() is not None]
    mongo = [h for h in hosts if found[h].has("mongodb")]
    a.layout = {
        "loadbalancers": lbs, "nuxeo_front": fronts, "nuxeo_worker": workers, "postgresql": pg, "mongodb": mongo,
        "opensearch": [h for h in hosts if found[h].search], "kafka": [h for h in hosts if found[h].has("kafka")],
        "s3": [h for h in hosts if found[h].has("seaweedfs")],
    }
    for group, members in a.layout.items():
        stated = set(given.groups.get(group) or [])
        if stated and stated != set(members):
            a.differences.append(Item(f"group {group}", f"the inventory names {', '.join(sorted(stated))}; the "
                                      f"hosts running it are {', '.join(members) or 'none'}",
                                      "adopted as the hosts run it"))
    for h in hosts:
        if not found[h].components:
            a.problems.append(Item(f"host {h}", "runs none of Nuxeo, HAProxy, PostgreSQL, MongoDB, OpenSearch, "
                                   "Elasticsearch, Kafka or SeaweedFS as a systemd service",
                                   "remove it from the inventory, or start its service under systemd"))
    if not nuxeo:
        a.problems.append(Item("cluster", "no host runs Nuxeo (a systemd service starting bin/nuxeoctl)",
                               "name the hosts of the Nuxeo cluster in the inventory"))
    a.database = "mongodb" if mongo and not pg else "postgresql"
    a.architecture = ("single" if len(hosts) == 1
                      else "distributed" if len(lbs) >= 2 or len(a.layout["kafka"]) >= 3 else "compact")


def platform_of(found: dict[str, Found], a: Adoption) -> None:
    for key, attr in (("nx_os_release", "release"), ("nx_cpu_arch", "arch")):
        values = {h: getattr(f, attr) for h, f in found.items() if getattr(f, attr)}
        common = _majority(values)
        if common:
            a.set(key, common, "every host", "/etc/os-release" if attr == "release" else "uname -m")
        for h, v in values.items():
            if v != common:
                a.host_set(h, key, v, "this host differs from the others")


def settings_of(found: dict[str, Found], given: InventoryView, a: Adoption) -> None:
    nodes = a.layout["nuxeo_front"] + a.layout["nuxeo_worker"]
    confs = {h: found[h].nuxeo_conf for h in nodes}
    a.set("nx_architecture", a.architecture, "cluster", "the hosts' components: "
          + ", ".join(f"{g} {len(m)}" for g, m in a.layout.items() if m))
    a.set("nx_database", a.database, "cluster", "the database the hosts run")
    versions = {h: found[h].components["nuxeo"].get("version") for h in nodes}
    version = _majority(versions)
    if version:
        a.set("nuxeo_version", str(version), "Nuxeo nodes", "templates/nuxeo.defaults of the distribution")
    for h, v in versions.items():
        if v != version:
            a.problems.append(Item(f"host {h}", f"runs Nuxeo {v}, the other nodes {version}",
                                   "one version per cluster: the deploy would move this node to "
                                   f"{version}; upgrade it first if that is not wanted"))
    packages = {h: sorted({_package_name(p) for p in found[h].components["nuxeo"].get("packages") or []})
                for h in nodes}
    union = sorted({p for ps in packages.values() for p in ps})
    if union:
        a.set("nuxeo_packages", union, "Nuxeo nodes", "packages/.packages (the started packages)")
    for h, ps in packages.items():
        if ps != union:
            a.differences.append(Item(f"host {h}", f"lacks package(s) {', '.join(sorted(set(union) - set(ps)))}",
                                      "nxprovision installs the same packages on every node"))
    lbs = a.layout["loadbalancers"]
    for h in lbs:
        hp = found[h].haproxy
        # read to be told, not carried: the haproxy role writes its own sticky cookie and health check
        a.mapped.append(Item(f"host {h}", f"HAProxy backends {', '.join(f'{s.address}:{s.port}' for s in hp.servers)}"
                             f"; sticky by cookie {hp.cookie or '(none)'}; health check {hp.health_check or '(none)'}",
                             "haproxy.cfg: the nodes become nuxeo_front; the model's haproxy.cfg replaces the rest"))
    tls = any(tls for h in lbs for (_a, _p, tls) in found[h].haproxy.binds)
    conf_url = _majority({h: c.get("nuxeo.url") for h, c in confs.items()})
    nodes_at = {"localhost", "127.0.0.1", "::1", *(_address(given, h) for h in nodes), *nodes}
    if conf_url and (urlsplit(str(conf_url)).hostname or "localhost") not in nodes_at:
        # the name users reach the cluster by (a DNS name, the load balancer's address): kept as Nuxeo has it
        a.set("nx_public_url", str(conf_url), "Nuxeo nodes", "nuxeo.url")
    elif lbs:
        url = f"{'https' if tls else 'http'}://{_address(given, lbs[0])}/nuxeo"
        a.set("nx_public_url", url, f"host {lbs[0]}", "haproxy.cfg's bind lines (nuxeo.url names a node)")
    elif conf_url:
        a.set("nx_public_url", str(conf_url), "Nuxeo nodes", "nuxeo.url")
    a.set("nx_tls_enabled", bool(tls or str(a.group_vars.get("nx_public_url", "")).startswith("https")),
          "load balancers", "whether HAProxy ends TLS")
    pgs = {h: found[h].pg_cluster() for h in a.layout["postgresql"]}
    if pgs:
        a.set("postgresql_version", str(_majority({h: c["version"] for h, c in pgs.items() if c})), "PostgreSQL hosts",
              "pg_lsclusters")
    if a.database == "mongodb":
        mongo_of(found, confs, a)
    search = {h: found[h].search for h in a.layout["opensearch"]}
    if search:
        product = _majority({h: s[0] for h, s in search.items() if s})
        a.set("search_distribution", product, "search hosts", "the service's executable")
        sv = _majority({h: s[1].get("version") for h, s in search.items() if s})
        if sv:
            a.set("search_version", sv, "search hosts", "the distribution's folder name")
        data = _majority({h: _path_data(found[h]) for h in search})
        if data:
            a.set("opensearch_data_dir", data, "search hosts", "path.data in opensearch.yml")
    # the cluster's name prefixes Nuxeo's Kafka topics (kafka.topicPrefix, `nuxeo-` by default): kept, so the
    # streams stay in the topics they are in
    prefix = _majority({h: c.get("kafka.topicPrefix") for h, c in confs.items()}) or "nuxeo-"
    name = re.sub(r"[^a-z0-9-]", "-", str(prefix).lower().rstrip("-")).strip("-") or "nuxeo"
    a.set("nx_cluster_name", name, "Nuxeo nodes", "kafka.topicPrefix (Nuxeo's default nuxeo- when unset)")
    kafka = {h: found[h].kafka_conf for h in a.layout["kafka"]}
    for i, h in enumerate(a.layout["kafka"]):
        # a broker's id is in its formatted storage too: Kafka refuses to start under another one
        node_id = kafka[h].get("node.id") or kafka[h].get("broker.id")
        if node_id and node_id.isdigit() and int(node_id) != i + 1:
            a.host_set(h, "kafka_node_id", int(node_id), "node.id in server.properties")
    if kafka:
        kv = _majority({h: found[h].components["kafka"].get("version") for h in kafka})
        if kv:
            a.set("kafka_version", kv, "Kafka brokers", "the distribution's folder name")
        kraft = any("process.roles" in c for c in kafka.values())
        a.set("kafka_mode", "kraft" if kraft else "zookeeper", "Kafka brokers", "server.properties")
        logs = _majority({h: c.get("log.dirs") or c.get("log.dir") for h, c in kafka.items()})
        if logs:
            a.set("kafka_data_dir", str(logs).split(",")[0], "Kafka brokers", "log.dirs in server.properties")
    bucket = _majority({h: c.get("nuxeo.s3storage.bucket") for h, c in confs.items()})
    if bucket:
        a.set("s3_bucket", bucket, "Nuxeo nodes", "nuxeo.s3storage.bucket")
    region = _majority({h: c.get("nuxeo.aws.region") or c.get("nuxeo.s3storage.region") for h, c in confs.items()})
    if region:
        a.set("s3_region", region, "Nuxeo nodes", "nuxeo.aws.region")
    if a.layout["s3"]:
        a.set("s3_mode", "seaweedfs", "s3 hosts", "a weed service")
        weed = {h: found[h].components["seaweedfs"].get("flags") or {} for h in a.layout["s3"]}
        data = _majority({h: f.get("dir") for h, f in weed.items()})
        if data:
            a.set("seaweedfs_data_dir", data, "s3 hosts", "weed's -dir")
        for flags, var in WEED_FLAGS.items():
            value = _majority({h: next((f[n] for n in flags if n in f), None) for h, f in weed.items()})
            if value is not None and str(value).isdigit():
                a.set(var, int(value), "s3 hosts", f"weed's -{flags[0]}")
    else:
        endpoint = _majority({h: c.get("nuxeo.s3storage.endpoint") for h, c in confs.items()})
        if endpoint or bucket:
            a.set("s3_mode", "external", "Nuxeo nodes", "no host of the cluster serves S3")
            a.set("s3_endpoint", endpoint or "", "Nuxeo nodes", "nuxeo.s3storage.endpoint")
    for key, conf_key in (("nuxeo_db_name", "nuxeo.db.name"), ("nuxeo_db_user", "nuxeo.db.user")):
        v = _majority({h: c.get(conf_key) for h, c in confs.items()})
        if v:
            a.set(key, v, "Nuxeo nodes", conf_key)
    index = _majority({h: next((v for k, v in c.items() if INDEX_NAME_KEY.match(k)), None) for h, c in confs.items()})
    if index:
        a.set("nuxeo_search_index_name", index, "Nuxeo nodes", "the search index name in nuxeo.conf")
    for conf_key, (var, kind) in TUNABLE_KEYS.items():
        values: dict[str, Any] = {}
        for h, c in confs.items():
            raw = c.get(conf_key)
            if raw in (None, ""):
                continue
            try:
                values[h] = kind(raw)
            except ValueError:
                a.unmapped.append(Item(f"host {h}", f"nuxeo.conf {conf_key}={raw}", f"not a {kind.__name__}"))
        if kind is str:
            # a relative folder is under the distribution the role does not reuse: the role's own folder instead
            values = {h: v for h, v in values.items() if str(v).startswith("/")}
        if not values:
            continue
        if len(values) < len(confs):
            # set on some nodes only: those keep their value, the others get the role's default as before
            for h, v in values.items():
                a.host_set(h, var, v, f"{conf_key}, set on this node only")
                a.differences.append(Item(f"host {h}", f"nuxeo.conf {conf_key}={v}, not set on the other nodes",
                                          "kept on this node"))
            continue
        common = _majority(values)
        a.set(var, common, "Nuxeo nodes", conf_key)
        for h, v in values.items():
            if v != common:
                a.host_set(h, var, v, f"{conf_key} on this node differs from the others'")
                a.differences.append(Item(f"host {h}", f"nuxeo.conf {conf_key}={v}, the other nodes {common}",
                                          "kept per node"))
    heaps = {h: _heap_mb(c.get("JAVA_OPTS", "")) for h, c in confs.items()}
    heap = _majority({h: v for h, v in heaps.items() if v})
    if heap:
        a.set("nuxeo_heap_mb", int(heap), "Nuxeo nodes", "-Xmx in JAVA_OPTS")
    for h, v in heaps.items():
        if v and v != heap:
            a.host_set(h, "nuxeo_heap_mb", v, "-Xmx in this node's JAVA_OPTS differs from the others'")
            a.differences.append(Item(f"host {h}", f"heap {v} MB, the other nodes {heap} MB", "kept per node"))
    for h, c in confs.items():
        nodeid = c.get("nuxeo.cluster.nodeid")
        if nodeid and nodeid != re.sub(r"[^A-Za-z0-9_-]", "-", h):
            a.host_set(h, "nuxeo_cluster_nodeid", nodeid, "nuxeo.cluster.nodeid")


def mongo_of(found: dict[str, Found], confs: dict[str, dict[str, str]], a: Adoption) -> None:
    members = a.layout["mongodb"]
    confs_m = {h: found[h].mongod_conf() for h in members}

    def nested(conf: dict[str, Any], *path: str) -> Any:
        for p in path:
            conf = conf.get(p) if isinstance(conf, dict) else None
        return conf

    version = _majority({h: found[h].components["mongodb"].get("version") for h in members})
    if version:
        a.set("mongodb_version", version, "MongoDB hosts", "the release archive's folder")
    for var, path, kind in (("mongodb_replica_set", ("replication", "replSetName"), str),
                            ("mongodb_port", ("net", "port"), int),
                            ("mongodb_data_dir", ("storage", "dbPath"), str)):
        value = _majority({h: nested(c, *path) for h, c in confs_m.items()})
        if value not in (None, ""):
            a.set(var, kind(value), "MongoDB hosts", "mongod.conf " + ".".join(path))
    if any(nested(c, "security", "authorization") != "enabled" for c in confs_m.values()):
        a.unmapped.append(Item("MongoDB hosts", "security.authorization is not enabled",
                               "the first deploy turns authorization on, with the users Nuxeo and the role need"))
    uri = _majority({h: c.get("nuxeo.mongodb.server") for h, c in confs.items()})
    if uri:
        user = urlsplit(str(uri)).username
        if user:
            a.set("nuxeo_db_user", unquote(user), "Nuxeo nodes", "the user of nuxeo.mongodb.server")
    name = _majority({h: c.get("nuxeo.mongodb.dbname") for h, c in confs.items()})
    if name:
        a.set("nuxeo_db_name", name, "Nuxeo nodes", "nuxeo.mongodb.dbname")


def _path_data(f: Found) -> str | None:
    settings = f.search_settings()
    nested = settings.get("path")
    v = settings.get("path.data") or (nested.get("data") if isinstance(nested, dict) else None)
    return str(v[0] if isinstance(v, list) else v) if v else None


def replication_of(found: dict[str, Found], a: Adoption) -> None:
    for h in a.layout["postgresql"]:
        c = found[h].pg_cluster() or {}
        if not c.get("standby"):
            continue
        auto = pg_settings(c.get("auto_conf_text")) | pg_settings(c.get("conf_text"))
        info = conninfo(auto.get("primary_conninfo", ""))
        if info.get("user"):
            a.set("postgresql_replication_user", info["user"], f"host {h}", "primary_conninfo")
        if info.get("password"):
            a.secrets["nx_secret_db_replication_password"] = info["password"]
            a.mapped.append(Item(f"host {h}", "nx_secret_db_replication_password (in the vault)", "primary_conninfo"))
    primaries = [h for h in a.layout["postgresql"] if not (found[h].pg_cluster() or {}).get("standby")]
    if len(primaries) > 1:
        a.problems.append(Item("PostgreSQL", f"{', '.join(primaries)} all run as primaries",
                               "one primary per cluster: make the others streaming replicas first"))
    if primaries and a.layout["postgresql"][0] != primaries[0]:
        # the role takes the group's first host for the primary
        a.layout["postgresql"] = primaries + [h for h in a.layout["postgresql"] if h not in primaries]
    extra: dict[str, dict[str, str]] = {}
    for h in a.layout["postgresql"]:
        c = found[h].pg_cluster() or {}
        # the hand's own settings: conf.d, and what the main file sets beyond what the cluster's creation wrote
        settings = {k: v for k, v in pg_settings(c.get("conf_text")).items() if k not in PG_CREATED}
        settings.update(pg_settings(c.get("conf_d_text")))
        extra[h] = {k: v for k, v in settings.items() if k not in PG_MANAGED and not SECRET_KEY.search(k)}
        for k in sorted(set(settings) & PG_MANAGED):
            a.unmapped.append(Item(f"host {h}", f"postgresql.conf {k} = {settings[k]}",
                                   "the postgresql role sets this one itself"))
    common = _majority({h: tuple(sorted(e.items())) for h, e in extra.items()})
    if common:
        a.set("postgresql_extra_settings", dict(common), "PostgreSQL hosts", "postgresql.conf")


def secrets_of(found: dict[str, Found], a: Adoption, cluster: Cluster) -> None:
    """The model's secret keys of nuxeo.conf, their values as the nodes have them."""
    for node in cluster.nuxeo_nodes:
        conf = found[node.host].nuxeo_conf
        for item in node.conf:
            if not item.secret or SECRET_PLACEHOLDER not in item.value or not conf.get(item.key):
                continue
            value = conf[item.key]
            if item.value != SECRET_PLACEHOLDER:
                # the secret inside a connection URI (nuxeo.mongodb.server): its password
                password = urlsplit(value).password if "://" in value else None
                if not password:
                    continue
                value = unquote(password)
            have = a.secrets.get(item.secret)
            if have is None:
                a.secrets[item.secret] = value
                a.mapped.append(Item(f"host {node.host}", f"{item.secret} (in the vault)", item.key))
            elif have != value:
                a.problems.append(Item(f"host {node.host}", f"{item.key} differs from the other nodes' (secret, "
                                       "not shown)", "nxprovision gives every node the vault's one value"))
    identities = [i for h in a.layout["s3"] for i in found[h].s3_identities()]
    keys = {c.get("accessKey"): c.get("secretKey") for i in identities for c in i.get("credentials") or []}
    if "nx_secret_s3_access_key" not in a.secrets and len(keys) == 1:
        (access, secret), = keys.items()
        a.secrets.update({"nx_secret_s3_access_key": str(access), "nx_secret_s3_secret_key": str(secret)})
        a.mapped.append(Item("s3 hosts", "nx_secret_s3_access_key, nx_secret_s3_secret_key (in the vault)",
                             "the S3 identity SeaweedFS serves"))
    for i in identities:
        creds = [c.get("accessKey") for c in i.get("credentials") or []]
        if a.secrets.get("nx_secret_s3_access_key") not in creds:
            a.unmapped.append(Item("s3 hosts", f"S3 identity {i.get('name', '?')!r}",
                                   "nxprovision serves the one identity Nuxeo uses; this one is not carried over"))


def extras_of(found: dict[str, Found], a: Adoption, cluster: Cluster) -> None:
    """nuxeo.conf keys the model does not write: carried over, per node where the nodes differ."""
    own: dict[str, dict[str, str]] = {}
    for node in cluster.nuxeo_nodes:
        written = {i.key for i in node.conf} | NODE_LOCAL_KEYS
        conf = found[node.host].nuxeo_conf
        own[node.host] = {}
        for k, v in conf.items():
            if k in written:
                continue
            if COMPONENT_KEYS.match(k):
                a.unmapped.append(Item(f"host {node.host}", f"nuxeo.conf {k}", "a component setting this Nuxeo "
                                       "version does not take from it, or that the model wires itself: left out"))
                continue
            if SECRET_KEY.search(k):
                a.unmapped.append(Item(f"host {node.host}", f"nuxeo.conf {k} (a secret, not shown)",
                                       "not carried over: nxprovision writes no secret it does not generate; add "
                                       "it by hand if Nuxeo needs it"))
                continue
            own[node.host][k] = v
    keys = {k for d in own.values() for k in d}
    same = {k for k in keys if len({d.get(k) for d in own.values()}) == 1}
    if same == keys:
        extra = next(iter(own.values()), {})
        if extra:
            a.set("nuxeo_conf_extra", dict(sorted(extra.items())), "Nuxeo nodes", "nuxeo.conf keys nxprovision "
                  "does not write itself")
        return
    for h, d in own.items():
        # a host's nuxeo_conf_extra replaces the group's whole: each node carries its full set
        a.host_set(h, "nuxeo_conf_extra", dict(sorted(d.items())), "nuxeo.conf keys nxprovision does not write; "
                   "the nodes differ")
        for k in sorted(keys - same):
            if k in d:
                a.differences.append(Item(f"host {h}", f"nuxeo.conf {k}={d[k]}",
                                          "only this node (or only it with this value): kept per node"))


def predicted_changes(found: dict[str, Found], a: Adoption, cluster: Cluster) -> None:
    """What the first deploy will change on each host, and why (the report's promise; the lab test holds it)."""
    everyone = "nxprovision's base on every host: time sync, limits, journald, apt pins and local facts"
    for h in found:
        a.change(h, "common", everyone)
        a.change(h, "tls", "the cluster's CA and this host's certificate" if a.group_vars.get("nx_tls_enabled")
                 else "nothing unless TLS is turned on")
        a.change(h, "firewall", "the host firewall admits each port from the hosts that need it")
    for node in cluster.nuxeo_nodes:
        f = found[node.host]
        nx = f.components["nuxeo"]
        conf = f.nuxeo_conf
        why = []
        why.append(f"the distribution unpacked from the mirror into the role's folder, {ROLE_DEFAULT_PATHS['nuxeo']} "
                   f"linked to it (found: {nx.get('home')}; a copy elsewhere stays on disk, unused)")
        if nx.get("service") != ROLE_UNITS["nuxeo"]:
            why.append(f"service {nx.get('service')} stopped and disabled; nuxeo.service takes its place")
        for item in node.conf:
            have = conf.get(item.key)
            if item.secret:
                if have is None:
                    why.append(f"nuxeo.conf {item.key} added (a secret from the vault)")
                continue
            if have != item.value:
                why.append(f"nuxeo.conf {item.key}: {have if have is not None else '(unset)'} -> {item.value}")
        why.append("restarted once, with the settings above")
        for w in why:
            a.change(node.host, "nuxeo", w)
    for group, role in ROLE_OF_GROUP.items():
        members = a.layout.get(group) or []
        for h in members:
            f = found[h]
            info = (f.search[1] if role == "opensearch" and f.search else f.components.get(role)) or {}
            service = info.get("service")
            if service and role in ROLE_UNITS and service != ROLE_UNITS[role]:
                a.change(h, role, f"service {service} stopped and disabled; {ROLE_UNITS[role]}.service takes its "
                         "place")
            home = info.get("home")
            if home and role in ROLE_DEFAULT_PATHS:
                a.change(h, role, f"unpacked from the mirror into the role's folder, {ROLE_DEFAULT_PATHS[role]} linked "
                         f"to it (found: {home}; a copy elsewhere stays on disk, unused)")
            a.change(h, role, f"its configuration written by nxprovision's {role} role, then restarted once")
        if role == "postgresql" and members:
            a.change(members[0], "postgresql", "the database and its user kept; pg_hba.conf rewritten to admit the "
                     "cluster's hosts only")
    for h in a.layout["postgresql"] if a.database == "postgresql" else []:
        a.change(h, "pgbackrest", "backups set up only when nx_backup is configured")
    for h in a.layout["loadbalancers"]:
        if a.group_vars.get("nx_tls_enabled") and not any(tls for (_a, _p, tls) in found[h].haproxy.binds):
            a.change(h, "haproxy", "HTTPS served here with a certificate from the cluster's CA: nuxeo.url is https, "
                     "and HAProxy served plain http (TLS ended in front of it: point that at the https port, or "
                     "give nx_tls_cert_file/nx_tls_key_file your certificate)")


def moved_links(found: dict[str, Found], a: Adoption) -> None:
    """A real folder where a role puts its link: the role links elsewhere, the folder stays as it is."""
    members = {**a.layout, "nuxeo": a.layout["nuxeo_front"] + a.layout["nuxeo_worker"]}
    for path, (group, var, elsewhere) in ROLE_LINK_VARS.items():
        for h in members.get(group, []):
            if found[h].paths.get(path) == "dir":
                a.host_set(h, var, elsewhere, f"{path} is a folder of the hand build, not a link: the role "
                           "leaves it alone and links its release elsewhere")
                a.unmapped.append(Item(f"host {h}", f"folder {path}", f"left in place (the role uses {elsewhere}); "
                                       "delete it once the cluster runs from nxprovision's install"))


def retired_services(found: dict[str, Found], a: Adoption) -> None:
    """Hand-made services the roles' own units replace: stopped and disabled by the first deploy
    (common_retire_services), so two copies never fight over a port."""
    for h, f in found.items():
        retire = []
        for name, svc in f.services.items():
            role_unit = ROLE_UNITS.get(str(svc.get("component")))
            if role_unit and name != role_unit:
                retire.append(name)
        if retire:
            a.host_set(h, "common_retire_services", sorted(retire),
                       "services that run what an nxprovision role installs")


def adopt(found: dict[str, Found], given: InventoryView, keep: dict[str, Any]) -> tuple[Adoption, Cluster]:
    """`keep`: the variables of the given inventory that every host shares (connection, mirrors), kept as they are."""
    a = Adoption()
    layout_of(found, given, a)
    if a.problems and not a.layout["nuxeo_front"]:
        return a, _cluster(a, given, keep)
    platform_of(found, a)
    settings_of(found, given, a)
    replication_of(found, a)
    retired_services(found, a)
    moved_links(found, a)
    cluster = _cluster(a, given, keep)
    secrets_of(found, a, cluster)
    extras_of(found, a, cluster)
    cluster = _cluster(a, given, keep)  # with the extras: the conf the deploy will write
    predicted_changes(found, a, cluster)
    return a, cluster


def _cluster(a: Adoption, given: InventoryView, keep: dict[str, Any]) -> Cluster:
    groups: dict[str, list[str]] = {g: list(m) for g, m in a.layout.items()}
    groups["nuxeo"] = a.layout.get("nuxeo_front", []) + a.layout.get("nuxeo_worker", [])
    groups["all"] = list(given.hostvars)
    base = {k: v for k, (v, _c) in SAMPLE_GROUP_VARS.items()}
    # what the hosts run beats what the given inventory says; the rest of the given inventory is kept
    hostvars = {h: {**base, **keep, **(given.hostvars.get(h) or {}), **a.group_vars, **a.host_vars.get(h, {}),
                    **{k: SECRET_PLACEHOLDER for k in a.secrets}} for h in given.hostvars}
    return build_cluster(InventoryView(source="adopt", groups=groups, hostvars=hostvars))
