"""Day-2 policy checks, decided before any host is touched: upgrade paths and node removals."""

from __future__ import annotations

import copy
from pathlib import Path

from nxprovision.errors import NxError
from nxprovision.inventory import InventoryView
from nxprovision.model import compat
from nxprovision.model.cluster import Cluster, build_cluster
from nxprovision.model.versions import MATRIX, NuxeoVersion
from nxprovision.rules import run_rules


def check_upgrade(current: str, target: str, full_stop: bool = False) -> str:
    """'rolling' or 'full-stop'; refuses downgrades, and LTS jumps unless full_stop. The inventory's own version
    is accepted: it resumes an upgrade (the playbook skips the nodes that already record it)."""
    cur, tgt = NuxeoVersion.parse(current), NuxeoVersion.parse(target)
    if tgt is None:
        raise NxError(f"'{target}' is not a Nuxeo LTS version", "write it as <LTS>.<hotfix>, e.g. 2023.35")
    if tgt.lts not in MATRIX:
        coming = " yet: its deployment is coming" if tgt.lts in compat.load().lts else ""
        raise NxError(f"Nuxeo LTS {tgt.lts} is not supported{coming}", f"use LTS {', '.join(str(k) for k in MATRIX)}")
    if cur is None:
        raise NxError(f"the inventory's nuxeo_version '{current}' is not an LTS version",
                      "fix nuxeo_version in group_vars/all first")
    if tgt < cur:
        raise NxError(f"{target} is older than the running {current}: downgrades are refused",
                      "restore from a backup taken before the upgrade to go back")
    if tgt.lts != cur.lts:
        if not full_stop:
            raise NxError(f"{current} -> {target} crosses LTS majors: nodes of two majors must never run together",
                          "pass --full-stop (stops every node, upgrades, starts them again) after reading Nuxeo's "
                          "upgrade notes for that major")
        return "full-stop"
    return "full-stop" if full_stop else "rolling"


def view_without(view: InventoryView, host: str) -> InventoryView:
    v = copy.copy(view)
    v.groups = {g: [h for h in hs if h != host] for g, hs in view.groups.items()}
    v.hostvars = {h: hv for h, hv in view.hostvars.items() if h != host}
    return v


# remove-node's fixed order (playbooks/remove_node.yml runs tasks/remove/<component>.yml in it): Nuxeo first, so
# no request reaches a node whose database or balancer is leaving; Patroni before etcd, since the switchover and
# the member key need etcd; data components last.
REMOVE_ORDER: tuple[str, ...] = (
    "nuxeo_front", "nuxeo_worker", "loadbalancers", "patroni", "postgresql", "etcd",
    "mongodb", "opensearch", "kafka", "zookeeper", "s3",
)
# Components that hold data: their last member is never removed, --force or not (it holds the last copy).
DATA_COMPONENTS: frozenset[str] = frozenset({"patroni", "postgresql", "mongodb", "opensearch", "kafka", "s3"})
_GROUP_OF = {"patroni": "postgresql"}


def removal_components(nx: dict, host: str) -> list[str]:
    """The components of HOST in remove-node's order, from the `nx` fact (Cluster.to_facts()): the
    postgresql group is `patroni` when Patroni manages the database."""
    groups = list((nx.get("hosts", {}).get(host) or {}).get("components") or [])
    patroni = (nx.get("db") or {}).get("manager") == "patroni"
    present = {("patroni" if g == "postgresql" and patroni else g) for g in groups}
    return [c for c in REMOVE_ORDER if c in present]


def removal_plan(nx: dict, host: str, hooks_dir: Path) -> dict[str, list[str]]:
    """What remove_node.yml runs for HOST, in order: the optional check/<component>.yml hooks, each component's
    <component>.yml (a component without one falls back to `service.yml`: its service stopped, nothing moved),
    then the optional after/<component>.yml hooks. Hooks are found by file name: adding one plugs it in."""
    comps = removal_components(nx, host)
    return {
        "components": comps,
        "checks": [c for c in comps if (hooks_dir / "check" / f"{c}.yml").is_file()],
        "tasks": [f"{c}.yml" if (hooks_dir / f"{c}.yml").is_file() else "service.yml" for c in comps],
        "afters": [c for c in comps if (hooks_dir / "after" / f"{c}.yml").is_file()],
    }


def _last_member_refusals(cluster: Cluster, host: str) -> tuple[list[str], list[str]]:
    """(refusals --force cannot lift, refusals it can): the last member of a component, the primary of a
    database that has no automatic failover."""
    hard: list[str] = []
    soft: list[str] = []
    for comp in removal_components(cluster.to_facts(), host):
        members = cluster.view.groups.get(_GROUP_OF.get(comp, comp), [])
        if members == [host]:
            what = f"{host} is the last {comp} host"
            if comp in DATA_COMPONENTS:
                hard.append(f"{what}: it holds the only copy of that component's data")
            elif comp != "nuxeo_worker":  # workers are optional: fronts run async work without them
                soft.append(f"{what}: the cluster would have none")
    db = cluster.derived.get("db") or {}
    if "postgresql" in cluster.hosts[host].groups and db.get("manager") != "patroni" and db.get("primary") == host \
            and len(db.get("hosts") or []) > 1:
        hard.append(f"{host} is the PostgreSQL primary (no automatic failover in this architecture): "
                    "promote a replica and make it the primary in the inventory first")
    return hard, soft


def check_removal(cluster: Cluster, host: str, force: bool = False) -> list[str]:
    """The rules as they would stand without HOST; errors refuse the removal unless forced. The last copy of
    data is refused even when forced."""
    if host not in cluster.hosts:
        raise NxError(f"host {host} is not in the inventory", "name a host listed by `nxprovision plan`")
    hard, soft = _last_member_refusals(cluster, host)
    if hard:
        raise NxError(f"removing {host} is refused: " + "; ".join(hard) + "; nothing was touched",
                      "add a replacement first (add-node) and let it take the data; --force does not lift this")
    after = build_cluster(view_without(cluster.view, host))
    before_rules = {(f.rule, f.subject) for f in run_rules(cluster) if f.severity == "error"}
    broken = [f for f in run_rules(after) if f.severity == "error" and (f.rule, f.subject) not in before_rules]
    lines = soft + [f"{f.subject}: {f.message}" for f in broken]
    if lines and not force:
        raise NxError(f"removing {host} would break the architecture's rules: " + "; ".join(lines),
                      "add a replacement first (add-node), or pass --force to go below the minimum")
    return lines


def add_node_limit(cluster: Cluster, new: list[str]) -> list[str]:
    """The hosts an add-node run converges: the new ones, and those whose configuration lists them."""
    return add_node_hosts(cluster, new) + add_node_firewall_hosts(cluster, new)


def add_node_firewall_hosts(cluster: Cluster, new: list[str]) -> list[str]:
    """The hosts whose only change is a firewall rule admitting a new host (its search, Kafka, S3 or database
    peers): add-node runs the firewall play alone on them, before the new hosts' services start."""
    others = add_node_hosts(cluster, new)
    firewall = cluster.derived.get("firewall") or {}
    if not firewall.get("enabled"):
        return []
    # The host firewalls admit the new hosts by address: every host with a rule naming one reloads its rules.
    new_addresses = {cluster.hosts[h].address for h in new if h in cluster.hosts}
    return [h for h, part in firewall["hosts"].items() if h not in others and any(
        r["sources"] != "any" and new_addresses & set(r["sources"]) for r in part["rules"])]


def add_node_hosts(cluster: Cluster, new: list[str]) -> list[str]:
    """The hosts add-node converges whole: the new ones and those whose own configuration lists them."""
    limit = list(new)
    if any((n := cluster.node(h)) is not None and n.role == "front" for h in new):
        # The load balancers re-render their backend list; they run after the new nodes serve (site.yml order).
        limit += [h for h in cluster.lb_hosts if h not in limit]
    if any(cluster.node(h) is not None for h in new) and cluster.database == "postgresql":
        # pg_hba lets in the Nuxeo nodes by address: the database hosts reload it (no restart).
        limit += [h for h in cluster.db_hosts if h not in limit]
    if any({"kafka", "opensearch"} & set(cluster.hosts[h].groups) for h in new):
        # Nuxeo nodes list every broker and search node in nuxeo.conf: they take the new ones in the same run,
        # restarted one at a time and drained from the load balancers (the nuxeo role's handler).
        limit += [n.host for n in cluster.nuxeo_nodes if n.host not in limit]
    if cluster.monitoring_hosts:
        # Prometheus's targets list every host: the monitoring host re-renders them (a reload, no restart).
        limit += [h for h in cluster.monitoring_hosts if h not in limit]
    return limit
