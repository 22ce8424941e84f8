"""Host names and addresses: they end up in shell commands, certificates, nuxeo.conf and haproxy.cfg."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

from nxprovision.model.cluster import Cluster
from nxprovision.rules._where import of_setting
from nxprovision.rules.finding import Finding, error

# RFC 1123 labels; underscores are common in inventory names but no certificate may carry them as a DNS name.
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a host name or address, or None when it can."""
    if not name:
        return "is empty"
    if not name.isascii():
        return "has non-ASCII characters"
    odd = sorted({ch for ch in name if not (ch.isalnum() or ch in ".-")})
    if odd:
        shown = " ".join(repr(ch) for ch in odd)
        return f"has characters a host name cannot have ({shown})"
    try:
        ipaddress.ip_address(name)
        return None
    except ValueError:
        pass
    if len(name) > 253:
        return "is longer than 253 characters"
    bad = [label for label in name.rstrip(".").split(".") if not _LABEL.match(label)]
    if bad:
        return f"has a label that is not a host name label ({bad[0]!r}: letters, digits and inner '-', 1-63 long)"
    return None


def _address_problem(address: str) -> str | None:
    if ":" in address:  # an IPv6 address is the only form with colons
        try:
            ipaddress.ip_address(address)
            return None
        except ValueError:
            return "is neither a host name nor an IP address"
    return name_problem(address)


def check(c: Cluster) -> Iterator[Finding]:
    for name, host in sorted(c.hosts.items()):
        problem = name_problem(name)
        if problem:
            yield error("inventory.host_name", f"host {name!r}", problem,
                        "name the host with letters, digits, '-' and '.' only (a DNS name or an IP address); "
                        "put the real address in ansible_host", c.view.source)
        address = str(host.vars.get("ansible_host") or "")
        if address and address != name:
            problem = _address_problem(address)
            if problem:
                yield error("inventory.host_address", f"host {name}", f"ansible_host {address!r} {problem}",
                            "set ansible_host to the host's DNS name or IP address",
                            of_setting(c, "ansible_host", name))
