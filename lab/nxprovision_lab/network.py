"""The lab network: one bridge, one network namespace and veth pair per host, an unreachable route.

No NAT and no default route inside: lab hosts reach each other and the lab services on the bridge
address, nothing else. Every object is named from the lab's name (naming.LabNames), so leftovers of
an interrupted `up` are found by prefix.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import subprocess
from pathlib import Path

from nxprovision.errors import NxError
from nxprovision_lab.addressing import UNREACHABLE_METRIC
from nxprovision_lab.naming import LabNames

NETNS_DIR = Path("/run/netns")
# The host side of a lab link records its lab in the interface alias, so a short-id collision between
# two lab names is detected instead of one lab tearing down the other's links.
ALIAS_PREFIX = "nxprovision-lab:"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise NxError(
            f"`ip {' '.join(args)}` failed: {proc.stderr.strip()}",
            "run `nxprovision lab down` for this lab, then `up` again",
        )
    return proc


def links() -> list[dict[str, object]]:
    return json.loads(ip("-j", "link", "show").stdout or "[]")


def link_names() -> list[str]:
    return [str(link["ifname"]) for link in links()]


def link_alias(name: str) -> str | None:
    for link in links():
        if link["ifname"] == name:
            return str(link.get("ifalias", "")) or None
    return None


def netns_names() -> list[str]:
    out = ip("-j", "netns", "list", check=False).stdout.strip()
    names = [str(n["name"]) for n in json.loads(out)] if out else []
    # a netns whose `ip netns add` was interrupted may exist only as a file
    if NETNS_DIR.is_dir():
        names += [p.name for p in NETNS_DIR.iterdir() if p.name not in names]
    return names


def lab_devices() -> set[str]:
    """Interfaces that belong to some lab (any name): not part of the machine's own networks."""
    return {n for n in link_names() if n.startswith(("nxb-", "nxh-"))}


def create_bridge(names: LabNames, bridge_addr: ipaddress.IPv4Interface) -> None:
    br = names.bridge
    ip("link", "add", br, "type", "bridge", "forward_delay", "0", "stp_state", "0")
    ip("link", "set", br, "alias", ALIAS_PREFIX + names.name)
    _sysctl(f"net/ipv6/conf/{br}/disable_ipv6", "1")
    ip("addr", "add", str(bridge_addr), "dev", br)
    ip("link", "set", br, "up")
    ip("route", "add", "unreachable", str(bridge_addr.network), "metric", str(UNREACHABLE_METRIC))


def add_host(names: LabNames, host: str, index: int, addr: ipaddress.IPv4Interface) -> None:
    ns = names.netns(host)
    veth = names.veth(index)
    ip("netns", "add", ns)
    # the lab host sees its end as eth0, like a real server's first NIC
    ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
    ip("link", "set", veth, "alias", ALIAS_PREFIX + names.name)
    _sysctl(f"net/ipv6/conf/{veth}/disable_ipv6", "1")
    ip("link", "set", veth, "master", names.bridge, "up")
    ip("-n", ns, "link", "set", "lo", "up")
    ip("-n", ns, "addr", "add", str(addr), "dev", "eth0")
    ip("-n", ns, "link", "set", "eth0", "up")


def set_link(names: LabNames, index: int, up: bool) -> None:
    ip("link", "set", names.veth(index), "up" if up else "down")


def link_is_up(names: LabNames, index: int) -> bool | None:
    for link in links():
        if link["ifname"] == names.veth(index):
            return "UP" in link.get("flags", [])  # type: ignore[operator]
    return None


def netns_pids(ns: str) -> list[int]:
    out = ip("netns", "pids", ns, check=False).stdout
    return [int(p) for p in out.split()]


def bridge_network(names: LabNames) -> ipaddress.IPv4Network | None:
    out = ip("-j", "-4", "addr", "show", "dev", names.bridge, check=False).stdout.strip()
    for link in json.loads(out or "[]"):
        for a in link.get("addr_info", []):
            return ipaddress.IPv4Interface(f"{a['local']}/{a['prefixlen']}").network
    return None


def unreachable_routes() -> list[ipaddress.IPv4Network]:
    out = ip("-j", "-4", "route", "show", "type", "unreachable", check=False).stdout.strip()
    return [
        ipaddress.IPv4Network(r["dst"])
        for r in json.loads(out or "[]")
        if r.get("metric") == UNREACHABLE_METRIC and "/" in r.get("dst", "")
    ]


def remove(names: LabNames, subnet: ipaddress.IPv4Network | None) -> None:
    """Delete every network object of the lab that exists; missing ones are fine (interrupted up)."""
    subnet = subnet or bridge_network(names)
    for ns in netns_names():
        if ns.startswith(names.netns_prefix):
            ip("netns", "del", ns, check=False)
            (NETNS_DIR / ns).unlink(missing_ok=True)
    for name in link_names():
        if name.startswith(names.veth_prefix) or name == names.bridge:
            alias = link_alias(name)
            if alias and alias != ALIAS_PREFIX + names.name:
                continue  # another lab whose name hashes to the same short id
            ip("link", "del", name, check=False)
    if subnet is not None:
        ip("route", "del", "unreachable", str(subnet), "metric", str(UNREACHABLE_METRIC), check=False)


def _sysctl(key: str, value: str) -> None:
    path = Path("/proc/sys") / key
    # IPv6 may be absent from the kernel: then there is nothing to disable
    with contextlib.suppress(OSError):
        path.write_text(value)
