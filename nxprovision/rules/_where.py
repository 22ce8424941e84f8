"""Locations for findings: the file (and line) a value or group came from."""

from __future__ import annotations

from nxprovision.model.cluster import Cluster


def of_setting(c: Cluster, key: str, host: str | None = None) -> str:
    hosts = [host] if host else list(c.hosts)
    for h in hosts:
        w = c.view.origin(h, key)
        if w:
            return w
    return c.view.source


def of_group(c: Cluster, group: str) -> str:
    return c.view.group_sources.get(group, c.view.source)
