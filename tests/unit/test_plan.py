"""`plan` renders each node's nuxeo.conf with the keys nuxeo-facts.md prescribes, secrets masked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nxprovision.inventory import load_inventory
from nxprovision.model.cluster import build_cluster
from nxprovision.plan import MASK, make_plan, parse_properties

ROOT = Path(__file__).resolve().parents[2]


def conf_of(inv: Path, host: str) -> dict[str, str]:
    plan = make_plan(build_cluster(load_inventory(inv)))
    return parse_properties(plan.files[host]["/etc/nuxeo/nuxeo.conf"])


def test_compact_front_and_worker_conf() -> None:
    inv = ROOT / "inventories" / "compact"
    front, worker = conf_of(inv, "front1"), conf_of(inv, "worker1")
    # cluster identity (nuxeo-facts 2.2, 4.3)
    assert front["nuxeo.cluster.enabled"] == "true"
    assert front["nuxeo.cluster.nodeid"] == "front1" and worker["nuxeo.cluster.nodeid"] == "worker1"
    assert front["nuxeo.server.jvmRoute"] == "front1"
    # database: PostgreSQL with the quartz-cluster template on a multi-node cluster (2.3)
    # the sample runs LTS 2025: the search client and audit packages bring their templates (nuxeo-lts-2025.md)
    assert front["nuxeo.templates"].split(",") == ["default", "postgresql-quartz-cluster", "s3binaries",
                                                   "opensearch1-search-client", "opensearch1-audit"]
    assert front["nuxeo.db.host"] == "db1" and front["nuxeo.db.port"] == "5432"
    assert front["nuxeo.db.name"] == "nuxeo" and front["nuxeo.db.user"] == "nuxeo"
    assert front["nuxeo.db.password"] == MASK
    # search (2.4): every search node, one replica with 3 nodes
    # over https with the node certificates (nx_tls_search), verified with the trust store holding the cluster CA
    client = "nuxeo.opensearch1.client."
    assert front[client + "server"] == "https://search1:9200,https://search2:9200,https://search3:9200"
    assert front[client + "trustStorePath"] == "/etc/nxprovision/tls/truststore.jks"
    assert front[client + "trustStoreType"] == "JKS"
    assert front[client + "trustStorePassword"] == "changeit"
    assert front[client + "username"] == "nuxeo" and front[client + "password"] == MASK
    assert front["nuxeo.search.client.default.opensearch1.index.name"] == "nuxeo"
    assert front["nuxeo.search.client.default.opensearch1.index.numberOfReplicas"] == "1"
    assert front["nuxeo.audit.backend.default.opensearch1.index.name"] == "nuxeo-audit"
    # none of the keys LTS 2025 ignores
    assert not [k for k in front if k.startswith(("elasticsearch.", "audit.elasticsearch."))]
    # Kafka (2.5)
    assert front["kafka.enabled"] == "true" and front["kafka.bootstrap.servers"] == "kafka1:9092"
    assert front["nuxeo.stream.work.enabled"] == "true" and front["nuxeo.pubsub.provider"] == "stream"
    assert front["kafka.topicPrefix"] == "nuxeo-"
    assert front["kafka.ssl"] == "true" and front["kafka.truststore.path"] == "/etc/nxprovision/tls/truststore.jks"
    assert front["kafka.truststore.type"] == "JKS" and front["kafka.truststore.password"] == "changeit"
    # S3 (2.6)
    assert front["nuxeo.s3storage.bucket"] == "nuxeo-binaries"
    assert front["nuxeo.s3storage.endpoint"] == "https://s3-1:8333"
    assert front["nuxeo.aws.trustStorePath"] == "/etc/nxprovision/tls/truststore.jks"
    assert front["nuxeo.aws.trustStoreType"] == "JKS" and front["nuxeo.aws.trustStorePassword"] == "changeit"
    assert front["nuxeo.s3storage.pathstyleaccess"] == "true"
    assert front["nuxeo.aws.accessKeyId"] == MASK and front["nuxeo.aws.secretKey"] == MASK
    # identical cluster-wide secret, masked (4.3)
    assert front["nuxeo.jwt.secret"] == MASK == worker["nuxeo.jwt.secret"]
    # front/worker split (2.8)
    assert front["nuxeo.work.processing.enabled"] == "false" and front["nuxeo.stream.processing.enabled"] == "false"
    assert worker["nuxeo.work.processing.enabled"] == "true" and worker["nuxeo.stream.processing.enabled"] == "true"
    # per-node, never shared dirs; the public URL
    assert front["nuxeo.tmp.dir"] == "/var/lib/nuxeo/tmp"
    assert front["nuxeo.url"] == "https://nuxeo.example.com/nuxeo"
    # everything identical except identity and processing flags
    differing = {k for k in front if front[k] != worker.get(k)}
    assert differing == {
        "nuxeo.cluster.nodeid",
        "nuxeo.server.jvmRoute",
        "nuxeo.work.processing.enabled",
        "nuxeo.stream.processing.enabled",
        "nuxeo.bind.address",  # each node listens on its own cluster address (main dec7ac6)
    }


def test_single_conf_processes_work_and_is_not_clustered() -> None:
    conf = conf_of(ROOT / "inventories" / "single", "nuxeo1")
    assert conf["nuxeo.cluster.enabled"] == "false"
    assert conf["nuxeo.templates"].split(",") == ["default", "postgresql", "s3binaries"]
    assert conf["elasticsearch.indexNumberOfReplicas"] == "0"  # a one-node search cluster
    assert conf["nuxeo.work.processing.enabled"] == "true"  # no worker nodes: the only node processes


def test_mongodb_conf() -> None:
    conf = conf_of(ROOT / "inventories" / "compact-mongodb", "front2")
    # LTS 2025: the mongodb template no longer builds on default
    assert conf["nuxeo.templates"].split(",") == ["mongodb", "s3binaries", "opensearch1-search-client",
                                                  "opensearch1-audit"]
    assert conf["nuxeo.mongodb.server"] == (
        f"mongodb://nuxeo:{MASK}@mongo1:27017,mongo2:27017,mongo3:27017/nuxeo?replicaSet=rs0"
    )
    assert conf["nuxeo.mongodb.dbname"] == "nuxeo"
    assert "nuxeo.db.host" not in conf


def test_distributed_kafka_quorum_and_lb() -> None:
    cluster = build_cluster(load_inventory(ROOT / "inventories" / "distributed"))
    k = cluster.derived["kafka"]
    assert k["mode"] == "kraft"
    assert k["replication_factor"] == 3 and k["min_insync_replicas"] == 2
    assert k["controller_quorum_voters"] == "1@kafka1:9093,2@kafka2:9093,3@kafka3:9093"
    assert [b["name"] for b in cluster.derived["lb"]["backends"]] == ["front1", "front2"]  # no worker
    assert conf_of(ROOT / "inventories" / "distributed", "front1")["kafka.bootstrap.servers"] == (
        "kafka1:9092,kafka2:9092,kafka3:9092"
    )


def test_haproxy_cfg_lists_front_nodes_only_and_masks_stats_password() -> None:
    plan = make_plan(build_cluster(load_inventory(ROOT / "inventories" / "compact")))
    cfg = plan.files["lb1"]["/etc/haproxy/haproxy.cfg"]
    assert "server front1 front1:8080 check" in cfg and "server front2 front2:8080 check" in cfg
    assert "worker1" not in cfg
    assert "runningstatus?info=reload" in cfg
    assert f"stats auth admin:{MASK}" in cfg


def test_plan_never_prints_a_secret(run_cli) -> None:
    inv = ROOT / "inventories" / "compact"
    cluster = build_cluster(load_inventory(inv))
    secrets = [v for k, v in cluster.settings.items() if k.startswith("nx_secret_")]
    assert len(secrets) >= 8
    for args in (["plan", "-i", str(inv), "--files"], ["plan", "-i", str(inv), "--json"]):
        code, out, err = run_cli(*args)
        assert code == 0
        for s in secrets:
            assert s not in out + err


def test_plan_json_is_machine_readable(run_cli) -> None:
    code, out, _ = run_cli("plan", "-i", str(ROOT / "inventories" / "compact"), "--json")
    assert code == 0
    data = json.loads(out)
    assert {t["host"] for t in data["topology"]} >= {"lb1", "front1", "front2", "worker1"}
    assert data["endpoints"]["kafka"]["bootstrap_servers"] == "kafka1:9092"
    assert "/etc/nuxeo/nuxeo.conf" in data["files"]["worker1"]


def test_plan_refuses_invalid_inventory(make_inv, run_cli) -> None:
    code, _out, err = run_cli("plan", "-i", str(make_inv(set={"nx_architecture": "nope"})))
    assert code == 2 and "invalid, no plan" in err


@pytest.mark.parametrize("arch", ["single", "compact", "distributed"])
def test_conf_extra_keys_and_secret_values_are_masked(arch: str, make_inv) -> None:
    inv = make_inv(arch, set={"nuxeo_conf_extra": {"my.key": "v1", "my.copy": "{{ nx_secret_db_password }}"}})
    cluster = build_cluster(load_inventory(inv))
    host = cluster.nuxeo_nodes[0].host
    conf = parse_properties(make_plan(cluster).files[host]["/etc/nuxeo/nuxeo.conf"])
    assert conf["my.key"] == "v1"
    assert conf["my.copy"] == MASK


def test_model_facts_never_hold_a_secret_value(make_inv) -> None:
    inv = make_inv(set={"nuxeo_conf_extra": {"my.s3.copy": "{{ nx_secret_s3_secret_key }}"}})
    cluster = build_cluster(load_inventory(inv))
    facts = json.dumps(cluster.to_facts())
    for name, value in cluster.settings.items():
        if name.startswith("nx_secret_"):
            assert str(value) not in facts, name
    item = next(c for c in cluster.nuxeo_nodes[0].conf if c.key == "my.s3.copy")
    assert item.secret == "nx_secret_s3_secret_key"
