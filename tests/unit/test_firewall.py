"""The opt-in host firewall (issue 14): the model's nx.firewall and the nftables rules the role renders."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from nxprovision.inventory import load_inventory
from nxprovision.model.cluster import Cluster, build_cluster
from nxprovision.model.firewall import _sources
from nxprovision.model.ports import host_ports
from nxprovision.planfiles import planned_files

ROOT = Path(__file__).resolve().parents[2]
COMPACT = {"loadbalancers": ["lb1"], "nuxeo_front": ["front1", "front2"], "nuxeo_worker": ["worker1"],
           "postgresql": ["db1", "db2"], "opensearch": ["search1", "search2", "search3"], "kafka": ["kafka1"],
           "s3": ["s3-1"]}
NAMES = ["lb1", "front1", "front2", "worker1", "db1", "db2", "search1", "search2", "search3", "kafka1", "s3-1"]
IP = {h: f"10.2.0.{i}" for i, h in enumerate(NAMES, start=10)}
RULES = "/etc/nxprovision/firewall.nft"


def _compact(make_inv: Any, **set_: Any) -> Cluster:
    layout = {**COMPACT, **set_.pop("layout", {})}
    hostvars = {h: {"ansible_host": ip} for h, ip in IP.items()}
    return build_cluster(load_inventory(make_inv("compact", set={"nx_firewall_enabled": True, **set_},
                                                 layout=layout, hostvars=hostvars)))


def _rules(c: Cluster, host: str) -> dict[int, Any]:
    return {r["port"]: r["sources"] for r in c.derived["firewall"]["hosts"][host]["rules"]}


def _rendered(c: Cluster) -> dict[str, str]:
    return {f.host: f.content for f in planned_files(c) if f.path == RULES}


# ---------------------------------------------------------------- model


def test_off_by_default_and_then_no_rules_file() -> None:
    for sample in ("single", "compact", "compact-mongodb", "distributed"):
        c = build_cluster(load_inventory(ROOT / "inventories" / sample))
        assert c.derived["firewall"]["enabled"] is False, sample
        assert _rendered(c) == {}, sample


def test_each_port_admits_only_the_hosts_that_need_it(make_inv) -> None:
    c = _compact(make_inv)
    nuxeo = [IP["front1"], IP["front2"], IP["worker1"]]
    # the stats page: nobody's but the monitoring host's (none here) and the operator's sources
    assert _rules(c, "lb1") == {80: "any", 443: "any", 8404: []}
    assert _rules(c, "front1") == {8080: [IP["lb1"]]}  # Tomcat's shutdown port (loopback) is not opened
    assert _rules(c, "db1") == {5432: sorted([*nuxeo, IP["db2"]])}
    assert _rules(c, "search1")[9300] == sorted([IP["search2"], IP["search3"]])
    assert _rules(c, "search1")[9200] == sorted([*nuxeo, IP["search2"], IP["search3"]])
    assert _rules(c, "kafka1") == {9092: sorted(nuxeo), 9093: []}  # one broker: its controller is its own
    s3 = _rules(c, "s3-1")
    # the S3 gateway: Nuxeo, the database hosts' pgBackRest, the search hosts' snapshot repository
    assert s3[8333] == sorted([*nuxeo, IP["db1"], IP["db2"], IP["search1"], IP["search2"], IP["search3"]])
    # master, volume, filer and every gRPC port: the store's own hosts only (its white list), here none but itself
    assert {p: s for p, s in s3.items() if p != 8333} == {
        9333: [], 8381: [], 8888: [], 19333: [], 18381: [], 18888: [], 18333: []}
    assert IP["lb1"] not in _rules(c, "db1")[5432]


def test_ports_follow_the_settings_the_roles_use(make_inv) -> None:
    c = _compact(make_inv, postgresql_port=5433, nuxeo_http_port=8081)
    assert set(_rules(c, "db1")) == {5433}
    assert set(_rules(c, "front2")) == {8081}


def test_every_port_validate_knows_is_classified(make_inv) -> None:
    """A port added to rules.ports without saying who reaches it fails here, not on a cluster."""
    for arch in ("single", "compact", "distributed"):
        c = build_cluster(load_inventory(ROOT / "inventories" / arch))
        known = _sources(c)
        for host in c.hosts:
            for _group, label, key, _value in host_ports(c, host):
                assert key in known, f"{label} ({key}) has no firewall sources"


def test_distributed_admits_etcd_patroni_and_vrrp_between_their_peers() -> None:
    c = build_cluster(load_inventory(ROOT / "inventories" / "distributed"))
    db1 = _rules(c, "db1")
    assert db1[2379] == db1[2380] == db1[8008] == ["db2", "db3"]
    assert "front1" in db1[5432] and "lb1" not in db1[5432]
    assert c.derived["firewall"]["hosts"]["lb1"]["vrrp_peers"] == ["lb2"]
    assert c.derived["firewall"]["hosts"]["db1"]["vrrp_peers"] == []


def test_monitoring_host_reaches_the_exporters_and_the_stats_page(make_inv) -> None:
    c = _compact(make_inv, layout={"monitoring": ["lb1"]})
    assert _rules(c, "db1")[9100] == [IP["lb1"]]
    assert _rules(c, "lb1")[8404] == []  # the monitoring host is lb1 itself: loopback


# ---------------------------------------------------------------- rendered rules


def test_rendered_rules_drop_the_rest_and_keep_ssh_open(make_inv) -> None:
    files = _rendered(_compact(make_inv))
    assert set(files) == set(NAMES)
    db1 = files["db1"]
    assert "table inet nxprovision" in db1 and "delete table inet nxprovision" in db1
    assert "policy drop;" in db1 and 'tcp dport 22 accept comment "sshd"' in db1
    assert 'iifname "lo" accept' in db1 and "ct state established,related accept" in db1
    want = ", ".join(sorted([IP["db2"], IP["front1"], IP["front2"], IP["worker1"]]))
    assert f'ip saddr {{ {want} }} tcp dport {{ 5432 }} accept comment "PostgreSQL"' in db1
    assert 'tcp dport 443 accept comment "HAProxy frontend"' in files["lb1"]
    # a port no other host needs gets no accept rule at all: the policy drops it
    assert not re.search(r"dport \{ 9333 \}", files["s3-1"])


def test_admin_sources_get_a_rule_of_their_own_over_every_guarded_port(make_inv) -> None:
    files = _rendered(_compact(make_inv, nx_firewall_admin_sources=["10.9.0.0/24", "fd00::5"]))
    s3 = files["s3-1"]
    assert ('ip saddr { 10.9.0.0/24 } tcp dport { 8333, 8381, 8888, 9333, 18333, 18381, 18888, 19333 } accept '
            'comment "nx_firewall_admin_sources"') in s3
    assert 'ip6 saddr { fd00::5 } tcp dport { 8333, 8381' in s3
    assert 'ip saddr { 10.9.0.0/24 } tcp dport { 8404 } accept' in files["lb1"]  # only the stats page is guarded


@pytest.mark.skipif(not shutil.which("nft") or not shutil.which("unshare"), reason="needs nft (and unshare)")
def test_rendered_rules_pass_nft_check(make_inv, tmp_path: Path) -> None:
    c = _compact(make_inv, nx_firewall_admin_sources=["10.9.0.0/24"], layout={"monitoring": ["lb1"]})
    for host, text in _rendered(c).items():
        f = tmp_path / f"{host}.nft"
        f.write_text(text)
        r = subprocess.run(["unshare", "-rn", "nft", "-c", "-f", str(f)], capture_output=True, text=True)
        assert r.returncode == 0, f"{host}: {r.stderr}\n{text}"


def test_add_node_also_reloads_the_firewalls_that_admit_the_new_host(make_inv) -> None:
    from nxprovision.daytwo import add_node_limit

    layout = {"nuxeo_worker": ["worker1", "worker2"]}
    hostvars = {"worker2": {"ansible_host": "10.2.0.30"}}
    with_fw = build_cluster(load_inventory(make_inv("compact", set={"nx_firewall_enabled": True}, layout={
        **COMPACT, **layout}, hostvars={**{h: {"ansible_host": ip} for h, ip in IP.items()}, **hostvars})))
    limit = add_node_limit(with_fw, ["worker2"])
    # pg_hba's database hosts were in the limit already; search, Kafka and S3 now too
    assert set(limit) >= {"worker2", "db1", "db2", "search1", "search2", "search3", "kafka1", "s3-1"}
    assert "front1" not in limit and "lb1" not in limit  # nothing of theirs admits a worker
    # those whose only change is the rule get the firewall play alone, before the worker's services start
    from nxprovision.daytwo import add_node_firewall_hosts, add_node_hosts

    assert set(add_node_firewall_hosts(with_fw, ["worker2"])) == {"search1", "search2", "search3", "kafka1", "s3-1"}
    assert set(add_node_hosts(with_fw, ["worker2"])) == {"worker2", "db1", "db2"}
    without = build_cluster(load_inventory(make_inv("compact", layout={**COMPACT, **layout}, hostvars={
        **{h: {"ansible_host": ip} for h, ip in IP.items()}, **hostvars})))
    assert "kafka1" not in add_node_limit(without, ["worker2"])


def test_add_node_runs_the_firewall_play_alone_first_then_the_hosts_it_converges(make_inv, run_cli,
                                                                                 monkeypatch) -> None:
    import nxprovision.commands as commands

    runs: list[tuple[str, str, str | None]] = []
    monkeypatch.setattr(commands, "_run", lambda _a, pb, _v, _p, _s, **k: runs.append(
        (pb, k["limit"], k.get("tags"))) or 0)
    hostvars = {**{h: {"ansible_host": ip} for h, ip in IP.items()}, "worker2": {"ansible_host": "10.2.0.30"}}
    inv = make_inv("compact", set={"nx_firewall_enabled": True},
                   layout={**COMPACT, "nuxeo_worker": ["worker1", "worker2"]}, hostvars=hostvars)
    code, out, err = run_cli("add-node", "-i", str(inv), "worker2")
    assert code == 0, out + err
    (pb1, fw, tags), (pb2, main, main_tags) = runs
    assert pb1 == pb2 == "site.yml" and tags == "role::firewall" and main_tags is None
    assert set(fw.split(",")) == {"search1", "search2", "search3", "kafka1", "s3-1"}
    assert set(main.split(",")) == {"worker2", "db1", "db2"}


def test_remove_node_rewrites_the_survivors_rules_without_the_removed_hosts_address(make_inv) -> None:
    """With the firewall on, the database, search, Kafka and S3 hosts admit every Nuxeo node by address. remove-node
    rewrites their rules from the model without the host, in the same run: a machine that gets the address later
    must not inherit its access until the next deploy."""
    import yaml

    from nxprovision.daytwo import view_without

    layout = {"nuxeo_worker": ["worker1", "worker2"]}
    hostvars = {**{h: {"ansible_host": ip} for h, ip in IP.items()}, "worker2": {"ansible_host": "10.2.0.30"}}
    inv = load_inventory(make_inv("compact", set={"nx_firewall_enabled": True}, layout={**COMPACT, **layout},
                                  hostvars=hostvars))
    before = build_cluster(inv)
    admitting = {h for h, part in before.derived["firewall"]["hosts"].items()
                 if any(r["sources"] != "any" and "10.2.0.30" in r["sources"] for r in part["rules"])}
    assert admitting >= {"db1", "search1", "kafka1", "s3-1"}, admitting
    after = build_cluster(view_without(inv, "worker2"))
    assert not [(h, r["port"]) for h, part in after.derived["firewall"]["hosts"].items() for r in part["rules"]
                if r["sources"] != "any" and "10.2.0.30" in r["sources"]]
    plays = yaml.safe_load((ROOT / "playbooks" / "remove_node.yml").read_text())
    rebuilt = next(i for i, p in enumerate(plays) if any("nx_cluster" in t for t in p.get("tasks", [])))
    (fw,) = [i for i, p in enumerate(plays) for t in p.get("tasks", [])
             if t.get("ansible.builtin.include_role") == {"name": "firewall", "tasks_from": "rules.yml"}]
    assert fw > rebuilt and plays[fw]["hosts"].startswith("all:!")
    assert plays[fw]["tasks"][0]["when"] == "nx.firewall.enabled | default(false)"
