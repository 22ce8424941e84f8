"""Host counts per reference architecture (nuxeo-facts.md section 1), odd quorums."""

from __future__ import annotations

from collections.abc import Iterator

from nxprovision.model import architectures
from nxprovision.model.cluster import Cluster, kafka_mode
from nxprovision.rules._where import of_group
from nxprovision.rules.finding import Finding, error

_WHY = {
    "nuxeo_front": "Nuxeo nodes serving users",
    "nuxeo_worker": "worker nodes",
    "loadbalancers": "load balancers",
    "database": "database nodes",
    "opensearch": "search nodes",
    "kafka": "Kafka brokers",
    "zookeeper": "ZooKeeper nodes",
    "s3": "S3 hosts",
}


def _count(c: Cluster, group: str) -> int:
    if group == "database":
        return len(c.db_hosts)
    if group == "nuxeo_worker":
        return len([n for n in c.nuxeo_nodes if n.role == "worker"])
    return len(c.view.groups.get(group, []))


def check(c: Cluster) -> Iterator[Finding]:
    arch = architectures.ARCHITECTURES.get(c.architecture)
    if arch is None or not c.hosts:
        return
    for group, (lo, hi) in arch.counts.items():
        if group == "zookeeper" and kafka_mode(c) == "zookeeper":
            continue  # checked below with the ensemble rule
        n = _count(c, group)
        gname = c.database if group == "database" else group
        what = _WHY.get(group, group)
        if n < lo:
            yield error(f"counts.{group}", f"group {gname}",
                        f"has {n} host(s); the {arch.name} architecture needs at least {lo} {what}",
                        f"add {lo - n} host(s) to group {gname}, or choose another nx_architecture",
                        of_group(c, gname))
        elif hi is not None and n > hi:
            yield error(f"counts.{group}", f"group {gname}",
                        f"has {n} host(s); the {arch.name} architecture allows at most {hi} {what}",
                        f"remove {n - hi} host(s) from group {gname}"
                        + (", or use the distributed architecture" if arch.name == "compact" else ""),
                        of_group(c, gname))

    n_search = len(c.search_hosts)
    if arch.multi_node and n_search and n_search % 2 == 0:
        yield error("counts.opensearch_odd", "group opensearch",
                    f"has {n_search} hosts; a search cluster needs an odd number (3, 5, 7) to avoid split brain",
                    f"add or remove one host in group opensearch (to {n_search + 1} or {n_search - 1})",
                    of_group(c, "opensearch"))

    mode = kafka_mode(c)
    n_zk = len(c.zookeeper_hosts)
    if mode == "zookeeper" and c.kafka_brokers:
        need = 3 if arch.name == "distributed" else 1
        if n_zk < need:
            yield error("counts.zookeeper", "group zookeeper",
                        f"has {n_zk} host(s); Kafka in ZooKeeper mode on {arch.name} needs at least {need}",
                        f"add {need - n_zk} host(s) to group zookeeper (it may share the Nuxeo hosts)",
                        of_group(c, "zookeeper"))
        elif n_zk > 1 and n_zk % 2 == 0:
            yield error("counts.zookeeper_odd", "group zookeeper",
                        f"has {n_zk} hosts; a ZooKeeper ensemble needs an odd number",
                        "use 3 or 5 ZooKeeper hosts", of_group(c, "zookeeper"))

    n_etcd = len(c.etcd_hosts)
    if arch.name == "distributed" and c.database == "postgresql" and (n_etcd < 3 or n_etcd % 2 == 0):
        yield error("counts.etcd", "group etcd",
                    f"has {n_etcd} host(s); PostgreSQL HA (Patroni) in the distributed architecture needs an "
                    "odd number of etcd members, at least 3",
                    "put 3 hosts in group etcd (they may be the database hosts)", of_group(c, "etcd"))
    if arch.name == "single":
        distinct = {h for g, hs in c.view.groups.items() if g not in ("all", "ungrouped") for h in hs}
        if len(distinct) > 1:
            yield error("counts.single_host", "inventory",
                        f"uses {len(distinct)} hosts ({', '.join(sorted(distinct)[:4])}); the single architecture "
                        "puts every component on one host",
                        "use one host in every group, or nx_architecture: compact", c.view.source)
