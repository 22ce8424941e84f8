"""remove-node of a Kafka broker (issue 15) on a distributed lab (3 brokers, KRaft), under a steady load through the
load balancer: refused, untouched, while the controllers left would not answer as a quorum (another broker
stopped); then its partitions reassigned away with kafka-reassign-partitions.sh, stopped, unregistered, the
surviving brokers re-rendered with the smaller voter set and every Nuxeo node's kafka.bootstrap.servers without it,
rolling and drained: zero failed requests, every acknowledged write readable, the Kafka tools on the survivors
listing the brokers left only and no under-replicated partition. A second run changes nothing."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from cluster_checks import Deployed, recap, wait_for
from conftest import Lab, bring_up, lab, lab_name, nxprovision, require_lab_machine
from load import SteadyLoad, unreadable_acks

pytestmark = [pytest.mark.lab, pytest.mark.slow]

VICTIM = "kafka3"
NUXEO = ("front1", "front2", "worker1")
TOOLS = "/opt/kafka/bin"
CLIENT = "--command-config /etc/kafka/client.properties"


@pytest.fixture(scope="module")
def distributed() -> Iterator[Lab]:
    require_lab_machine()
    name = lab_name("dist")
    try:
        lab_ = bring_up(name, "--architecture", "distributed")
        first = nxprovision("deploy", "-i", str(lab_.inventory), "--progress", "plain", timeout=3000)
        assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-2000:]
        yield lab_
    finally:
        if not os.environ.get("NXP_KEEP_LAB"):
            lab("down", "--name", name, check=False)


def unit_state(lab_: Lab, host: str, unit: str) -> tuple[str, str]:
    out = lab_.ssh(host, f"systemctl is-active {unit}; systemctl is-enabled {unit}", timeout=30)
    return tuple([*out.stdout.split(), "?", "?"][:2])  # type: ignore[return-value]


def kafka_tool(lab_: Lab, d: Deployed, host: str, command: str) -> str:
    broker = next(b for b in d.cluster.derived["kafka"]["brokers"] if b["host"] == host)
    out = lab_.ssh(host, f"{TOOLS}/{command} --bootstrap-server {broker['address']}:{broker['port']} {CLIENT}",
                   timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def conf_line(lab_: Lab, host: str, path: str, key: str) -> str:
    out = lab_.ssh(host, f"grep '^{key}=' {path}", timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.strip()


def test_remove_kafka_broker_under_load(distributed: Lab) -> None:
    lab_ = distributed
    d = Deployed.load(lab_.inventory)
    inv = str(lab_.inventory)
    brokers = d.cluster.derived["kafka"]["brokers"]
    assert [b["host"] for b in brokers] == ["kafka1", "kafka2", "kafka3"]
    victim = f"{d.address(VICTIM)}:"
    survivors = [b["host"] for b in brokers if b["host"] != VICTIM]

    # (a) refused while the controllers left would not answer as a quorum: nothing touched
    assert lab_.ssh("kafka2", "systemctl stop kafka", timeout=120).returncode == 0
    try:
        refused = nxprovision("remove-node", "-i", inv, VICTIM, "--force", "--progress", "plain")
        out = refused.stdout + refused.stderr
        assert refused.returncode != 0, out[-5000:]
        assert f"removing {VICTIM} is refused: the KRaft controller quorum would keep 2 voter(s)" in out, out[-5000:]
        assert unit_state(lab_, VICTIM, "kafka") == ("active", "enabled")
        assert not (lab_.inventory / ".nxprovision-removed.yml").exists()
    finally:
        lab_.ssh("kafka2", "systemctl start kafka", timeout=120)
    wait_for(lambda: lab_.ssh("kafka2", f"{TOOLS}/kafka-topics.sh --bootstrap-server {d.address('kafka2')}:9092 "
                                        f"{CLIENT} --list", timeout=60).returncode == 0, 180, "kafka2 back")

    # (b) removed under load
    with SteadyLoad(d.client, threads=4) as load:
        wait_for(lambda: len(load.stats.acked) >= 10, 120, "the load to get going")
        removed = nxprovision("remove-node", "-i", inv, VICTIM, "--force", "--progress", "plain", timeout=2400)
        assert removed.returncode == 0, removed.stdout[-6000:] + removed.stderr[-2000:]
        assert f"{VICTIM} (kafka) is drained and stopped" in removed.stdout, removed.stdout[-3000:]
    stats = load.stats
    assert stats.failures == [], stats.failures[:20]
    assert len(stats.acked) > 20
    assert unreadable_acks(d.client, stats.acked) == []
    assert unit_state(lab_, VICTIM, "kafka") == ("inactive", "disabled")

    # the Kafka tools on the survivors see the brokers left only, every topic fully replicated
    for host in survivors:
        listed = kafka_tool(lab_, d, host, "kafka-broker-api-versions.sh")
        assert victim not in listed and f"{d.address(host)}:" in listed, (host, listed)
        assert kafka_tool(lab_, d, host, "kafka-topics.sh --describe --under-replicated-partitions").strip() == ""
        voters = conf_line(lab_, host, "/etc/kafka/server.properties", "controller.quorum.voters")
        assert victim not in voters and voters.count("@") == 2, (host, voters)
    for host in NUXEO:
        servers = conf_line(lab_, host, "/etc/nuxeo/nuxeo.conf", "kafka.bootstrap.servers")
        assert victim not in servers and all(f"{d.address(h)}:" in servers for h in survivors), (host, servers)

    # (c) a second run changes nothing
    again = nxprovision("remove-node", "-i", inv, VICTIM, "--force", "--progress", "plain", timeout=2400)
    assert again.returncode == 0, again.stdout[-6000:] + again.stderr[-2000:]
    changed = {h: r for h, r in recap(again.stdout).items() if r[1]}
    assert changed == {}, (changed, again.stdout[-4000:])

