"""The lab's address plan: one /24 per lab, never on the machine's own networks."""

from __future__ import annotations

import ipaddress
import json

import pytest

from nxprovision.errors import NxError
from nxprovision_lab import addressing
from nxprovision_lab.addressing import UNREACHABLE_METRIC

N = ipaddress.IPv4Network


def test_first_lab_skips_the_range_base_and_later_labs_take_the_next_free() -> None:
    assert addressing.allocate([], []) == N("10.213.1.0/24")
    assert addressing.allocate([N("10.213.1.0/24")], []) == N("10.213.2.0/24")
    # a lab taken down frees its /24 for the next one
    assert addressing.allocate([N("10.213.2.0/24")], []) == N("10.213.1.0/24")


def test_allocation_avoids_the_machines_networks() -> None:
    machine = [N("10.213.0.0/23"), N("10.213.3.128/25")]
    assert addressing.allocate([], machine) == N("10.213.2.0/24")
    assert addressing.allocate([N("10.213.2.0/24")], machine) == N("10.213.4.0/24")


def test_a_machine_network_covering_the_whole_range_is_refused() -> None:
    with pytest.raises(NxError, match=r"overlaps the machine's own network 10\.0\.0\.0/8"):
        addressing.allocate([], [N("10.0.0.0/8")])


def test_a_full_range_without_machine_networks_asks_to_take_labs_down() -> None:
    used = [n for n in addressing.LAB_RANGE.subnets(new_prefix=24)]
    with pytest.raises(NxError, match="no free /24") as err:
        addressing.allocate(used, [])
    assert "lab down --all" in (err.value.fix or "")


def test_overlap_check_names_both_networks() -> None:
    with pytest.raises(NxError) as err:
        addressing.check_no_overlap(N("10.213.5.0/24"), [N("192.0.2.0/24"), N("10.213.5.128/25")])
    assert "10.213.5.0/24" in str(err.value) and "10.213.5.128/25" in str(err.value)
    addressing.check_no_overlap(N("10.213.5.0/24"), [N("192.0.2.0/24")])


def test_bridge_and_host_addresses() -> None:
    net = N("10.213.7.0/24")
    assert str(addressing.bridge_ip(net)) == "10.213.7.1"
    assert str(addressing.host_ip(net, 1)) == "10.213.7.11"
    assert str(addressing.vip(net)) == "10.213.7.10"
    assert str(addressing.host_ip(net, addressing.MAX_HOSTS)) == "10.213.7.250"
    with pytest.raises(NxError):
        addressing.host_ip(net, addressing.MAX_HOSTS + 1)


def test_machine_networks_leave_out_defaults_labs_and_lab_unreachable_routes() -> None:
    addr = json.dumps(
        [
            {"ifname": "eth0", "addr_info": [{"family": "inet", "local": "192.0.2.2", "prefixlen": 24}]},
            {"ifname": "nxb-abcde", "addr_info": [{"family": "inet", "local": "10.213.1.1", "prefixlen": 24}]},
            {"ifname": "wg0", "addr_info": [{"family": "inet6", "local": "fd00::1", "prefixlen": 64}]},
        ]
    )
    route = json.dumps(
        [
            {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},
            {"dst": "192.0.2.0/24", "dev": "eth0"},
            {"dst": "10.213.1.0/24", "dev": "nxb-abcde"},
            {"type": "unreachable", "dst": "10.213.1.0/24", "metric": UNREACHABLE_METRIC},
            {"type": "unreachable", "dst": "10.213.9.0/24", "metric": 0},
            {"dst": "172.16.5.4", "dev": "eth0"},
        ]
    )
    nets = addressing.parse_machine_networks(addr, route, {"nxb-abcde"})
    assert nets == [N("10.213.9.0/24"), N("172.16.5.4/32"), N("192.0.2.0/24")]
