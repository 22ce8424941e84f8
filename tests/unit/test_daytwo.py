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
        ("2023.35", "2023.35", "already"),
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
