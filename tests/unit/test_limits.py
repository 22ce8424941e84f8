"""--limit safety: cutting a quorum or replicated group is refused unless forced."""

from __future__ import annotations

from pathlib import Path

import pytest

from nxprovision.errors import NxError
from nxprovision.inventory import load_inventory
from nxprovision.limits import check_limit, hosts_matching
from nxprovision.model.cluster import build_cluster

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "inventories" / "distributed"


@pytest.fixture(scope="module")
def cluster():
    return build_cluster(load_inventory(DIST))


def test_patterns_resolve_like_ansible() -> None:
    assert hosts_matching(DIST, "nuxeo_front") == ["front1", "front2"]
    assert sorted(hosts_matching(DIST, "kafka:!kafka3")) == ["kafka1", "kafka2"]


@pytest.mark.parametrize("pattern", ["kafka1", "search1:search2", "db1", "opensearch:!search3"])
def test_partial_quorum_group_is_refused(cluster, pattern: str) -> None:
    with pytest.raises(NxError) as exc:
        check_limit(cluster, DIST, pattern, force=False)
    assert "quorum" in exc.value.message and "--force" in (exc.value.fix or "")


@pytest.mark.parametrize("pattern", ["nuxeo_front", "front1", "loadbalancers", "kafka", "opensearch,front2"])
def test_whole_groups_and_stateless_nodes_are_fine(cluster, pattern: str) -> None:
    assert check_limit(cluster, DIST, pattern, force=False) == []


def test_force_turns_refusal_into_warnings(cluster) -> None:
    assert check_limit(cluster, DIST, "kafka1", force=True)


def test_limit_matching_nothing_is_an_error(cluster) -> None:
    with pytest.raises(NxError):
        check_limit(cluster, DIST, "nosuchhost", force=False)


def test_deploy_refuses_before_touching_anything(make_inv, run_cli) -> None:
    # a fresh inventory: deploy refuses the samples' public vault password before it looks at the limit
    code, _out, err = run_cli("deploy", "-i", str(make_inv("distributed")), "--limit", "db2")
    assert code == 2 and "quorum" in err and "Traceback" not in err
