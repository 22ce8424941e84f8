"""Day-2 policies: upgrade paths and removal minimums, decided before touching a host."""

from __future__ import annotations

from pathlib import Path

import pytest

from nxprovision.daytwo import check_removal, check_upgrade
from nxprovision.errors import NxError
from nxprovision.inventory import load_inventory
from nxprovision.model.cluster import build_cluster

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("cur", "tgt", "full", "mode"),
    [
        ("2023.34", "2023.35", False, "rolling"),
        ("2023.34", "2023.35", True, "full-stop"),
        ("2021.40", "2023.35", True, "full-stop"),
    ],
)
def test_allowed_upgrades(cur: str, tgt: str, full: bool, mode: str) -> None:
    assert check_upgrade(cur, tgt, full) == mode


@pytest.mark.parametrize(
    ("cur", "tgt", "words"),
    [
        ("2023.35", "2023.34", "downgrade"),
        ("2021.40", "2023.35", "--full-stop"),
        ("2023.35", "latest", "not a Nuxeo LTS"),
        ("2023.35", "2019.10", "not supported"),
    ],
)
def test_refused_upgrades(cur: str, tgt: str, words: str) -> None:
    with pytest.raises(NxError) as exc:
        check_upgrade(cur, tgt)
    assert words in str(exc.value)


def test_removal_below_minimum_is_refused() -> None:
    cluster = build_cluster(load_inventory(ROOT / "inventories" / "compact"))
    with pytest.raises(NxError) as exc:
        check_removal(cluster, "front2")
    assert "at least 2" in exc.value.message
    with pytest.raises(NxError) as exc:
        check_removal(cluster, "search3")  # 2 search nodes: below 3 and even
    assert "search" in exc.value.message
    assert check_removal(cluster, "front2", force=True)


def test_removing_a_worker_is_fine() -> None:
    cluster = build_cluster(load_inventory(ROOT / "inventories" / "compact"))
    assert check_removal(cluster, "worker1") == []


def test_add_node_limits() -> None:
    from nxprovision.daytwo import add_node_limit

    cluster = build_cluster(load_inventory(ROOT / "inventories" / "compact"))
    fronts = [n.host for n in cluster.nuxeo_nodes if n.role == "front"]
    workers = [n.host for n in cluster.nuxeo_nodes if n.role == "worker"]
    # a front node: it, the load balancers (backend list) and the database hosts (pg_hba); no other Nuxeo node
    limit = add_node_limit(cluster, [fronts[-1]])
    assert set(limit) == {fronts[-1], *cluster.lb_hosts, *cluster.db_hosts}
    # a worker: not in the load balancers
    assert set(add_node_limit(cluster, [workers[0]])) == {workers[0], *cluster.db_hosts}
    # a search node or a broker: every Nuxeo node learns it in the same run (rolling, drained restarts)
    search = cluster.search_hosts[-1]
    assert set(add_node_limit(cluster, [search])) == {search, *(n.host for n in cluster.nuxeo_nodes)}
    broker = cluster.kafka_brokers[-1].host
    assert set(add_node_limit(cluster, [broker])) == {broker, *(n.host for n in cluster.nuxeo_nodes)}
