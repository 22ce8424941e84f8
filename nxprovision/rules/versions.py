"""Nuxeo's compatibility matrix: Nuxeo LTS x Java x database x search x Kafka (nuxeo-facts.md 2.1)."""

from __future__ import annotations

from collections.abc import Iterator

from nxprovision.model.cluster import Cluster, kafka_mode
from nxprovision.model.versions import KRAFT_MIN_KAFKA, MATRIX, NuxeoVersion, matches, parse_dotted
from nxprovision.rules._where import of_setting
from nxprovision.rules.finding import Finding, error, warning


def _outside(c: Cluster, component: str, setting: str, version: str, accepted: tuple[str, ...], lts: int,
             ) -> Iterator[Finding]:
    overrides = c.settings.get("nx_compat_overrides") or {}
    reason = overrides.get(component) if isinstance(overrides, dict) else None
    listed = ", ".join(accepted) if accepted else "none"
    if reason:
        yield warning(f"versions.{component}", f"setting {setting}",
                      f"{component} {version} is outside Nuxeo LTS {lts}'s matrix ({listed}); overridden: {reason}",
                      "keep the override only while you accept running unsupported", of_setting(c, setting))
    else:
        yield error(f"versions.{component}", f"setting {setting}",
                    f"{component} {version} is outside Nuxeo LTS {lts}'s compatibility matrix (supported: {listed})",
                    f"use a supported version, or accept the risk with nx_compat_overrides: {{{component}: "
                    "'<reason>'}", of_setting(c, setting))


def check(c: Cluster) -> Iterator[Finding]:
    if not c.hosts:
        return
    raw = str(c.settings.get("nuxeo_version", ""))
    v = NuxeoVersion.parse(raw)
    if v is None:
        yield error("versions.nuxeo", "setting nuxeo_version", f"'{raw}' is not a Nuxeo LTS version",
                    "write it as <LTS>.<hotfix>, e.g. 2023.35 or 2021.40", of_setting(c, "nuxeo_version"))
        return
    m = MATRIX.get(v.lts)
    if m is None:
        yield error("versions.nuxeo", "setting nuxeo_version", f"Nuxeo LTS {v.lts} is not supported by nxprovision",
                    f"use one of LTS {', '.join(str(k) for k in MATRIX)}", of_setting(c, "nuxeo_version"))
        return

    java = c.settings.get("nuxeo_java_version")
    if java not in (None, "") and str(java) != m.java:
        yield error("versions.java", "setting nuxeo_java_version",
                    f"Java {java} does not run Nuxeo LTS {v.lts}, which needs JDK {m.java}",
                    f"set nuxeo_java_version: {m.java} (or remove it)", of_setting(c, "nuxeo_java_version"))

    if c.database == "postgresql" and c.db_hosts:
        pv = str(c.settings.get("postgresql_version"))
        if not matches(pv, m.postgresql):
            yield from _outside(c, "postgresql", "postgresql_version", pv, m.postgresql, v.lts)
    elif c.database == "mongodb" and c.db_hosts:
        mv = str(c.settings.get("mongodb_version"))
        if not matches(mv, m.mongodb):
            yield from _outside(c, "mongodb", "mongodb_version", mv, m.mongodb, v.lts)

    dist = str(c.settings.get("search_distribution"))
    sv = str(c.settings.get("search_version"))
    accepted = m.opensearch if dist == "opensearch" else m.elasticsearch
    if c.search_hosts and dist in ("opensearch", "elasticsearch") and not matches(sv, accepted):
        yield from _outside(c, dist, "search_version", sv, accepted, v.lts)

    kv = str(c.settings.get("kafka_version"))
    if c.kafka_brokers:
        if not matches(kv, m.kafka):
            yield from _outside(c, "kafka", "kafka_version", kv, m.kafka, v.lts)
        mode = kafka_mode(c)
        if (mode == "kraft" and m.kraft_from_hotfix is None) or (
                mode == "kraft" and m.kraft_from_hotfix is not None and v.hotfix < m.kraft_from_hotfix):
            since = f"LTS {v.lts}.{m.kraft_from_hotfix}" if m.kraft_from_hotfix else "LTS 2023.33"
            yield error("versions.kraft", "setting kafka_mode",
                        f"Kafka in KRaft mode needs Nuxeo {since} or later; this cluster runs {v}",
                        "set kafka_mode: zookeeper (with a zookeeper group) or upgrade Nuxeo",
                        of_setting(c, "kafka_mode"))
        parsed = parse_dotted(kv)
        if mode == "kraft" and parsed is not None and parsed[:2] < KRAFT_MIN_KAFKA:
            yield error("versions.kraft_kafka", "setting kafka_version",
                        f"Kafka {kv} in KRaft mode: Nuxeo supports KRaft with Kafka 3.6 or later",
                        "use kafka_version 3.6.x or later", of_setting(c, "kafka_version"))
        if mode == "kraft" and c.zookeeper_hosts:
            yield warning("versions.zookeeper_unused", "group zookeeper",
                          "has hosts but Kafka runs in KRaft mode: ZooKeeper will not be installed",
                          "empty the zookeeper group", of_setting(c, "kafka_mode"))
