"""`--limit` safety: a partial run must not leave a quorum group or a replicated set half-converged."""

from __future__ import annotations

from pathlib import Path

from nxprovision.errors import NxError
from nxprovision.model.architectures import QUORUM_GROUPS
from nxprovision.model.cluster import Cluster


def hosts_matching(inventory: Path, pattern: str) -> list[str]:
    """Hosts an Ansible --limit pattern selects, resolved by Ansible itself."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    from nxprovision.inventory import _quiet_display

    with _quiet_display():
        inv = InventoryManager(loader=DataLoader(), sources=[str(inventory)])
        inv.subset(pattern)
        return [h.name for h in inv.get_hosts("all")]


def partial_groups(cluster: Cluster, selected: list[str]) -> list[str]:
    """One line per quorum/replicated group the selection cuts in two."""
    chosen = set(selected)
    problems = []
    for group in QUORUM_GROUPS:
        members = cluster.view.groups.get(group, [])
        inside = [h for h in members if h in chosen]
        if inside and len(inside) < len(members):
            outside = [h for h in members if h not in chosen]
            problems.append(f"group {group}: the limit selects {', '.join(inside)} but not {', '.join(outside)}")
    return problems


def check_limit(cluster: Cluster, inventory: Path, pattern: str | None, force: bool) -> list[str]:
    if not pattern:
        return []
    selected = hosts_matching(inventory, pattern)
    if not selected:
        raise NxError(f"--limit '{pattern}' matches no host of {inventory}",
                      "check the pattern against `nxprovision plan` (host names and groups)")
    problems = partial_groups(cluster, selected)
    if problems and not force:
        raise NxError(
            "--limit would converge only part of a quorum or replicated group (" + "; ".join(problems) + ")",
            "include the whole group in the limit, use the day-2 verbs (add-node, restart), or pass --force")
    return problems
