"""Nuxeo cluster topology rules: database flavour, node identities, workers, shared binary store."""

from __future__ import annotations

from collections.abc import Iterator

from nxprovision.model.cluster import Cluster
from nxprovision.rules._where import of_group, of_setting
from nxprovision.rules.finding import Finding, error


def check(c: Cluster) -> Iterator[Finding]:
    if not c.hosts:
        return
    pg, mongo = c.view.groups.get("postgresql", []), c.view.groups.get("mongodb", [])
    if pg and mongo:
        yield error("database.flavour", "groups postgresql and mongodb",
                    "both have hosts; Nuxeo's repository uses exactly one database flavour",
                    "empty one of the two groups and set nx_database to the other", of_group(c, "mongodb"))
    elif not pg and not mongo:
        yield error("database.flavour", "groups postgresql and mongodb", "are both empty: no database",
                    "put the database hosts in group postgresql or mongodb", c.view.source)
    else:
        have = "postgresql" if pg else "mongodb"
        declared = c.settings.get("nx_database")
        if declared not in (None, "", have):
            yield error("database.flavour", "setting nx_database",
                        f"says '{declared}' but the database hosts are in group {have}",
                        f"set nx_database: {have}, or move the hosts to group {declared}",
                        of_setting(c, "nx_database"))

    if not c.nuxeo_nodes:
        yield error("nuxeo.nodes", "group nuxeo_front", "is empty: no Nuxeo node serves users",
                    "add at least one host to group nuxeo_front (a child of group nuxeo)", of_group(c, "nuxeo_front"))

    both = set(c.view.groups.get("nuxeo_front", [])) & set(c.view.groups.get("nuxeo_worker", []))
    for h in sorted(both):
        yield error("nuxeo.worker_in_lb", f"host {h}",
                    "is in both nuxeo_front and nuxeo_worker; worker nodes never take user traffic from the LB",
                    f"keep {h} in only one of the two groups", of_group(c, "nuxeo_worker"))

    direct = set(c.view.groups.get("nuxeo", [])) - set(c.view.groups.get("nuxeo_front", [])) - set(
        c.view.groups.get("nuxeo_worker", []))
    for h in sorted(direct):
        yield error("nuxeo.role", f"host {h}", "is in group nuxeo but in neither nuxeo_front nor nuxeo_worker",
                    f"move {h} into nuxeo_front (serves users) or nuxeo_worker (runs async work)",
                    of_group(c, "nuxeo"))

    for attr, var, label in (("node_id", "nuxeo_cluster_nodeid", "nuxeo.cluster.nodeid"),
                             ("jvm_route", "nuxeo_jvm_route", "nuxeo.server.jvmRoute")):
        seen: dict[str, str] = {}
        for n in c.nuxeo_nodes:
            value = getattr(n, attr)
            if value in seen:
                yield error(f"nuxeo.unique_{attr}", f"host {n.host}",
                            f"{label} '{value}' is also used by {seen[value]}; it must be unique per node",
                            f"set {var} on {n.host} to another value, or remove it to derive it from the host name",
                            of_setting(c, var, n.host))
            else:
                seen[value] = n.host

    if len(c.nuxeo_nodes) > 1:
        templates = c.derived["nuxeo"]["templates"]
        s3 = c.derived["s3"]
        if "s3binaries" not in templates:
            yield error("nuxeo.shared_binaries", "setting nuxeo_packages",
                        f"{len(c.nuxeo_nodes)} Nuxeo nodes need a shared binary store, and the S3 package is not "
                        "installed",
                        "add amazon-s3-online-storage to nuxeo_packages", of_setting(c, "nuxeo_packages"))
        elif not s3["endpoint"] and c.settings.get("s3_mode") == "seaweedfs":
            yield error("nuxeo.shared_binaries", "group s3",
                        f"is empty: {len(c.nuxeo_nodes)} Nuxeo nodes need a shared binary store",
                        "add a host to group s3, or set s3_mode: external with s3_endpoint", of_group(c, "s3"))
    elif c.nuxeo_nodes and c.settings.get("s3_mode") == "seaweedfs" and not c.s3_hosts \
            and "s3binaries" in c.derived["nuxeo"]["templates"]:
        yield error("nuxeo.shared_binaries", "group s3",
                    "is empty but the S3 package is installed and s3_mode is seaweedfs",
                    "add the host to group s3, or set s3_mode: external with s3_endpoint", of_group(c, "s3"))

    for key in ("nuxeo_version", "nuxeo_packages"):
        values = {repr(n_vars.vars.get(key)) for h, n_vars in c.hosts.items()
                  if h in {n.host for n in c.nuxeo_nodes} and key in n_vars.vars}
        if len(values) > 1:
            yield error(f"nuxeo.same_{key}", f"setting {key}",
                        f"differs between Nuxeo nodes ({', '.join(sorted(values))}); every node must run the same "
                        "distribution and packages",
                        f"set {key} once in group_vars/all (use `nxprovision upgrade` to change it)",
                        of_setting(c, key))

    if c.architecture == "distributed" and len(c.lb_hosts) >= 2 and not c.settings.get("nx_vip"):
        yield error("lb.vip", "setting nx_vip",
                    "is not set; the distributed architecture's two load balancers share a virtual IP",
                    "set nx_vip to a free address in the load balancers' subnet and point nx_public_url at it",
                    c.view.source)
