"""Address plan: each lab gets its own /24 inside 10.213.0.0/16, never overlapping the machine's networks."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Iterable

from nxprovision.errors import NxError

LAB_RANGE = ipaddress.IPv4Network("10.213.0.0/16")
BRIDGE_HOST = 1  # the machine's address on a lab bridge is .1
VIP_HOST = 10  # the load balancers' virtual IP, when the architecture has one
FIRST_HOST = 11  # lab hosts are .11, .12, ...
MAX_HOSTS = 240
# Metric of each lab's `unreachable` route: above the bridge's connected route (metric 0), so it only
# takes over when the bridge is gone, and recognisable as the lab's own.
UNREACHABLE_METRIC = 4213


def subnet(index: int) -> ipaddress.IPv4Network:
    return list(LAB_RANGE.subnets(new_prefix=24))[index]


def bridge_ip(net: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    return net.network_address + BRIDGE_HOST


def vip(net: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    return net.network_address + VIP_HOST


def host_ip(net: ipaddress.IPv4Network, index: int) -> ipaddress.IPv4Address:
    """Address of host number `index` (1-based)."""
    if not 1 <= index <= MAX_HOSTS:
        raise NxError(f"a lab holds at most {MAX_HOSTS} hosts", f"ask for {MAX_HOSTS} hosts or fewer")
    return net.network_address + FIRST_HOST + index - 1


def allocate(
    used_by_labs: Iterable[ipaddress.IPv4Network], machine_nets: Iterable[ipaddress.IPv4Network]
) -> ipaddress.IPv4Network:
    """The first /24 of the lab range used by no other lab and overlapping none of the machine's networks."""
    taken = set(used_by_labs)
    machine = list(machine_nets)
    for candidate in LAB_RANGE.subnets(new_prefix=24):
        if candidate in taken:
            continue
        if candidate.network_address == LAB_RANGE.network_address:
            continue  # keep 10.213.0.0/24 free: .0 looks like the range itself in `ip route`
        clash = next((m for m in machine if m.overlaps(candidate)), None)
        if clash is not None:
            continue
        return candidate
    # every /24 is taken: say so plainly when the machine's own networks are the reason
    blocking = [m for m in machine if m.supernet_of(LAB_RANGE)]
    if not blocking and not taken:
        blocking = [m for m in machine if m.overlaps(LAB_RANGE)]
    if blocking:
        check_no_overlap(LAB_RANGE, blocking)
    raise NxError(
        f"no free /24 left in {LAB_RANGE} for a new lab (the machine's networks or other labs use them all)",
        "take down labs you no longer need with `nxprovision lab down --all`",
    )


def check_no_overlap(net: ipaddress.IPv4Network, machine_nets: Iterable[ipaddress.IPv4Network]) -> None:
    for m in machine_nets:
        if m.overlaps(net):
            raise NxError(
                f"lab network {net} overlaps the machine's own network {m}",
                f"move the machine's network out of {LAB_RANGE}: the lab never routes into it",
            )


def parse_machine_networks(
    addr_json: str, route_json: str, own_devices: set[str]
) -> list[ipaddress.IPv4Network]:
    """IPv4 networks the machine uses, from `ip -j addr` and `ip -j route`, minus the labs' own devices.

    Default routes are left out (they overlap everything); so are the labs' own unreachable routes.
    """
    nets: set[ipaddress.IPv4Network] = set()
    for link in json.loads(addr_json or "[]"):
        if link.get("ifname") in own_devices:
            continue
        for a in link.get("addr_info", []):
            if a.get("family") == "inet":
                nets.add(ipaddress.IPv4Network(f"{a['local']}/{a['prefixlen']}", strict=False))
    for r in json.loads(route_json or "[]"):
        dst = r.get("dst", "")
        if dst in ("default", "") or r.get("dev") in own_devices:
            continue
        if r.get("type") == "unreachable" and r.get("metric") == UNREACHABLE_METRIC:
            continue
        if "/" not in dst:
            dst += "/32"
        try:
            nets.add(ipaddress.IPv4Network(dst, strict=False))
        except ValueError:
            continue
    return sorted(nets)


def machine_networks(own_devices: set[str]) -> list[ipaddress.IPv4Network]:
    addr = subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True, check=True).stdout
    route = subprocess.run(
        ["ip", "-j", "-4", "route", "show", "table", "all"], capture_output=True, text=True, check=True
    ).stdout
    return [n for n in parse_machine_networks(addr, route, own_devices) if not n.is_loopback
            and not n.is_link_local and not n.is_multicast]
