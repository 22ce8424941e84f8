"""No two components on one host may listen on the same port."""

from __future__ import annotations

from collections.abc import Iterator

from nxprovision.model.cluster import Cluster
from nxprovision.model.ports import host_ports
from nxprovision.rules.finding import Finding, error, warning


def check(c: Cluster) -> Iterator[Finding]:
    yield from _open_reporter(c)
    for name in c.hosts:
        used: dict[int, str] = {}
        for _group, label, key, value in host_ports(c, name):
            try:
                port = int(value)  # type: ignore[call-overload]
            except (TypeError, ValueError):
                yield error("ports.invalid", f"host {name}", f"{key} is not a port number",
                            f"set {key} to a number between 1 and 65535", c.view.source)
                continue
            yield from _claim(used, port, label, key, name, c.view.source)


def _claim(used: dict[int, str], port: int, label: str, key: str, host: str, where: str) -> Iterator[Finding]:
    if not 0 < port < 65536:
        yield error("ports.invalid", f"host {host}", f"{label} port {port} is out of range",
                    f"set {key} between 1 and 65535", where)
    elif port in used:
        yield error("ports.clash", f"host {host}",
                    f"{label} and {used[port]} both want port {port}",
                    f"set {key} (or the other component's port) to a free port on {host}", where)
    else:
        used[port] = f"{label} ({key})"


def _open_reporter(c: Cluster) -> Iterator[Finding]:
    """Nuxeo's Prometheus reporter listens on every address without TLS or authentication (Nuxeo has no option for
    any of them): without the host firewall, anything that reaches a Nuxeo node reads its metrics."""
    monitoring = c.derived.get("monitoring") or {}
    firewall = c.derived.get("firewall") or {}
    if monitoring.get("enabled") and monitoring.get("nuxeo_metrics") and not firewall.get("enabled"):
        yield warning("ports.open_metrics", "setting nx_firewall_enabled",
                      "Nuxeo's Prometheus reporter (nuxeo_metrics_port) listens on every address of each Nuxeo node, "
                      "over plain HTTP without authentication: Nuxeo offers no option for a bind address, TLS or "
                      "credentials",
                      "set nx_firewall_enabled: true (the monitoring host alone is then admitted to that port), or "
                      "filter the port in your network", c.view.source)
