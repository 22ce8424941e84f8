"""The TCP listeners of a host as `ss -Hltnp` prints them, and which of them reach beyond the cluster address.

Pure functions (no lab): the unit tests feed them ss output with a wildcard listener to prove the check can fail.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class Listener:
    address: str  # as ss prints it, brackets and interface scope removed: "0.0.0.0", "::", "*", "10.0.0.5"
    port: str
    process: str  # the first process holding the socket, "?" when ss could not name it

    def __str__(self) -> str:
        address = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.process} on {address}:{self.port}"


def parse_ss(text: str) -> list[Listener]:
    """Every listening socket of `ss -Hltnp` output (State Recv-Q Send-Q Local Peer Process)."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[0] != "LISTEN":
            continue
        addr, _, port = fields[3].rpartition(":")
        addr = addr.strip("[]").split("%", 1)[0]  # 127.0.0.53%lo, [fe80::1%eth0]
        users = " ".join(fields[5:])
        proc = users.split('"')[1] if users.count('"') >= 2 else "?"
        out.append(Listener(addr, port, proc))
    return out


def _is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _same(address: str, cluster_ip: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip == ipaddress.ip_address(cluster_ip)


def beyond_cluster(listeners: list[Listener], cluster_ip: str, allowed: set[str] | frozenset[str] = frozenset(),
                   ) -> list[Listener]:
    """Listeners bound to anything but the cluster address or loopback (a wildcard, another interface's address),
    except the processes in `allowed`."""
    return [
        ln for ln in listeners
        if not (_same(ln.address, cluster_ip) or _is_loopback(ln.address) or ln.process in allowed)
    ]
