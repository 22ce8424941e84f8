"""Cluster-wide settings: architecture, consistency across hosts, public URL, S3 mode, download URLs."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from nxprovision.model import architectures
from nxprovision.model.architectures import GROUPS
from nxprovision.model.cluster import CLUSTER_WIDE, Cluster
from nxprovision.rules._where import of_group, of_setting
from nxprovision.rules.finding import Finding, error, warning

_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


def check(c: Cluster) -> Iterator[Finding]:
    if not c.hosts:
        yield error("inventory.empty", "inventory", "holds no hosts",
                    "list hosts in the groups loadbalancers, nuxeo_front, postgresql|mongodb, opensearch, kafka, "
                    "s3 (see `nxprovision init --architecture compact DIR` for a sample)", c.view.source)
        return
    for key, expected in c.settings.get("_type_problems", []):
        yield error("settings.type", f"setting {key}", f"must be {expected}",
                    f"write {key} as {expected} (see the samples in inventories/)", of_setting(c, key))
    arch = c.settings.get("nx_architecture")
    if arch in (None, ""):
        yield error("settings.architecture", "setting nx_architecture", "is not set",
                    f"set nx_architecture to one of {', '.join(architectures.ARCHITECTURES)} in group_vars/all",
                    c.view.source)
    elif arch not in architectures.ARCHITECTURES:
        yield error("settings.architecture", "setting nx_architecture", f"'{arch}' is not a known architecture",
                    f"use one of {', '.join(architectures.ARCHITECTURES)}", of_setting(c, "nx_architecture"))

    # One cluster, one value: a group_vars file for a subset of hosts must not change these.
    for key in CLUSTER_WIDE:
        values: dict[str, list[str]] = {}
        for h, host in c.hosts.items():
            if key in host.vars:
                values.setdefault(repr(host.vars[key]), []).append(h)
        if len(values) > 1:
            parts = "; ".join(f"{v} on {', '.join(hs[:3])}{'...' if len(hs) > 3 else ''}"
                              for v, hs in values.items())
            yield error(f"settings.consistent.{key}", f"setting {key}",
                        f"differs between hosts ({parts}); it describes the whole cluster",
                        f"set {key} once, in group_vars/all", of_setting(c, key))

    name = str(c.settings.get("nx_cluster_name", ""))
    if not _NAME_RE.match(name):
        yield error("settings.cluster_name", "setting nx_cluster_name", f"'{name}' is not a valid cluster name",
                    "use 1-31 lower-case letters, digits or dashes, starting with a letter",
                    of_setting(c, "nx_cluster_name"))

    # playbooks/restore.yml sets it for one run; kept in an inventory, any new bootstrap of the cluster would restore
    # that backup instead of creating the database.
    for h, host in c.hosts.items():
        if str(host.vars.get("patroni_restore_set") or ""):
            yield error("settings.restore_only", "setting patroni_restore_set",
                        "is set in the inventory: a Patroni cluster bootstrapped anew would restore that backup",
                        "remove it; `nxprovision restore --backup ID` (or playbooks/restore.yml) sets it for the "
                        "restore only", of_setting(c, "patroni_restore_set", h))
            break

    url = str(c.settings.get("nx_public_url") or "")
    parts = urlsplit(url)
    try:
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok = False
    if not url:
        yield error("settings.public_url", "setting nx_public_url", "is not set",
                    "set nx_public_url to the URL users reach, e.g. https://nuxeo.example.com/nuxeo",
                    c.view.source)
    elif parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        yield error("settings.public_url", "setting nx_public_url", f"'{url}' is not a well-formed http(s) URL",
                    "write it as http(s)://HOST[:PORT]/nuxeo", of_setting(c, "nx_public_url"))
    elif parts.path.rstrip("/") != "/nuxeo":
        yield error("settings.public_url", "setting nx_public_url",
                    f"'{url}' must end with the /nuxeo context path (Nuxeo is served at /nuxeo)",
                    f"use {parts.scheme}://{parts.netloc}/nuxeo", of_setting(c, "nx_public_url"))
    elif parts.query or parts.fragment:
        yield error("settings.public_url", "setting nx_public_url", f"'{url}' carries a query or fragment",
                    f"use {parts.scheme}://{parts.netloc}/nuxeo", of_setting(c, "nx_public_url"))

    s3_mode = c.settings.get("s3_mode")
    if s3_mode not in ("seaweedfs", "external"):
        yield error("settings.s3_mode", "setting s3_mode", f"'{s3_mode}' is not a known S3 mode",
                    "use seaweedfs (self-hosted on the s3 group) or external (s3_endpoint)",
                    of_setting(c, "s3_mode"))
    elif s3_mode == "external":
        ep = urlsplit(str(c.settings.get("s3_endpoint") or ""))
        if ep.scheme not in ("http", "https") or not ep.hostname:
            yield error("settings.s3_endpoint", "setting s3_endpoint",
                        "s3_mode is external but s3_endpoint is not an http(s) URL",
                        "set s3_endpoint to your S3 endpoint, e.g. https://s3.example.com",
                        of_setting(c, "s3_endpoint"))
        if c.s3_hosts:
            yield warning("settings.s3_hosts_unused", "group s3",
                          "has hosts but s3_mode is external: they will not be used",
                          "empty the s3 group or set s3_mode: seaweedfs", of_group(c, "s3"))
    if not str(c.settings.get("s3_bucket") or "").strip():
        yield error("settings.s3_bucket", "setting s3_bucket", "is empty",
                    "set s3_bucket to the bucket holding Nuxeo's binaries", of_setting(c, "s3_bucket"))

    if c.settings.get("search_distribution") not in ("opensearch", "elasticsearch"):
        yield error("settings.search_distribution", "setting search_distribution",
                    f"'{c.settings.get('search_distribution')}' is not supported",
                    "use opensearch or elasticsearch", of_setting(c, "search_distribution"))
    if c.settings.get("kafka_mode") not in ("auto", "kraft", "zookeeper"):
        yield error("settings.kafka_mode", "setting kafka_mode", f"'{c.settings.get('kafka_mode')}' is unknown",
                    "use auto, kraft or zookeeper", of_setting(c, "kafka_mode"))
    if not str(c.settings.get("nuxeo_download_base_url") or "").strip():
        yield error("settings.download_url", "setting nuxeo_download_base_url", "is empty",
                    "point it at the mirror holding nuxeo-server-<version>-tomcat.zip and package zips "
                    "(Nuxeo LTS downloads need a Nuxeo Online Services account)",
                    of_setting(c, "nuxeo_download_base_url"))
    for key in ("kafka", "opensearch", "mongodb", "seaweedfs", "elasticsearch"):
        base = str(c.settings.get(f"{key}_download_base_url") or "")
        if base and urlsplit(base).scheme not in ("http", "https", "file"):
            yield error("settings.download_url", f"setting {key}_download_base_url", f"'{base}' is not a URL",
                        "use an http(s):// or file:// base URL", of_setting(c, f"{key}_download_base_url"))

    for group in c.view.groups:
        if group in ("all", "ungrouped") or group in GROUPS:
            continue
        if group.startswith("lab") or group.startswith("enable_"):
            continue
        close = difflib.get_close_matches(group, GROUPS, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known groups: {', '.join(GROUPS)}"
        yield warning("groups.unknown", f"group {group}", "is not a group nxprovision uses; its hosts get nothing",
                      hint, of_group(c, group))
