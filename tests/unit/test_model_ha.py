"""The model's values for the distributed architecture's HA pieces: keepalived, etcd, Patroni (issue 7)."""

from __future__ import annotations

from pathlib import Path

from nxprovision.inventory import load_inventory
from nxprovision.model.cluster import build_cluster
from nxprovision.plan import make_plan, parse_properties

ROOT = Path(__file__).resolve().parents[2]


def test_distributed_sample_gets_vrrp_etcd_and_patroni() -> None:
    c = build_cluster(load_inventory(ROOT / "inventories" / "distributed"))
    nx = c.to_facts()
    lb = nx["lb"]
    assert lb["vip"] == "10.20.0.100"
    assert lb["vrrp"]["enabled"] is True and 1 <= lb["vrrp"]["router_id"] <= 255
    prios = [p["priority"] for p in lb["vrrp"]["peers"]]
    assert [p["host"] for p in lb["vrrp"]["peers"]] == ["lb1", "lb2"] and prios[0] > prios[1]
    etcd = nx["etcd"]
    assert etcd["hosts"] == ["db1", "db2", "db3"]
    # the sample runs TLS: etcd speaks https between its members and to Patroni
    assert etcd["initial_cluster"] == "db1=https://db1:2380,db2=https://db2:2380,db3=https://db3:2380"
    assert etcd["tls"] is True and etcd["endpoints"] == ["https://db1:2379", "https://db2:2379", "https://db3:2379"]
    db = nx["db"]
    assert db["manager"] == "patroni"
    assert db["patroni"]["bootstrap_host"] == db["primary"] == "db1"
    assert db["patroni"]["etcd_hosts"] == ["db1:2379", "db2:2379", "db3:2379"]
    assert db["patroni"]["synchronous_mode"] is False
    assert db["patroni"]["etcd_protocol"] == "https" and db["patroni"]["rest_tls"] is True
    assert [m["rest_url"] for m in db["patroni"]["members"]] == ["https://db1:8008", "https://db2:8008",
                                                                  "https://db3:8008"]
    assert db["replication_clients"] == ["db1", "db2", "db3"]  # any member may lead
    # the sample runs TLS: the multi-host URL carries the compact architecture's TLS parameters
    assert db["jdbc_url"] == ("jdbc:postgresql://db1:5432,db2:5432,db3:5432/nuxeo?targetServerType=primary"
                              "&ssl=true&sslmode=verify-full&sslrootcert=/etc/nxprovision/tls/ca.crt")


def test_distributed_nuxeo_conf_uses_the_multi_host_url() -> None:
    c = build_cluster(load_inventory(ROOT / "inventories" / "distributed"))
    conf = parse_properties(make_plan(c).files["front1"]["/etc/nuxeo/nuxeo.conf"])
    assert "/nuxeo?targetServerType=primary&" in conf["nuxeo.db.jdbc.url"]


def test_distributed_without_tls_keeps_the_plain_multi_host_url(make_inv) -> None:
    c = build_cluster(load_inventory(make_inv("distributed", set={
        "nx_tls_enabled": False, "nx_public_url": "http://nuxeo.example.com/nuxeo"})))
    assert c.derived["db"]["ssl"] is False
    assert c.derived["db"]["jdbc_url"].endswith("/nuxeo?targetServerType=primary")
    # no certificates: etcd and the REST API stay plain http (the REST API still asks for its password)
    assert c.derived["etcd"]["tls"] is False and c.derived["etcd"]["endpoints"][0] == "http://db1:2379"
    assert c.derived["db"]["patroni"]["etcd_protocol"] == "http"
    assert c.derived["db"]["patroni"]["members"][0]["rest_url"] == "http://db1:8008"


def test_compact_keeps_plain_streaming_and_no_vip() -> None:
    c = build_cluster(load_inventory(ROOT / "inventories" / "compact"))
    nx = c.to_facts()
    assert nx["db"]["manager"] == "streaming" and "patroni" not in nx["db"]
    # one host in the JDBC URL (TLS parameters only), no targetServerType
    assert nx["db"]["jdbc_url"].startswith("jdbc:postgresql://db1:5432/nuxeo?ssl=true")
    assert nx["lb"]["vip"] == "" and nx["lb"]["vrrp"]["enabled"] is False
    conf = parse_properties(make_plan(c).files["front1"]["/etc/nuxeo/nuxeo.conf"])
    assert "targetServerType" not in conf["nuxeo.db.jdbc.url"]


def test_router_id_is_stable_and_overridable(make_inv) -> None:
    a = build_cluster(load_inventory(make_inv("distributed")))
    b = build_cluster(load_inventory(make_inv("distributed")))
    assert a.derived["lb"]["vrrp"]["router_id"] == b.derived["lb"]["vrrp"]["router_id"]
    c = build_cluster(load_inventory(make_inv("distributed", set={"keepalived_virtual_router_id": 42})))
    assert c.derived["lb"]["vrrp"]["router_id"] == 42


def test_distributed_lab_sends_users_to_the_vip_and_shares_the_kafka_log() -> None:
    from nxprovision_lab import manager
    from nxprovision_lab.state import LabHost, LabState

    _a, _l, plan = manager.plan_hosts("distributed", None, "postgresql")
    state = LabState(
        name="unit",
        subnet="10.213.9.0/24",
        bridge_ip="10.213.9.1",
        architecture="distributed",
        database="postgresql",
        hosts=[LabHost(h, i, f"10.213.9.{10 + i}", g) for i, (h, g) in enumerate(plan, start=1)],
    )
    values = manager.lab_group_vars(state)
    assert values["nx_public_url"] == f"https://{values['nx_vip']}/nuxeo"
    props = values["kafka_extra_settings"]
    assert props["standin.tansu.storage.engine"] == "s3://kafka/" and values["seaweedfs_extra_buckets"] == ["kafka"]
    assert props["standin.tansu.s3.secret.key"] == "{{ nx_secret_s3_secret_key }}"  # a reference, never a value
