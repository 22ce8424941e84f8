"""remove-node of a search node (issue 15) on the compact cluster (3 search nodes), under a steady load through
the load balancer: refused, untouched, while the two nodes left could not hold every copy (the index's replicas
raised to 2); then drained (allocation exclusion until it holds no shard, cluster green), stopped, its exclusions
lifted and every Nuxeo node's nuxeo.conf rendered without it, rolling and drained: zero failed requests, every
acknowledged write readable. `add-node` brings it back (the operator's way back) and it takes shards again.
A powered-off search node is removed with --unreachable, without contacting it, under the same load."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from typing import Any

import pytest
from cluster_checks import Deployed, recap, wait_for
from conftest import lab, nxprovision
from load import SteadyLoad, unreadable_acks

pytestmark = [pytest.mark.lab, pytest.mark.slow]

VICTIM = "search3"
NUXEO = ("front1", "front2", "worker1")


def search_call(d: Deployed, host: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One REST call to a search node from here, as the roles make it: https with the cluster CA, the admin user."""
    search = d.cluster.derived["search"]
    url = f"{'https' if search['tls'] else 'http'}://{d.address(host)}:{search['http_port']}/{path}"
    headers = {"Content-Type": "application/json"}
    if search["security"]["enabled"]:
        password = d.secret(search["security"]["users"]["admin"]["secret"])
        headers["Authorization"] = "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()
    ctx = ssl.create_default_context(cafile=d.backend_ca) if search["tls"] else None
    req = urllib.request.Request(url, method=method, headers=headers,
                                 data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=30, context=ctx) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def shards_on(d: Deployed, ask: str) -> dict[str, int]:
    status, rows = search_call(d, ask, "GET", "_cat/allocation?format=json&h=node,shards")
    assert status == 200, rows
    return {r["node"]: int(r["shards"]) for r in rows}


def search_hosts_in_nuxeo_conf(lab_: Any, host: str) -> str:
    key = Deployed.load(lab_.inventory).search_keys["address"]
    out = lab_.ssh(host, f"grep '^{key}=' /etc/nuxeo/nuxeo.conf", timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.strip()


def unit_state(lab_: Any, host: str, unit: str) -> tuple[str, str]:
    out = lab_.ssh(host, f"systemctl is-active {unit}; systemctl is-enabled {unit}", timeout=30)
    return tuple([*out.stdout.split(), "?", "?"][:2])  # type: ignore[return-value]


def test_remove_search_node_under_load(compact_cluster) -> None:
    lab_, first = compact_cluster
    assert first.returncode == 0, "the compact deploy failed; see test_deploy_compact"
    d = Deployed.load(lab_.inventory)
    inv = str(lab_.inventory)
    assert VICTIM in d.cluster.search_hosts and len(d.cluster.search_hosts) == 3
    ask = d.cluster.search_hosts[0]
    victim_address = f"{d.address(VICTIM)}:"
    wait_for(lambda: search_call(d, ask, "GET", "_cluster/health")[1].get("status") == "green", 300, "green")
    assert shards_on(d, ask).get(VICTIM, 0) > 0, "the node to remove holds no shard: nothing would be drained"
    index = d.cluster.derived["search"]["index_name"]

    # (a) refused while the two nodes left could not hold every copy: nothing touched, --force or not
    assert search_call(d, ask, "PUT", f"{index}/_settings", {"index": {"number_of_replicas": 2}})[0] == 200
    try:
        refused = nxprovision("remove-node", "-i", inv, VICTIM, "--force", "--progress", "plain")
        out = refused.stdout + refused.stderr
        assert refused.returncode != 0, out[-5000:]
        assert f"removing {VICTIM} is refused: 2 search node(s) would be left" in out, out[-5000:]
        assert "--force does not lift this" in out, out[-5000:]
        assert unit_state(lab_, VICTIM, "opensearch") == ("active", "enabled")
        assert search_call(d, ask, "GET", "_cluster/settings?flat_settings=true")[1]["persistent"] == {}
        assert not (lab_.inventory / ".nxprovision-removed.yml").exists()
    finally:
        search_call(d, ask, "PUT", f"{index}/_settings", {"index": {"number_of_replicas": 1}})

    # (b) removed under load
    with SteadyLoad(d.client, threads=4) as load:
        wait_for(lambda: len(load.stats.acked) >= 10, 120, "the load to get going")
        removed = nxprovision("remove-node", "-i", inv, VICTIM, "--force", "--progress", "plain")
        assert removed.returncode == 0, removed.stdout[-6000:] + removed.stderr[-2000:]
        assert f"{VICTIM} (opensearch) is drained and stopped" in removed.stdout, removed.stdout[-3000:]
    stats = load.stats
    assert stats.failures == [], stats.failures[:20]
    assert len(stats.acked) > 20
    assert unreadable_acks(d.client, stats.acked) == []
    assert unit_state(lab_, VICTIM, "opensearch") == ("inactive", "disabled")
    status, health = search_call(d, ask, "GET", "_cluster/health")
    assert status == 200 and health["status"] == "green" and health["number_of_nodes"] == 2, health
    assert VICTIM not in shards_on(d, ask)
    settings = search_call(d, ask, "GET", "_cluster/settings?flat_settings=true")[1]
    assert "cluster.routing.allocation.exclude._name" not in settings["persistent"], settings  # lifted
    for host in NUXEO:
        conf = search_hosts_in_nuxeo_conf(lab_, host)
        assert victim_address not in conf and f"{d.address(ask)}:" in conf, (host, conf)

    # (c) back with add-node: it clears the removal record, the Nuxeo nodes list it again, it takes shards
    back = nxprovision("add-node", "-i", inv, VICTIM, "--progress", "plain", timeout=2400)
    assert back.returncode == 0, back.stdout[-6000:] + back.stderr[-2000:]
    assert not (lab_.inventory / ".nxprovision-removed.yml").exists()
    for host in NUXEO:
        assert victim_address in search_hosts_in_nuxeo_conf(lab_, host), host
    wait_for(lambda: shards_on(d, ask).get(VICTIM, 0) > 0, 120, f"{VICTIM} holding shards again")


def test_remove_powered_off_search_node_with_unreachable(compact_cluster) -> None:
    """A powered-off search node: removed without contacting it (left out of the run), the survivors green with
    the copies it held, the Nuxeo nodes re-rendered without it; back with `lab start` and add-node."""
    lab_, first = compact_cluster
    assert first.returncode == 0, "the compact deploy failed; see test_deploy_compact"
    d = Deployed.load(lab_.inventory)
    inv = str(lab_.inventory)
    ask = d.cluster.search_hosts[0]
    wait_for(lambda: search_call(d, ask, "GET", "_cluster/health")[1].get("status") == "green", 300, "green")
    lab("kill", "--name", lab_.name, VICTIM, timeout=300)
    try:
        with SteadyLoad(d.client, threads=4) as load:
            wait_for(lambda: len(load.stats.acked) >= 10, 120, "the load to get going")
            removed = nxprovision("remove-node", "-i", inv, VICTIM, "--unreachable", "--force", "--progress", "plain")
            assert removed.returncode == 0, removed.stdout[-6000:] + removed.stderr[-2000:]
            assert "without contacting it" in removed.stdout, removed.stdout[-3000:]
            assert VICTIM not in recap(removed.stdout), "the dead host was part of the run"
        assert load.stats.failures == [], load.stats.failures[:20]
        assert unreadable_acks(d.client, load.stats.acked) == []
        health = search_call(d, ask, "GET", "_cluster/health")[1]
        assert health["status"] == "green" and health["number_of_nodes"] == 2, health
        for host in NUXEO:
            assert f"{d.address(VICTIM)}:" not in search_hosts_in_nuxeo_conf(lab_, host), host
    finally:
        lab("start", "--name", lab_.name, VICTIM, timeout=300)
    back = nxprovision("add-node", "-i", inv, VICTIM, "--progress", "plain", timeout=2400)
    assert back.returncode == 0, back.stdout[-6000:] + back.stderr[-2000:]
    wait_for(lambda: shards_on(d, ask).get(VICTIM, 0) > 0, 120, f"{VICTIM} holding shards again")
