"""Day-2 operations under a steady load through the LB (issue 6): add a third front node, roll a restart of
every Nuxeo node, roll an upgrade to another Nuxeo version from the mirror (failing half way first: `deploy`
then refuses to downgrade the node already upgraded, and `upgrade` run again completes, issue 15), apply a
configuration change with `deploy` (the role restarts one drained node at a time), remove a node. Zero failed requests,
every acknowledged write readable at the end, and add-node changes nothing on the other Nuxeo hosts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_checks import Deployed, node_of, recap, wait_for
from conftest import COMPACT_VERSION, DEFAULT_VERSION, FIGURES, lab, nxprovision
from load import SteadyLoad, unreadable_acks
from test_deploy_compact import service_starts

pytestmark = pytest.mark.lab

UPGRADE_FROM = COMPACT_VERSION  # what the compact_cluster fixture deploys
UPGRADE_TO = DEFAULT_VERSION
NUXEO_NODES = ("front1", "front2", "front3", "worker1")


def recorded_versions(lab_: Any) -> dict[str, str]:
    """The version each Nuxeo node records in its local fact (ansible_local.nuxeo.version)."""
    out = {}
    for host in NUXEO_NODES:
        fact = lab_.ssh(host, "cat /etc/ansible/facts.d/nuxeo.fact")
        assert fact.returncode == 0, (host, fact.stderr)
        out[host] = str(json.loads(fact.stdout)["version"])
    return out


def node_version(d: Deployed, host: str) -> str:
    """The version a node serves, asked of the node itself (not through the load balancer)."""
    from nuxeo.client import Nuxeo

    node = d.cluster.node(host)
    assert node is not None, host
    nx = Nuxeo(
        host=f"http://{node.address}:{node.port}/nuxeo/",
        auth=("Administrator", d.secret("nx_secret_nuxeo_admin_password")),
    )
    return str(nx.client.server_info(force=True)["productVersion"])


def drop_host(inventory: Path, host: str) -> None:
    """The operator's step after remove-node: the host leaves every group of the inventory."""
    hosts_yml = inventory / "hosts.yml"
    data = yaml.safe_load(hosts_yml.read_text())

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("hosts"), dict):
                node["hosts"].pop(host, None)
            for v in node.values():
                walk(v)

    walk(data)
    hosts_yml.write_text(yaml.safe_dump(data, default_flow_style=False, sort_keys=False))
    assert host not in hosts_yml.read_text()


def changed_by_host(text: str) -> dict[str, int]:
    return {h: r[1] for h, r in recap(text).items()}


def test_day2_operations_under_load(compact_cluster) -> None:
    lab_, first = compact_cluster
    assert first.returncode == 0, "the compact deploy failed; see test_deploy_compact"
    inv = str(lab_.inventory)
    d = Deployed.load(lab_.inventory)
    timings: dict[str, float] = {}

    with SteadyLoad(d.client, threads=4) as load:
        wait_for(lambda: len(load.stats.acked) >= 10, 120, "the load to get going")

        # (a) add a third front node
        t0 = time.monotonic()
        lab("add-host", "--name", lab_.name, "front3", "--group", "nuxeo_front")
        timings["add_host_s"] = time.monotonic() - t0
        others = ["lb1", "front1", "front2", "worker1", "db1", "db2", "search1", "kafka1", "s3-1"]
        started_before = service_starts(lab_, others)
        t0 = time.monotonic()
        added = nxprovision("add-node", "-i", inv, "front3", "--progress", "plain")
        timings["add_node_s"] = time.monotonic() - t0
        assert added.returncode == 0, added.stdout[-5000:] + added.stderr[-2000:]
        changed = changed_by_host(added.stdout)
        assert "front3" in changed and "lb1" in changed
        for other in ("front1", "front2", "worker1"):
            assert changed.get(other, 0) == 0, f"add-node touched {other}: {changed}"
        # nothing restarted but the new node (HAProxy reloads, it does not restart)
        assert service_starts(lab_, others) == started_before
        d3 = Deployed.load(lab_.inventory)
        wait_for(lambda: "front3" in {node_of(d3.client()) for _ in range(12)}, 90, "front3 serving through the LB")

        # (b) rolling restart of every Nuxeo node
        t0 = time.monotonic()
        restart = nxprovision("restart", "-i", inv, "--component", "nuxeo", "--progress", "plain")
        timings["rolling_restart_s"] = time.monotonic() - t0
        assert restart.returncode == 0, restart.stdout[-5000:] + restart.stderr[-2000:]

        # (c) rolling upgrade to another version from the mirror. It fails half way first: front2's download cache
        # is a 4 KiB tmpfs, so front1 (first in the roll) is upgraded and the roll stops on front2's download.
        assert set(recorded_versions(lab_).values()) == {UPGRADE_FROM}
        full = lab_.ssh("front2", "mount -t tmpfs -o size=4k nxp-full /var/cache/nxprovision")
        assert full.returncode == 0, full.stdout + full.stderr
        try:
            t0 = time.monotonic()
            broken = nxprovision("upgrade", "-i", inv, "--nuxeo-version", UPGRADE_TO, "--progress", "plain")
            timings["failed_upgrade_s"] = time.monotonic() - t0
            assert broken.returncode == 1, broken.stdout[-5000:] + broken.stderr[-2000:]
            assert "front2 failed at task 'nuxeo : Download the Nuxeo distribution'" in broken.stdout, (
                broken.stdout[-5000:]
            )
            recorded = recorded_versions(lab_)
            assert recorded == {**dict.fromkeys(NUXEO_NODES, UPGRADE_FROM), "front1": UPGRADE_TO}, recorded
            # the inventory still names the older version: `deploy` refuses to take front1 back, naming it
            t0 = time.monotonic()
            refused = nxprovision("deploy", "-i", inv, "--progress", "plain")
            timings["refused_deploy_s"] = time.monotonic() - t0
            out = refused.stdout
            assert refused.returncode == 2, out[-5000:] + refused.stderr[-2000:]
            refusal = f"REFUSED: Nuxeo {UPGRADE_FROM} is older than the version this node runs: front1 ({UPGRADE_TO})"
            assert refusal in out, out[-5000:]
            assert f"--nuxeo-version {UPGRADE_TO}" in out and "--allow-downgrade" in out, out[-3000:]
            assert "failed at task" not in out and "nothing was changed" in out, out[-3000:]
            assert recorded_versions(lab_)["front1"] == UPGRADE_TO
        finally:
            lab_.ssh("front2", "umount /var/cache/nxprovision")
        # `upgrade` again resumes: front1 is not rolled again (nor restarted), the others are
        front1_starts = service_starts(lab_, ["front1"])
        t0 = time.monotonic()
        upgrade = nxprovision("upgrade", "-i", inv, "--nuxeo-version", UPGRADE_TO, "--progress", "plain")
        timings["rolling_upgrade_s"] = time.monotonic() - t0
        assert upgrade.returncode == 0, upgrade.stdout[-5000:] + upgrade.stderr[-2000:]
        assert service_starts(lab_, ["front1"]) == front1_starts
        assert recorded_versions(lab_) == dict.fromkeys(NUXEO_NODES, UPGRADE_TO)
        versions = {n: node_version(d3, n) for n in NUXEO_NODES}
        assert set(versions.values()) == {UPGRADE_TO}, versions
        assert str(d.client().client.server_info(force=True)["productVersion"]) == UPGRADE_TO

        # (e) a configuration change applied by `deploy`: the role restarts each node in turn, drained first
        # added to the lab's own nuxeo_conf_extra when it has one (a second top-level key would replace it whole)
        main_yml = lab_.inventory / "group_vars" / "all" / "main.yml"
        data = yaml.safe_load(main_yml.read_text())
        before = dict(data.get("nuxeo_conf_extra") or {})
        data["nuxeo_conf_extra"] = {**before, "nuxeo.rolling.note": "day2"}
        main_yml.write_text(yaml.safe_dump(data, sort_keys=False))
        extra = yaml.safe_load(main_yml.read_text())["nuxeo_conf_extra"]
        assert extra == {**before, "nuxeo.rolling.note": "day2"}, extra
        t0 = time.monotonic()
        # limited to the Nuxeo nodes, as an operator changing nuxeo.conf only would run it (the load balancers are
        # still driven: each node is drained there before its restart)
        changed_conf = nxprovision("deploy", "-i", inv, "--limit", "nuxeo", "--progress", "plain")
        timings["config_change_deploy_s"] = time.monotonic() - t0
        assert changed_conf.returncode == 0, changed_conf.stdout[-5000:] + changed_conf.stderr[-2000:]
        restarted = changed_conf.stdout.count("Restart Nuxeo on the node")
        assert restarted >= 1, changed_conf.stdout[-5000:]
        assert set(changed_by_host(changed_conf.stdout)) - {"localhost"} == {"front1", "front2", "front3", "worker1"}
        for node in ("front1", "front2", "front3", "worker1"):
            conf = lab_.ssh(node, "grep -c '^nuxeo.rolling.note=day2' /etc/nuxeo/nuxeo.conf")
            assert conf.stdout.strip() == "1", (node, conf.stdout, conf.stderr)

        # (d) remove a node
        t0 = time.monotonic()
        removed = nxprovision("remove-node", "-i", inv, "front3", "--progress", "plain")
        timings["remove_node_s"] = time.monotonic() - t0
        assert removed.returncode == 0, removed.stdout[-5000:] + removed.stderr[-2000:]
        assert "delete it from the inventory" in removed.stdout
        # until the operator deletes it, a roll is refused up front, naming the host and the fix
        t0 = time.monotonic()
        refused = nxprovision("restart", "-i", inv, "--component", "nuxeo", "--progress", "plain")
        timings["refused_restart_s"] = time.monotonic() - t0
        assert refused.returncode == 2, refused.stdout[-3000:] + refused.stderr[-2000:]
        assert "front3 (removed " in refused.stderr and "no host was touched" in refused.stderr, refused.stderr
        drop_host(lab_.inventory, "front3")  # as remove-node asks; later tests of the session run without it
        checked = nxprovision("validate", "-i", inv)
        assert checked.returncode == 0 and "removed_host" not in checked.stdout, checked.stdout[-3000:]
        assert not (lab_.inventory / ".nxprovision-removed.yml").exists()  # the removal is finished
        time.sleep(5)

    stats = load.stats
    timings = {k: round(v, 1) for k, v in timings.items()}
    FIGURES.update({f"day-2 {k.removesuffix('_s')}": v for k, v in timings.items()})
    print(
        f"load: {stats.requests} requests, {len(stats.failures)} failed, {len(stats.acked)} acknowledged writes; "
        f"timings {timings}"
    )
    assert stats.failures == [], stats.failures[:20]
    assert len(stats.acked) > 50
    assert unreadable_acks(d.client, stats.acked) == []
