"""remove-node of a MongoDB replica-set member (issue 15) on the compact architecture on MongoDB (3 members), under a
steady load through the load balancer.

Refused, untouched: a secondary while the members left would not be a healthy majority (another member's mongod
stopped), and the primary, which must step down first: the lab's MongoDB has no elections, so it refuses
replSetStepDown and the run stops there with nothing changed (a real set would elect another primary; the
step-down path is covered by unit tests). Then a secondary taken out of the set (replSetReconfig on the primary),
stopped, and every Nuxeo node's nuxeo.mongodb.server rendered without it, rolling and drained: zero failed
requests, every acknowledged write readable, the primary's replSetGetStatus listing 2 members. With the host
deleted from the inventory, a deploy changes nothing; removing one more (leaving 1) is refused by the
architecture's minimum.

The lab runs Debian 12: the stand-in's vendored SecantusDB is built for CPython 3.11. NXP_REUSE_LAB=1 runs the
scenario on a lab of that name already deployed (while developing it); NXP_KEEP_LAB=1 leaves the lab up.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Iterator

import pytest
import yaml
from cluster_checks import Deployed, recap, wait_for
from conftest import STATE_ROOT, Lab, bring_up, lab, lab_name, nxprovision, require_lab_machine
from load import SteadyLoad, unreadable_acks

pytestmark = [pytest.mark.lab, pytest.mark.slow]

NAME = lab_name("nxmongorm")
MEMBERS = ("mongo1", "mongo2", "mongo3")
NUXEO = ("front1", "front2", "worker1")

# Runs on a member with the system python3 and Debian's pymongo: replSetGetStatus as the administrator.
STATUS = r"""
import json, os, pymongo
c = pymongo.MongoClient("127.0.0.1", 27017, username="admin", password=os.environ["NXPW"], authSource="admin",
                        directConnection=True, serverSelectionTimeoutMS=10000)
s = c.admin.command("replSetGetStatus")
print(json.dumps([[m["name"], m["stateStr"]] for m in s["members"]]))
"""


@pytest.fixture(scope="module")
def compact_mongodb() -> Iterator[Lab]:
    require_lab_machine()
    if os.environ.get("NXP_REUSE_LAB"):
        status = json.loads(lab("status", "--json", "--name", NAME).stdout)
        yield Lab(name=NAME, inventory=STATE_ROOT / NAME / "inventory", status=status)
        return
    try:
        lab_ = bring_up(NAME, "--architecture", "compact", "--database", "mongodb", "--os", "debian12")
        first = nxprovision("deploy", "-i", str(lab_.inventory), "--progress", "plain", timeout=3000)
        assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-2000:]
        yield lab_
    finally:
        if not os.environ.get("NXP_KEEP_LAB"):
            lab("down", "--name", NAME, check=False)


def unit_state(lab_: Lab, host: str, unit: str) -> tuple[str, str]:
    out = lab_.ssh(host, f"systemctl is-active {unit}; systemctl is-enabled {unit}", timeout=30)
    return tuple([*out.stdout.split(), "?", "?"][:2])  # type: ignore[return-value]


def set_status(lab_: Lab, d: Deployed, host: str = "mongo1") -> list[list[str]]:
    cmd = f"NXPW={shlex.quote(d.secret('nx_secret_db_admin_password'))} python3 -c {shlex.quote(STATUS)}"
    out = lab_.ssh(host, cmd, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def mongodb_server(lab_: Lab, host: str) -> str:
    out = lab_.ssh(host, "grep '^nuxeo.mongodb.server=' /etc/nuxeo/nuxeo.conf", timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.split("@", 1)[-1].strip()  # the members and the rest, not the password


def remove(lab_: Lab, host: str, *extra: str, timeout: float = 2400) -> subprocess.CompletedProcess[str]:
    return nxprovision("remove-node", "-i", str(lab_.inventory), host, *extra, "--progress", "plain", timeout=timeout)


def test_remove_a_secondary_under_load_and_refuse_what_would_break_the_set(compact_mongodb: Lab) -> None:
    lab_ = compact_mongodb
    d = Deployed.load(lab_.inventory)
    addr = {h: f"{d.address(h)}:27017" for h in MEMBERS}
    assert set_status(lab_, d) == [[addr["mongo1"], "PRIMARY"], [addr["mongo2"], "SECONDARY"],
                                   [addr["mongo3"], "SECONDARY"]]
    record = lab_.inventory / ".nxprovision-removed.yml"

    # (a) a secondary while the members left would not be a healthy majority: mongo2 down, mongo3 asked for
    assert lab_.ssh("mongo2", "systemctl stop mongod", timeout=120).returncode == 0
    try:
        refused = remove(lab_, "mongo3", timeout=900)
        out = refused.stdout + refused.stderr
        assert refused.returncode != 0, out[-5000:]
        assert ("removing mongo3 is refused: without " + addr["mongo3"] + ", rs0 would keep 2 voting member(s), of "
                "which 1 healthy") in out, out[-5000:]
        assert "--force does not lift this" in out, out[-5000:]
        assert unit_state(lab_, "mongo3", "mongod") == ("active", "enabled")
        assert not record.exists()
    finally:
        assert lab_.ssh("mongo2", "systemctl start mongod", timeout=120).returncode == 0
    wait_for(lambda: [s for _, s in set_status(lab_, d)] == ["PRIMARY", "SECONDARY", "SECONDARY"], 120,
             "mongo2 back in the set")

    # (b) the primary: its step-down is refused by the lab's MongoDB (no elections); the run stops, nothing changed
    refused = remove(lab_, "mongo1", timeout=900)
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0, out[-5000:]
    assert "removing mongo1 stopped:" in out and "replSetStepDown refused by the MongoDB stand-in" in out, out[-5000:]
    assert "It is still a member of the set and mongod still runs on it" in out, out[-5000:]
    assert unit_state(lab_, "mongo1", "mongod") == ("active", "enabled")
    assert len(set_status(lab_, d)) == 3 and not record.exists()

    # (c) a secondary under load: out of the set, stopped, the Nuxeo nodes rendered without it
    with SteadyLoad(d.client, threads=4) as load:
        wait_for(lambda: len(load.stats.acked) >= 10, 120, "the load to get going")
        removed = remove(lab_, "mongo3")
        assert removed.returncode == 0, removed.stdout[-6000:] + removed.stderr[-2000:]
        assert "mongo3 (mongodb) is drained and stopped" in removed.stdout, removed.stdout[-3000:]
    stats = load.stats
    print(f"MongoDB member removal under load: {stats.requests} requests, {len(stats.failures)} failed, "
          f"{len(stats.acked)} acknowledged writes")
    assert stats.failures == [], stats.failures[:20]
    assert len(stats.acked) > 20
    assert unreadable_acks(d.client, stats.acked) == []
    assert unit_state(lab_, "mongo3", "mongod") == ("inactive", "disabled")
    assert set_status(lab_, d) == [[addr["mongo1"], "PRIMARY"], [addr["mongo2"], "SECONDARY"]]
    for host in NUXEO:
        server = mongodb_server(lab_, host)
        assert server.startswith(f"{addr['mongo1']},{addr['mongo2']}/nuxeo?replicaSet=rs0"), (host, server)
        assert d.address("mongo3") not in server, (host, server)

    # (d) the host deleted from the inventory: a deploy changes nothing, the removal record is dropped
    hosts_yml = lab_.inventory / "hosts.yml"
    inv = yaml.safe_load(hosts_yml.read_text())
    drop_host(inv, "mongo3")
    hosts_yml.write_text(yaml.safe_dump(inv, default_flow_style=False, sort_keys=False))
    again = nxprovision("deploy", "-i", str(lab_.inventory), "--progress", "plain", timeout=2400)
    assert again.returncode == 0, again.stdout[-6000:] + again.stderr[-2000:]
    changed = {h: r for h, r in recap(again.stdout).items() if r[1]}
    assert changed == {}, (changed, again.stdout[-6000:])
    assert "mongo3" not in recap(again.stdout)
    assert not record.exists()

    # (e) one more would leave a single member: below the compact architecture's minimum, refused untouched
    refused = remove(lab_, "mongo2", timeout=600)
    out = refused.stdout + refused.stderr
    assert refused.returncode == 2, out[-5000:]
    assert "removing mongo2 would break the architecture's rules" in out and "needs at least 2" in out, out[-3000:]
    assert unit_state(lab_, "mongo2", "mongod") == ("active", "enabled")
    assert len(set_status(lab_, d)) == 2


def drop_host(node: object, host: str) -> None:
    """Delete HOST from every group of a hosts.yml document, as the operator does after remove-node."""
    if isinstance(node, dict):
        hosts = node.get("hosts")
        if isinstance(hosts, dict):
            hosts.pop(host, None)
            if not hosts:
                node.pop("hosts")
        for value in list(node.values()):
            drop_host(value, host)
