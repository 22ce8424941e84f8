"""Nuxeo's compatibility matrix: LTS x Java x database x search client x audit store x Kafka x OS.

The matrix is data (model/compatibility.yml); each finding quotes the documentation's version list and the page
it comes from. Running outside it on purpose is explicit: `nx_compat_overrides: {<component>: <reason>}` turns
the error into a warning (Java and the LTS itself excepted: those do not start at all).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from nxprovision.model.cluster import Cluster, host_setting, kafka_mode
from nxprovision.model.compat import PRODUCT_LABELS, Lts, Matrix, SearchClient, load
from nxprovision.model.versions import NuxeoVersion, parse_dotted
from nxprovision.rules._where import of_setting
from nxprovision.rules.finding import Finding, error, warning

_OPENJDK_RE = re.compile(r"^openjdk-(\d+)-")


def _outside(c: Cluster, component: str, subject: str, setting: str, message: str, fix: str) -> Iterator[Finding]:
    """An error, or a warning when nx_compat_overrides names the component with a reason."""
    overrides = c.settings.get("nx_compat_overrides") or {}
    reason = overrides.get(component) if isinstance(overrides, dict) else None
    if reason:
        yield warning(f"versions.{component}", subject, f"{message}; overridden: {reason}",
                      "keep the override only while you accept running unsupported", of_setting(c, setting))
    else:
        yield error(f"versions.{component}", subject, message,
                    f"{fix}, or accept the risk with nx_compat_overrides: {{{component}: '<reason>'}}",
                    of_setting(c, setting))


def _version_outside(c: Cluster, component: str, setting: str, version: str, listed: str, lts: int, source: str,
                     ) -> Iterator[Finding]:
    yield from _outside(
        c, component, f"setting {setting}", setting,
        f"{component} {version} is outside Nuxeo LTS {lts}'s compatibility matrix (supported: {listed}; {source})",
        "use a supported version")


def check(c: Cluster) -> Iterator[Finding]:
    if not c.hosts:
        return
    raw = str(c.settings.get("nuxeo_version", ""))
    v = NuxeoVersion.parse(raw)
    if v is None:
        yield error("versions.nuxeo", "setting nuxeo_version", f"'{raw}' is not a Nuxeo LTS version",
                    "write it as <LTS>.<hotfix>, e.g. 2023.35 or 2021.40", of_setting(c, "nuxeo_version"))
        return
    matrix = load()
    deployable = ", ".join(str(k) for k in matrix.deployable())
    m = matrix.lts.get(v.lts)
    if m is None:
        yield error("versions.nuxeo", "setting nuxeo_version", f"Nuxeo LTS {v.lts} is not supported by nxprovision",
                    f"use one of LTS {deployable}", of_setting(c, "nuxeo_version"))
        return
    if not m.deployable:
        # The matrix checks below still run: the inventory can be made right before the roles catch up.
        yield error("versions.nuxeo", "setting nuxeo_version",
                    f"nxprovision cannot deploy Nuxeo LTS {v.lts} yet: LTS {v.lts} deployment is coming; this "
                    f"inventory is checked against LTS {v.lts}'s compatibility matrix meanwhile",
                    f"deploy LTS {deployable} until then (e.g. nuxeo_version: 2023.35)", of_setting(c, "nuxeo_version"))

    yield from _java(c, m)
    yield from _database(c, matrix, m)
    yield from _search(c, m)
    yield from _kafka(c, m, v)
    yield from _os(c, matrix, m)


def _java(c: Cluster, m: Lts) -> Iterator[Finding]:
    need = m.java.versions
    java = c.settings.get("nuxeo_java_version")
    if java not in (None, "") and not need.matches(str(java)):
        yield error("versions.java", "setting nuxeo_java_version",
                    f"Java {java} does not run Nuxeo LTS {m.lts}, which needs JDK {need.describe()} "
                    f"({m.java.source})", f"set nuxeo_java_version: {need.patterns[0]} (or remove it)",
                    of_setting(c, "nuxeo_java_version"))
    package = str(c.settings.get("common_java_package") or "")
    jdk = _OPENJDK_RE.match(package)
    if jdk and not need.matches(jdk.group(1)):
        yield error("versions.java", "setting common_java_package",
                    f"{package} is Java {jdk.group(1)}; Nuxeo LTS {m.lts} needs JDK {need.describe()} "
                    f"({m.java.source})",
                    f"name a JDK {need.patterns[0]} package (or leave common_java_package empty)",
                    of_setting(c, "common_java_package"))


def _database(c: Cluster, matrix: Matrix, m: Lts) -> Iterator[Finding]:
    if c.database == "postgresql" and c.db_hosts:
        pv = str(c.settings.get("postgresql_version"))
        if not m.postgresql.versions.matches(pv):
            yield from _version_outside(c, "postgresql", "postgresql_version", pv, m.postgresql.describe(), m.lts,
                                        m.postgresql.source)
        yield from _postgresql_packaged(c, matrix, pv)
    elif c.database == "mongodb" and c.db_hosts:
        mv = str(c.settings.get("mongodb_version"))
        if not m.mongodb.versions.matches(mv):
            yield from _version_outside(c, "mongodb", "mongodb_version", mv, m.mongodb.describe(), m.lts,
                                        m.mongodb.source)


def nuxeo_setting(c: Cluster, key: str) -> str:
    """A nuxeo role setting as the Nuxeo nodes see it (group_vars/nuxeo included), 'auto' when unset."""
    host = c.nuxeo_nodes[0].host if c.nuxeo_nodes else None
    value = host_setting(c.view, c.settings, host, key) if host else c.settings.get(key)
    return str(value or "auto")


def _clients_line(m: Lts) -> str:
    return "; ".join(f"{sc.key}: {sc.describe()}" for sc in m.search_clients)


def _search(c: Cluster, m: Lts) -> Iterator[Finding]:
    dist = str(c.settings.get("search_distribution"))
    sv = str(c.settings.get("search_version"))
    chosen = nuxeo_setting(c, "nuxeo_search_client")
    audit = nuxeo_setting(c, "nuxeo_audit_backend")
    if not m.packaged_search:
        for key, value in (("nuxeo_search_client", chosen), ("nuxeo_audit_backend", audit)):
            if value != "auto":
                yield warning("versions.search_packages", f"setting {key}",
                              f"has no effect on Nuxeo LTS {m.lts}: its search client and audit store are built in",
                              f"remove {key} (it applies from LTS 2025 on)", of_setting(c, key))
        client = m.search_clients[0]
        if c.search_hosts and dist in PRODUCT_LABELS and not client.covers(dist, sv):
            yield from _version_outside(c, dist, "search_version", sv, client.products[dist].describe(), m.lts,
                                        client.source)
        return

    keys = [sc.key for sc in m.search_clients]
    client = m.pick_search_client(chosen, dist, sv)
    if chosen != "auto" and client is None:
        yield error("versions.search_client", "setting nuxeo_search_client",
                    f"'{chosen}' is not a search client package of Nuxeo LTS {m.lts}",
                    f"use auto or one of {', '.join(keys)}", of_setting(c, "nuxeo_search_client"))
    elif c.search_hosts and dist in PRODUCT_LABELS:
        label = f"{PRODUCT_LABELS[dist]} {sv}"
        if client is None:
            yield from _outside(
                c, dist, "setting search_version", "search_version",
                f"no search client package of Nuxeo LTS {m.lts} supports {label} ({_clients_line(m)}; "
                f"{m.search_clients[0].source})", "use a search cluster version one of them supports")
        elif not client.covers(dist, sv):
            fits = [sc.key for sc in m.search_clients if sc.covers(dist, sv)]
            yield from _outside(
                c, "search_client", "setting nuxeo_search_client", "nuxeo_search_client",
                f"{client.package} does not support {label}: it supports {client.describe()} "
                f"(Nuxeo LTS {m.lts} matrix: {_clients_line(m)}; {client.source})",
                f"set nuxeo_search_client: {fits[0]} (or auto)" if fits
                else "use a search cluster version the client supports")
    yield from _audit(c, m, client, audit)


def _audit(c: Cluster, m: Lts, client: SearchClient | None, audit: str) -> Iterator[Finding]:
    backends = m.audit_backends()
    choices = [*backends, "memory"]
    key = (client.key if client else "") if audit == "auto" else audit
    if audit != "auto" and audit not in choices:
        yield error("versions.audit_backend", "setting nuxeo_audit_backend",
                    f"'{audit}' is not an audit store of Nuxeo LTS {m.lts}",
                    f"use auto or one of {', '.join(choices)}", of_setting(c, "nuxeo_audit_backend"))
        return
    packages = ", ".join(f"{k} ({p})" for k, (p, _n) in backends.items())
    if key == "memory":
        nodes = len(c.nuxeo_nodes)
        message = (f"keeps Nuxeo LTS {m.lts}'s audit log in memory (no audit package), which Nuxeo documents as "
                   f"for testing purpose only ({m.audit.source})")
        if m.audit.required_in_cluster and nodes > 1:
            yield from _outside(
                c, "audit_backend", "setting nuxeo_audit_backend", "nuxeo_audit_backend",
                f"{message}: a cluster of {nodes} Nuxeo nodes needs an audit package: {packages}",
                "set nuxeo_audit_backend: auto (the search client's audit package) or mongodb / sql")
        else:
            yield warning("versions.audit_backend", "setting nuxeo_audit_backend",
                          f"{message}: the audit log is lost at every restart",
                          "set nuxeo_audit_backend: auto (the search client's audit package) or mongodb / sql",
                          of_setting(c, "nuxeo_audit_backend"))
        return
    if key not in backends:
        return  # auto without a usable search client: reported above
    package, needs = backends[key]
    if needs == "search":
        store = m.search_client(key)
        dist = str(c.settings.get("search_distribution"))
        sv = str(c.settings.get("search_version"))
        if not c.search_hosts:
            yield error("versions.audit_backend", "setting nuxeo_audit_backend",
                        f"{package} stores the audit log in the search cluster, and the inventory has none",
                        "add search hosts, or set nuxeo_audit_backend: mongodb / sql",
                        of_setting(c, "nuxeo_audit_backend"))
        elif store and dist in PRODUCT_LABELS and not store.covers(dist, sv):
            yield from _outside(
                c, "audit_backend", "setting nuxeo_audit_backend", "nuxeo_audit_backend",
                f"{package} does not support {PRODUCT_LABELS[dist]} {sv}: it supports {store.describe()} "
                f"({store.source})", "choose the audit package matching the search client (auto)")
    elif needs != c.database:
        yield error("versions.audit_backend", "setting nuxeo_audit_backend",
                    f"{package} stores the audit log in a {needs} database, and this cluster's is {c.database} "
                    f"({m.audit.source})", f"use auto (the search cluster) or the {c.database} audit store",
                    of_setting(c, "nuxeo_audit_backend"))


def _kafka(c: Cluster, m: Lts, v: NuxeoVersion) -> Iterator[Finding]:
    if not c.kafka_brokers:
        return
    k = m.kafka
    kv = str(c.settings.get("kafka_version"))
    if not k.versions.matches(kv):
        yield from _version_outside(c, "kafka", "kafka_version", kv, k.versions.describe(), m.lts, k.source)
    mode = kafka_mode(c)
    if mode == "kraft" and (k.kraft_from_hotfix is None or v.hotfix < k.kraft_from_hotfix):
        since = (f"Nuxeo LTS {m.lts}.{k.kraft_from_hotfix} or later" if k.kraft_from_hotfix is not None
                 else f"a later LTS: Nuxeo LTS {m.lts} has no KRaft support")
        yield error("versions.kraft", "setting kafka_mode",
                    f"Kafka in KRaft mode needs {since}; this cluster runs {v} ({k.source})",
                    "set kafka_mode: zookeeper (with a zookeeper group) or upgrade Nuxeo", of_setting(c, "kafka_mode"))
    parsed, least = parse_dotted(kv), parse_dotted(k.kraft_min_kafka) if k.kraft_min_kafka else None
    if mode == "kraft" and parsed is not None and least is not None and parsed[:len(least)] < least:
        yield error("versions.kraft_kafka", "setting kafka_version",
                    f"Kafka {kv} in KRaft mode: Nuxeo supports KRaft with Kafka {k.kraft_min_kafka} or later "
                    f"({k.source})", f"use kafka_version {k.kraft_min_kafka}.x or later",
                    of_setting(c, "kafka_version"))
    if mode == "kraft" and c.zookeeper_hosts:
        yield warning("versions.zookeeper_unused", "group zookeeper",
                      "has hosts but Kafka runs in KRaft mode: ZooKeeper will not be installed",
                      "empty the zookeeper group", of_setting(c, "kafka_mode"))


def _postgresql_packaged(c: Cluster, matrix: Matrix, version: str) -> Iterator[Finding]:
    """The role installs postgresql-<version> from the host's own release: a version that release does not ship
    would fail at the package task, after every other host had been changed."""
    by_release: dict[str, list[str]] = {}
    for h in c.db_hosts:
        by_release.setdefault(str(host_setting(c.view, c.settings, h, "nx_os_release") or ""), []).append(h)
    shipped = [set(k.postgresql) for r in by_release if (k := matrix.os_releases.get(r)) and k.postgresql]
    # hosts of two releases with no major in common: no postgresql_version fits them all, and a replica must run its
    # primary's major, so the database moves release as a whole (a new cluster restored from a backup)
    split = len(shipped) > 1 and not set.intersection(*shipped)
    for release, hosts in by_release.items():
        known = matrix.os_releases.get(release)
        if not known or not known.postgresql or version in known.postgresql:
            continue  # an unknown release is _os's finding
        if split:
            yield from _outside(
                c, "postgresql_package", f"hosts {', '.join(hosts[:5])}", "postgresql_version",
                f"postgresql_version {version} is not in {known.label}'s archive, which ships PostgreSQL "
                f"{', '.join(known.postgresql)} ({known.postgresql_source}), and the other database hosts' "
                f"releases ship no major in common with it ("
                + "; ".join(f"{', '.join(h[:3])}: {r}" for r, h in by_release.items()) + ")",
                "keep every database host on one release: a replica runs its primary's major, so the database "
                "moves to a new release as a whole, into a new cluster restored from a backup (docs/debian13.md, "
                "\"Moving a cluster to Debian 13\")")
            continue
        # overridable: an apt repository of the operator's own may carry other majors
        yield from _outside(
            c, "postgresql_package", f"hosts {', '.join(hosts[:5])}", "postgresql_version",
            f"postgresql_version {version} is not in {known.label}'s archive, which ships PostgreSQL "
            f"{', '.join(known.postgresql)} ({known.postgresql_source})",
            f"set postgresql_version: '{known.postgresql[0]}' (the database hosts all run one version)")


def _java_archive(c: Cluster, matrix: Matrix, m: Lts, release: str, hosts: list[str],
                  source: str) -> Iterator[Finding]:
    """Nuxeo nodes on a release without Nuxeo's OpenJDK take a JRE archive from the operator's mirror: it needs
    java_download_base_url and a java_version of Nuxeo's Java."""
    known = matrix.os_releases.get(release)
    label = known.label if known else release
    base = str(c.settings.get("java_download_base_url") or "")
    version = str(c.settings.get("java_version") or "")
    need = m.java.versions
    where = f"hosts {', '.join(hosts[:5])}"
    if not base or not version:
        yield error("versions.java_os", where,
                    f"{label} has no OpenJDK {need.describe()} package, which Nuxeo LTS {m.lts} needs ({source}; "
                    f"{m.java.source})",
                    f"set java_download_base_url (your mirror of Eclipse Temurin's releases: jdk-<version>/"
                    f"OpenJDK{need.patterns[0]}U-jre_<x64|aarch64>_linux_hotspot_<version>.tar.gz) and java_version "
                    f"(e.g. {need.patterns[0]}.0.5+11), or run the Nuxeo nodes on "
                    + ", ".join(o.release for o in m.os if o.java == "archive")
                    + f", or name a JDK {need.patterns[0]} package of your apt repository in common_java_package",
                    of_setting(c, "nx_os_release"))
    elif not need.matches(version.split(".", 1)[0].split("+", 1)[0]):
        yield error("versions.java_os", "setting java_version",
                    f"java_version {version} is Java {version.split('.', 1)[0]}; Nuxeo LTS {m.lts} needs JDK "
                    f"{need.describe()} ({m.java.source})",
                    f"set java_version to a Java {need.patterns[0]} release, e.g. {need.patterns[0]}.0.5+11",
                    of_setting(c, "java_version"))


def _os(c: Cluster, matrix: Matrix, m: Lts) -> Iterator[Finding]:
    by_release: dict[str, list[str]] = {}
    for h in c.hosts:
        release = str(host_setting(c.view, c.settings, h, "nx_os_release") or "")
        by_release.setdefault(release, []).append(h)
    listed = ", ".join(o.release for o in m.os) or "none"
    java_package = str(c.settings.get("common_java_package") or "")
    for release, hosts in by_release.items():
        support = m.os_support(release)
        if support and support.java == "mirror" and not java_package and any(
                h in {n.host for n in c.nuxeo_nodes} for h in hosts):
            yield from _java_archive(c, matrix, m, release, hosts, support.source)
        if support:
            continue
        known = matrix.os_releases.get(release)
        if known:
            why = (f"{known.label} ships OpenJDK {', '.join(known.openjdk)} and Nuxeo LTS {m.lts} needs JDK "
                   f"{m.java.versions.describe()} ({known.source}; {m.java.source})")
        else:
            why = f"'{release}' is not an OS release nxprovision knows ({', '.join(matrix.os_releases)})"
        names = ", ".join(hosts[:5]) + (f" and {len(hosts) - 5} more" if len(hosts) > 5 else "")
        yield from _outside(
            c, "os", f"hosts {names}", "nx_os_release",
            f"nx_os_release {release} is not an OS release of Nuxeo LTS {m.lts} in nxprovision's matrix "
            f"(supported: {listed}): {why}", f"run these hosts on {listed}")
