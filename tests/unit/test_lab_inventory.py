"""What `lab up` plans and writes into the lab inventory (no hosts booted here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nxprovision.errors import NxError
from nxprovision_lab import manager
from nxprovision_lab.state import LabHost, LabState


def test_plain_hosts_plan() -> None:
    arch, layout, plan = manager.plan_hosts(None, 3, "postgresql")
    assert arch == "single" and layout == {"lab": ("host1", "host2", "host3")}
    assert plan == [("host1", ["lab"]), ("host2", ["lab"]), ("host3", ["lab"])]
    with pytest.raises(NxError):
        manager.plan_hosts(None, 0, "postgresql")


def test_distributed_plan_gives_db_hosts_both_of_their_groups() -> None:
    _arch, _layout, plan = manager.plan_hosts("distributed", None, "postgresql")
    by_host = dict(plan)
    assert set(by_host["db1"]) == {"postgresql", "etcd"}
    assert by_host["lb1"] == ["loadbalancers"]


def test_mongodb_plan_uses_mongo_hosts() -> None:
    _arch, layout, plan = manager.plan_hosts("compact", None, "mongodb")
    assert "postgresql" not in layout and layout["mongodb"] == ("mongo1", "mongo2", "mongo3")
    assert "db1" not in [h for h, _g in plan]


def test_unknown_architecture() -> None:
    with pytest.raises(NxError, match="unknown architecture"):
        manager.plan_hosts("huge", None, "postgresql")


def _state(arch: str, layout_hosts: list[tuple[str, list[str]]]) -> LabState:
    return LabState(
        name="unit",
        subnet="10.213.9.0/24",
        bridge_ip="10.213.9.1",
        architecture=arch,
        database="postgresql",
        hosts=[LabHost(h, i, f"10.213.9.{10 + i}", g) for i, (h, g) in enumerate(layout_hosts, start=1)],
    )


def test_group_vars_point_at_the_lab_mirror_and_load_balancer() -> None:
    _a, _l, plan = manager.plan_hosts("compact", None, "postgresql")
    state = _state("compact", plan)
    values = manager.lab_group_vars(state)
    lb = state.host("lb1")
    assert lb is not None and values["nx_public_url"] == f"https://{lb.ip}/nuxeo"
    assert values["kafka_download_base_url"] == "http://10.213.9.1:8090/kafka"
    assert values["seaweedfs_download_base_url"] == "http://10.213.9.1:8090/seaweedfs"
    conn = manager.lab_connection_vars(state)
    assert conn["ansible_user"] == "root"
    # the lab checks host keys too, against the keys it generated and recorded beside its inventory
    assert "StrictHostKeyChecking=yes" in conn["ansible_ssh_common_args"]
    assert f"UserKnownHostsFile={state.names.inventory_dir.resolve()}/.known_hosts" in conn["ansible_ssh_common_args"]
    assert "/dev/null" not in conn["ansible_ssh_common_args"]
    assert "nx_vip" not in values  # one load balancer: no virtual IP


@pytest.mark.parametrize(("arch", "database"), [("single", "postgresql"), ("compact", "postgresql"),
                                                ("compact", "mongodb"), ("distributed", "postgresql")])
def test_the_lab_overlay_sets_documented_variables_only(arch: str, database: str) -> None:
    """What the lab writes into its inventory is what an operator could write: role variables of the argument
    specs, the model's documented settings, Ansible's connection variables. Nothing only a stand-in reads."""
    from nxprovision.model.defaults import DEFAULTS, MIRROR_SETTINGS
    from nxprovision.rules.argspecs import role_options

    documented = set(DEFAULTS) | set(MIRROR_SETTINGS)
    for options in role_options().values():
        documented |= set(options)
    _a, _l, plan = manager.plan_hosts(arch, None, database)
    state = _state(arch, plan)
    written = {**manager.lab_group_vars(state), **manager.lab_connection_vars(state)}
    assert written
    assert sorted(k for k in written if k not in documented and not k.startswith("ansible_")) == []


def test_distributed_lab_gets_a_virtual_ip_inside_the_lab() -> None:
    _a, _l, plan = manager.plan_hosts("distributed", None, "postgresql")
    state = _state("distributed", plan)
    vip = manager.lab_group_vars(state)["nx_vip"]
    assert vip == "10.213.9.10" and vip not in [h.ip for h in state.hosts]


def _ansible_inventory(directory: Path) -> dict:  # type: ignore[type-arg]
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-inventory"),
            "-i",
            str(directory),
            "--list",
            "--vault-password-file",
            str(directory / ".vault-pass"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


def test_written_architecture_inventory_loads_in_ansible(tmp_path: Path) -> None:
    _arch, layout, plan = manager.plan_hosts("compact", None, "postgresql")
    state = _state("compact", plan)
    manager.write_lab_inventory(state, layout, tmp_path / "inv")
    inv = _ansible_inventory(tmp_path / "inv")
    hv = inv["_meta"]["hostvars"]
    assert hv["lb1"]["ansible_host"] == state.host("lb1").ip  # type: ignore[union-attr]
    assert hv["front2"]["ansible_ssh_private_key_file"].endswith("/labs/unit/ssh/id_ed25519")
    assert hv["search3"]["opensearch_download_base_url"] == "http://10.213.9.1:8090/opensearch"
    assert sorted(inv["opensearch"]["hosts"]) == ["search1", "search2", "search3"]
    assert "nx_secret_db_password" in hv["db1"]


def test_written_plain_inventory_has_only_the_lab_group(tmp_path: Path) -> None:
    _arch, layout, plan = manager.plan_hosts(None, 2, "postgresql")
    state = _state("single", plan)
    manager.write_lab_inventory(state, layout, tmp_path / "inv")
    hosts_yml = yaml.safe_load((tmp_path / "inv" / "hosts.yml").read_text())
    assert hosts_yml == {
        "all": {
            "children": {
                "lab": {"hosts": {"host1": {"ansible_host": "10.213.9.11"}, "host2": {"ansible_host": "10.213.9.12"}}}
            }
        }
    }
    inv = _ansible_inventory(tmp_path / "inv")
    assert inv["lab"]["hosts"] == ["host1", "host2"]


def test_every_lab_host_gets_net_admin_in_its_own_network_namespace() -> None:
    # nftables (the firewall role, turned on after boot) needs it on any host, keepalived on the load balancers
    from nxprovision_lab import hosts

    _a, _l, plan = manager.plan_hosts("distributed", None, "postgresql")
    state = _state("distributed", plan)
    for h in state.hosts:
        cmd = hosts.nspawn_command(state.names, h)
        assert "--capability=CAP_NET_ADMIN" in cmd, h.name
        # ... which reaches that host's own namespace only
        assert f"--network-namespace-path=/run/netns/{state.names.netns(h.name)}" in cmd, h.name
    assert len({state.names.netns(h.name) for h in state.hosts}) == len(state.hosts)


def test_the_inventory_says_which_release_each_lab_host_runs(tmp_path: Path) -> None:
    _arch, layout, plan = manager.plan_hosts("compact", None, "postgresql")
    state = _state("compact", plan)
    assert manager.lab_group_vars(state)["nx_os_release"] == "debian12"
    assert manager.lab_group_vars(state)["postgresql_version"] == "15"
    for h in state.hosts:
        h.os = "debian13"
    state.hosts[0].os = "debian12"  # lb1 stays on the older release: a mixed lab
    values = manager.lab_group_vars(state)
    assert values["nx_os_release"] == "debian13" and values["postgresql_version"] == "17"
    manager.write_lab_inventory(state, layout, tmp_path / "inv")
    hv = _ansible_inventory(tmp_path / "inv")["_meta"]["hostvars"]
    assert hv[state.hosts[0].name]["nx_os_release"] == "debian12"
    assert hv["front1"]["nx_os_release"] == "debian13"


def test_add_host_keeps_what_the_operator_added_to_the_inventory() -> None:
    """`lab add-host` rewrites hosts.yml from the lab's hosts: the groups and host variables the operator added since
    `up` (a monitoring host, here) are read back first, so add-node rehearses on the inventory as edited."""
    from nxprovision.init import render_hosts_yaml
    from nxprovision_lab.manager import inventory_layout

    text = render_hosts_yaml({"loadbalancers": ["lb1"], "nuxeo_front": ["front1"], "monitoring": ["lb1"]},
                             {"lb1": {"ansible_host": "10.0.0.2", "haproxy_maxconn": 900},
                              "front1": {"ansible_host": "10.0.0.3"}})
    layout, hostvars = inventory_layout(text)
    assert layout == {"loadbalancers": ["lb1"], "nuxeo_front": ["front1"], "monitoring": ["lb1"]}
    assert hostvars == {"lb1": {"ansible_host": "10.0.0.2", "haproxy_maxconn": 900},
                        "front1": {"ansible_host": "10.0.0.3"}}
    assert inventory_layout("") == ({}, {})
