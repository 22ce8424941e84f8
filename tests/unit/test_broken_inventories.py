"""Broken inventories: each exits 2, one line per problem naming the rule and the fix, no traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nxprovision.init import _sample_layout
from tests.unit.conftest import LTS2023


def layout(arch: str = "compact", database: str = "postgresql", **changes: list[str]) -> dict[str, Any]:
    lay = {k: list(v) for k, v in _sample_layout(arch, database).items()}
    lay.update(changes)
    return lay


# id -> (make_inv kwargs, rule id expected in the output)
CASES: dict[str, tuple[dict[str, Any], str]] = {
    "one-front-node": ({"layout": layout(nuxeo_front=["front1"])}, "counts.nuxeo_front"),
    "two-search-nodes": ({"layout": layout(opensearch=["search1", "search2"])}, "counts.opensearch"),
    "even-search-nodes": ({"layout": layout(opensearch=["s1", "s2", "s3", "s4"])}, "counts.opensearch_odd"),
    "one-database-node": ({"layout": layout(postgresql=["db1"])}, "counts.database"),
    "compact-two-kafka": ({"layout": layout(kafka=["k1", "k2"])}, "counts.kafka"),
    "distributed-two-kafka": (
        {"arch": "distributed", "layout": layout("distributed", kafka=["k1", "k2"])},
        "counts.kafka",
    ),
    "duplicate-node-id": (
        {"hostvars": {"front1": {"nuxeo_cluster_nodeid": "n1"}, "front2": {"nuxeo_cluster_nodeid": "n1"}}},
        "nuxeo.unique_node_id",
    ),
    "duplicate-jvm-route": (
        {"hostvars": {"front1": {"nuxeo_jvm_route": "r"}, "worker1": {"nuxeo_jvm_route": "r"}}},
        "nuxeo.unique_jvm_route",
    ),
    "no-s3-package-for-cluster": ({"set": {"nuxeo_packages": ["nuxeo-web-ui"]}}, "nuxeo.shared_binaries"),
    "no-s3-host-for-cluster": ({"layout": layout(s3=[])}, "nuxeo.shared_binaries"),
    "unsupported-opensearch": ({"set": {**LTS2023, "search_version": "2.11.0"}}, "versions.opensearch"),
    "unsupported-mongodb": ({"database": "mongodb", "set": {"mongodb_version": "3.6.0"}}, "versions.mongodb"),
    "kraft-on-old-nuxeo": ({"set": {"nuxeo_version": "2023.20", "kafka_mode": "kraft"}}, "versions.kraft"),
    "unknown-architecture": ({"set": {"nx_architecture": "galactic"}}, "settings.architecture"),
    "no-architecture": ({"unset": ["nx_architecture"]}, "settings.architecture"),
    "missing-secret": ({"drop_secrets": ["nx_secret_db_password", "nx_secret_nuxeo_jwt_secret"]}, "secrets.missing"),
    "both-database-flavours": ({"layout": layout(mongodb=["m1", "m2", "m3"])}, "database.flavour"),
    "database-setting-mismatch": ({"set": {"nx_database": "mongodb"}}, "database.flavour"),
    "empty-inventory": ({"layout": {}}, "inventory.empty"),
    "worker-also-front": (
        {"layout": layout(nuxeo_front=["front1", "front2"], nuxeo_worker=["front2"])},
        "nuxeo.worker_in_lb",
    ),
    "port-clash-single": ({"arch": "single", "set": {"seaweedfs_volume_port": 8080}}, "ports.clash"),
    "url-without-context": ({"set": {"nx_public_url": "http://nuxeo.example.com/"}}, "settings.public_url"),
    "url-malformed": ({"set": {"nx_public_url": "nuxeo.example.com"}}, "settings.public_url"),
    "version-not-lts": ({"set": {"nuxeo_version": "latest"}}, "versions.nuxeo"),
    "version-lock-not-a-lock": ({"set": {"nx_version_lock": {"format": 1, "releases": ["bookworm"]}}}, "versions.lock"),
    "version-lts-2019": ({"set": {"nuxeo_version": "2019.10"}}, "versions.nuxeo"),
    "java-mismatch": ({"set": {"nuxeo_java_version": "11"}}, "versions.java"),
    "distributed-without-vip": ({"arch": "distributed", "set": {"nx_vip": ""}}, "lb.vip"),
    "external-s3-without-endpoint": ({"set": {"s3_mode": "external", "s3_endpoint": ""}}, "settings.s3_endpoint"),
    "distributed-two-etcd": (
        {"arch": "distributed", "layout": layout("distributed", etcd=["db1", "db2"])},
        "counts.etcd",
    ),
    "single-on-two-hosts": ({"arch": "single", "layout": layout("single", opensearch=["other"])}, "counts.single_host"),
    "zookeeper-mode-without-ensemble": (
        {"arch": "distributed", "set": {"kafka_mode": "zookeeper"}},
        "counts.zookeeper",
    ),
    "no-nuxeo-mirror": ({"set": {"nuxeo_download_base_url": ""}}, "settings.download_url"),
    "bad-cluster-name": ({"set": {"nx_cluster_name": "My Cluster!"}}, "settings.cluster_name"),
    "host-name-with-space": ({"layout": layout(nuxeo_front=["front 1", "front2"])}, "inventory.host_name"),
    "host-name-shell": ({"layout": layout(nuxeo_front=["front1;reboot", "front2"])}, "inventory.host_name"),
    "host-name-non-ascii": ({"layout": layout(nuxeo_front=["frönt1", "front2"])}, "inventory.host_name"),
    "host-name-underscore": ({"layout": layout(nuxeo_front=["front_1", "front2"])}, "inventory.host_name"),
    "host-address-shell": ({"hostvars": {"front1": {"ansible_host": "10.0.0.5 $(id)"}}}, "inventory.host_address"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_broken_inventory_is_refused(case: str, make_inv, run_cli) -> None:
    kwargs, rule = CASES[case]
    inv = make_inv(**kwargs)
    code, out, err = run_cli("validate", "-i", str(inv))
    text = out + err
    assert code == 2, text
    assert "Traceback" not in text
    errors = [ln for ln in out.splitlines() if ln.startswith("ERROR")]
    assert any(f"[{rule}]" in ln for ln in errors), text
    for ln in errors:
        assert "Fix: " in ln and ln.split("Fix: ", 1)[1].strip(), ln


def test_all_problems_are_reported_at_once(make_inv, run_cli) -> None:
    inv = make_inv(
        layout=layout(nuxeo_front=["front1"], opensearch=["s1", "s2"]),
        set={"nx_public_url": "http://x/", "search_version": "9.9"},
        drop_secrets=["nx_secret_db_password"],
    )
    code, out, _ = run_cli("validate", "-i", str(inv))
    assert code == 2
    rules = {ln.rsplit("[", 1)[1].split("]")[0] for ln in out.splitlines() if ln.startswith("ERROR")}
    assert {
        "counts.nuxeo_front",
        "counts.opensearch",
        "settings.public_url",
        "versions.opensearch",
        "secrets.missing",
    } <= rules


def test_error_names_the_file_and_line(make_inv, run_cli) -> None:
    inv = make_inv(set={**LTS2023, "search_version": "2.11.0"})
    code, out, _ = run_cli("validate", "-i", str(inv))
    assert code == 2
    line = next(ln for ln in out.splitlines() if "[versions.opensearch]" in ln)
    assert "group_vars/all/main.yml:" in line


def test_warnings_do_not_fail(make_inv, run_cli) -> None:
    lay = layout(kafka=["front1"])
    code, out, _ = run_cli("validate", "-i", str(make_inv(layout=lay)))
    assert code == 0, out
    assert any(ln.startswith("WARNING") and "[placement.kafka_on_nuxeo]" in ln for ln in out.splitlines())


@pytest.mark.parametrize("target", ["hosts.yml", "group_vars/all/main.yml"])
def test_yaml_syntax_error(target: str, make_inv, run_cli) -> None:
    inv = make_inv()
    p = inv / target
    p.write_text(p.read_text() + "\n  broken: [unclosed\n: : :\n")
    code, out, err = run_cli("validate", "-i", str(inv))
    assert code == 2
    assert "Traceback" not in out + err
    assert err.startswith("nxprovision: error:")
    assert target.split("/")[-1] in err
    assert "fix" in err.lower()
    assert len(err.strip().splitlines()) == 1


def test_missing_inventory_path(run_cli, tmp_path: Path) -> None:
    code, _out, err = run_cli("validate", "-i", str(tmp_path / "nope"))
    assert code == 2 and "no such inventory" in err


def test_wrong_vault_password(make_inv, run_cli, tmp_path: Path) -> None:
    inv = make_inv()
    wrong = tmp_path / "wrong-pass"
    wrong.write_text("not-the-password\n")
    code, out, err = run_cli("validate", "-i", str(inv), "--vault-password-file", str(wrong))
    assert code == 2
    assert "Traceback" not in out + err
    assert "vault" in err.lower()


def test_vaulted_secrets_without_password(make_inv, run_cli) -> None:
    inv = make_inv()
    (inv / ".vault-pass").rename(inv / "elsewhere-pass")
    code, out, err = run_cli("validate", "-i", str(inv))
    assert code == 2
    assert "Traceback" not in out + err
    assert "vault" in (out + err).lower()


@pytest.mark.parametrize("name", ["front1", "db-1.example.com", "10.0.0.5", "a" * 63])
def test_host_names_that_are_fine(name: str) -> None:
    from nxprovision.rules.hostnames import name_problem

    assert name_problem(name) is None


@pytest.mark.parametrize(
    "name", ["", "a b", "a;b", "a$b", "a`b", "h\u00e9", "-lead", "trail-", "a..b", "a" * 64, "fe80::1"]
)
def test_host_names_refused(name: str) -> None:
    from nxprovision.rules.hostnames import name_problem

    assert name_problem(name)


# A wrong shape, caught before Ansible parses: (file, text, position, words the message must hold, words of the fix)
SHAPES: dict[str, tuple[str, str, str, str, str]] = {
    "hosts-file-a-list": ("hosts.yml", "- front1\n- front2\n", ":1:1", "holds a list", "all:"),
    "hosts-file-a-string": ("hosts.yml", "front1\n", ":1:1", "holds the value 'front1'", "all:"),
    "group-a-list": ("hosts.yml", "all:\n  children:\n    nuxeo:\n      - front1\n", ":4:7",
                     "group 'nuxeo' is given as a list", "hosts:"),
    "hosts-a-list": ("hosts.yml", "all:\n  children:\n    nuxeo:\n      hosts:\n        - front1\n", ":5:9",
                     "`hosts:` of group 'nuxeo' is a list", "<name>:"),
    "children-a-list": ("hosts.yml", "all:\n  children:\n    - nuxeo\n", ":3:5",
                        "`children:` of group 'all' is a list", "<group>:"),
    "misspelt-host-key": ("hosts.yml", "all:\n  children:\n    nuxeo:\n      host:\n        front1:\n", ":4:7",
                          "the key 'host'", "`hosts:`"),
    "host-directly-under-group": ("hosts.yml", "all:\n  children:\n    nuxeo:\n      front1:\n", ":4:7",
                                  "the key 'front1'", "under `hosts:`"),
    "scalar-hostvars": ("hosts.yml", "all:\n  children:\n    nuxeo:\n      hosts:\n        front1: 10.0.0.1\n",
                        ":5:17", "host 'front1'", "ansible_host: 10.0.0.1"),
    "vars-a-list": ("hosts.yml", "all:\n  vars:\n    - a\n", ":3:5", "`vars:` of group 'all'", "name: value"),
    "group-vars-a-list": ("group_vars/nuxeo.yml", "- nuxeo_heap: 2g\n", ":1:1", "group_vars file holds a list",
                          "name: value"),
    "group-vars-a-string": ("group_vars/all/extra.yml", "just a string\n", ":1:1", "group_vars file holds",
                            "name: value"),
    "host-vars-a-list": ("host_vars/front1.yml", "- a\n", ":1:1", "host_vars file holds a list", "name: value"),
}


@pytest.mark.parametrize("case", list(SHAPES), ids=list(SHAPES))
def test_wrong_inventory_shape_is_one_line_with_its_position(case: str, make_inv, run_cli) -> None:
    target, text, position, what, fix = SHAPES[case]
    inv = make_inv()
    (inv / target).parent.mkdir(parents=True, exist_ok=True)
    (inv / target).write_text(text)
    code, out, err = run_cli("validate", "-i", str(inv))
    assert code == 2, out + err
    assert out == ""  # Ansible's own warnings never reach the operator
    assert len(err.strip().splitlines()) == 1, err
    assert f"{target}{position}: " in err and what in err, err
    assert "(fix: " in err and fix in err.split("(fix: ", 1)[1], err
    assert "position shown" not in err and "Traceback" not in err


def test_the_shape_of_group_vars_is_checked_when_i_names_the_hosts_file(make_inv, run_cli) -> None:
    inv = make_inv()
    (inv / "group_vars" / "nuxeo.yml").write_text("- a\n")
    code, _out, err = run_cli("validate", "-i", str(inv / "hosts.yml"))
    assert code == 2 and "group_vars/nuxeo.yml:1:1: " in err, err


def test_an_unparsable_ini_source_gets_one_line_without_a_position_claim(make_inv, run_cli) -> None:
    inv = make_inv()
    (inv / "hosts.yml").unlink()
    (inv / "hosts.ini").write_text("[nuxeo\nfront1 a\n")
    code, out, err = run_cli("validate", "-i", str(inv))
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err  # Ansible's warnings (one per plugin tried) are not shown
    assert "position shown" not in err
    assert "[WARNING]" not in out + err


@pytest.mark.parametrize("verb", ["validate", "plan"])
def test_json_on_an_inventory_that_cannot_load_is_json_on_stdout(verb: str, make_inv, run_cli) -> None:
    import json

    inv = make_inv()
    (inv / "hosts.yml").write_text("- front1\n")
    code, out, err = run_cli(verb, "-i", str(inv), "--json")
    assert code == 2
    data = json.loads(out)
    assert data["valid"] is False
    (e,) = data["errors"]
    assert e["rule"] == "inventory.load" and e["where"].endswith("hosts.yml:1:1") and e["fix"], e
    assert len(err.strip().splitlines()) == 1


def test_plan_json_on_an_invalid_inventory_lists_the_errors_on_stdout(make_inv, run_cli) -> None:
    import json

    inv = make_inv(layout=layout(nuxeo_front=["front1"]))
    code, out, _err = run_cli("plan", "-i", str(inv), "--json")
    assert code == 2
    data = json.loads(out)
    assert data["valid"] is False and data["architecture"] == "compact"
    assert any(e["rule"] == "counts.nuxeo_front" for e in data["errors"]), data
