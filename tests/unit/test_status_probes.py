"""`status` folds what the hosts report over SSH (database roles and lag, Kafka partitions) into its rows."""

from __future__ import annotations

import json
from pathlib import Path

from nxprovision.inventory import load_inventory
from nxprovision.model.cluster import build_cluster
from nxprovision.status import Row, apply_probes

ROOT = Path(__file__).resolve().parents[2]


def _pg(role: str, **kw: object) -> dict[str, object]:
    info = {
        "role": role,
        "replay_lag_s": 0,
        "receiving": "",
        "streaming_replicas": 0,
        "max_lag_bytes": 0,
        "pending_restart": [],
    }
    info.update(kw)
    return {"rc": 0, "stdout": json.dumps(info)}


def _rows(cluster) -> tuple[Row, Row, Row]:  # type: ignore[no-untyped-def]
    primary = cluster.derived["db"]["primary"]
    replica = cluster.derived["db"]["replicas"][0]
    broker = cluster.kafka_brokers[0].host
    return (
        Row(primary, "postgresql", "10.0.0.1", "ok", detail="primary port 5432 open"),
        Row(replica, "postgresql", "10.0.0.2", "ok", detail="replica port 5432 open"),
        Row(broker, "kafka", "10.0.0.3", "ok", detail="broker 1 port 9092 open"),
    )


def test_healthy_primary_and_streaming_replica() -> None:
    cluster = build_cluster(load_inventory(ROOT / "inventories" / "compact"))
    p, r, k = _rows(cluster)
    apply_probes(
        cluster,
        [p, r, k],
        {
            (p.host, "postgresql"): _pg("primary", streaming_replicas=1, max_lag_bytes=128),
            (r.host, "postgresql"): _pg("replica", receiving="streaming", replay_lag_s=1),
            (k.host, "kafka"): {"rc": 0, "stdout": ""},
        },
    )
    assert (p.health, r.health, k.health) == ("ok", "ok", "ok")
    assert p.detail == "primary, 1 streaming replica(s), max replay lag 128 B"
    assert r.detail == "replica, streaming, replay lag 1 s"
    assert k.extra["under_replicated_partitions"] == 0


def test_lost_replica_pending_restart_and_under_replicated_partitions_degrade() -> None:
    cluster = build_cluster(load_inventory(ROOT / "inventories" / "compact"))
    p, r, k = _rows(cluster)
    apply_probes(
        cluster,
        [p, r, k],
        {
            (p.host, "postgresql"): _pg("primary", pending_restart=["max_connections"]),
            (r.host, "postgresql"): _pg("replica", receiving=""),
            (k.host, "kafka"): {"rc": 0, "stdout": "Topic: t Partition: 0 Leader: 1 Replicas: 1,2 Isr: 1\n"},
        },
    )
    assert (p.health, r.health, k.health) == ("degraded", "degraded", "degraded")
    assert "pending restart: max_connections" in p.detail
    assert "not receiving" in r.detail
    assert k.extra["under_replicated_partitions"] == 1


def test_hosts_that_did_not_answer_keep_the_outside_view() -> None:
    cluster = build_cluster(load_inventory(ROOT / "inventories" / "compact"))
    p, r, k = _rows(cluster)
    r.health = "down"
    apply_probes(cluster, [p, r, k], {(r.host, "postgresql"): _pg("replica", receiving="streaming")})
    assert (p.detail, r.health, k.detail) == ("primary port 5432 open", "down", "broker 1 port 9092 open")


def _hello(**kw: object) -> dict[str, object]:
    return {"rc": 0, "stdout": json.dumps(kw)}


def test_mongodb_members_report_their_state_and_notice() -> None:
    cluster = build_cluster(load_inventory(ROOT / "inventories" / "compact"))
    hosts = ["10.0.0.1:27017", "10.0.0.2:27017", "10.0.0.3:27017"]
    rows = [Row(f"mongo{i}", "mongodb", f"10.0.0.{i}", "ok", detail="port 27017 open") for i in (1, 2, 3, 4, 5)]
    apply_probes(cluster, rows, {
        ("mongo1", "mongodb"): _hello(setName="rs0", isWritablePrimary=True, hosts=hosts, primary=hosts[0],
                                      notice="no replication"),
        ("mongo2", "mongodb"): _hello(setName="rs0", isWritablePrimary=False, secondary=True, hosts=hosts,
                                      primary=hosts[0]),
        ("mongo3", "mongodb"): _hello(isWritablePrimary=False, secondary=False, isreplicaset=True),
        ("mongo4", "mongodb"): _hello(setName="rs0", isWritablePrimary=False, secondary=True, hosts=hosts),
        ("mongo5", "mongodb"): {"rc": 1, "stdout": "", "stderr": "ServerSelectionTimeoutError"},
    })
    assert rows[0].detail == "PRIMARY of rs0, 3 member(s), primary 10.0.0.1:27017" and rows[0].healthy
    assert rows[0].notice == "no replication"
    assert rows[1].detail.startswith("SECONDARY of rs0") and rows[1].healthy and rows[1].notice == ""
    assert rows[2].detail.startswith("not in a replica set yet") and rows[2].health == "degraded"
    assert rows[3].detail.endswith("primary none") and rows[3].health == "degraded"  # a set without a primary
    assert rows[4].health == "degraded" and "hello failed" in rows[4].detail
