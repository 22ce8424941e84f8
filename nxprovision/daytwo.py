"""Day-2 policy checks, decided before any host is touched: upgrade paths and node removals."""

from __future__ import annotations

import copy

from nxprovision.errors import NxError
from nxprovision.inventory import InventoryView
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
        raise NxError(f"Nuxeo LTS {tgt.lts} is not supported", f"use LTS {', '.join(str(k) for k in MATRIX)}")
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


def check_removal(cluster: Cluster, host: str, force: bool = False) -> list[str]:
    """The rules as they would stand without HOST; errors refuse the removal unless forced."""
    if host not in cluster.hosts:
        raise NxError(f"host {host} is not in the inventory", "name a host listed by `nxprovision plan`")
    after = build_cluster(view_without(cluster.view, host))
    before_rules = {(f.rule, f.subject) for f in run_rules(cluster) if f.severity == "error"}
    broken = [f for f in run_rules(after) if f.severity == "error" and (f.rule, f.subject) not in before_rules]
    lines = [f"{f.subject}: {f.message}" for f in broken]
    if lines and not force:
        raise NxError(f"removing {host} would break the architecture's rules: " + "; ".join(lines),
                      "add a replacement first (add-node), or pass --force to go below the minimum")
    return lines


def add_node_limit(cluster: Cluster, new: list[str]) -> list[str]:
    """The hosts an add-node run converges: the new ones, and those whose configuration lists them."""
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
    return limit
