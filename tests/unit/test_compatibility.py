"""The compatibility matrix: its data (sources, version patterns), the page generated from it, and validate's
refusals, each quoting the documentation's version list and page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from nxprovision.errors import NxError
from nxprovision.model import compat
from nxprovision.model.versions import MATRIX, NuxeoVersion, java_for, supports_kraft
from tests.unit.conftest import LTS2023

ROOT = Path(__file__).resolve().parents[2]
M2025 = "https://doc.nuxeo.com/nxdoc/compatibility-matrix/"
M2023 = "https://doc.nuxeo.com/nxdoc/2023/compatibility-matrix/"
AUDIT2025 = "https://doc.nuxeo.com/nxdoc/how-to-upgrade-audit-service/"


# --------------------------------------------------------------------------- the data


def _raw() -> dict[str, Any]:
    return yaml.safe_load(compat.DATA_FILE.read_text())


def _entries(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every mapping that states something (versions, a package, an OS release) with its path."""
    if isinstance(node, dict):
        if any(k in node for k in ("versions", "package", "release", "openjdk", "opensearch", "backends")):
            yield path, node
        for k, v in node.items():
            yield from _entries(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _entries(v, f"{path}[{i}]")


def test_every_entry_carries_its_source_page() -> None:
    entries = list(_entries(_raw()))
    assert len(entries) > 20
    for path, entry in entries:
        assert str(entry.get("source", "")).startswith("https://"), f"{path} has no source page"
    for lts, d in _raw()["lts"].items():
        for part in ("java", "app_server", "postgresql", "mongodb", "audit", "kafka"):
            assert str(d[part]["source"]).startswith("https://doc.nuxeo.com/"), (lts, part)


def test_every_version_parses() -> None:
    for path, entry in _entries(_raw()):
        for key in ("versions", "opensearch", "elasticsearch"):
            for pattern in entry.get(key) or []:
                assert isinstance(pattern, str), f"{path}.{key}: quote {pattern!r}"
                assert compat._PATTERN_RE.match(pattern), f"{path}.{key}: {pattern!r}"
    m = compat.load()
    for lts in m.lts.values():
        assert lts.kafka.kraft_from_hotfix is None or lts.kafka.kraft_min_kafka
        for o in lts.os:
            assert o.release in m.os_releases


def test_the_loader_refuses_malformed_data() -> None:
    raw = _raw()
    del raw["lts"][2025]["java"]["source"]
    with pytest.raises(compat.CompatDataError, match="source"):
        compat.parse(raw)
    raw = _raw()
    raw["lts"][2023]["postgresql"]["versions"] = [13]
    with pytest.raises(compat.CompatDataError, match="quoted"):
        compat.parse(raw)
    raw = _raw()
    raw["lts"][2025]["os"][0]["release"] = "debian99"
    with pytest.raises(compat.CompatDataError, match="debian99"):
        compat.parse(raw)


@pytest.mark.parametrize(("patterns", "version", "expected"), [
    (("13",), "13", True), (("13",), "13.4", True), (("13",), "130", False),
    (("7.17",), "7.17.9", True), (("7.17",), "7.1", False),
    ((">11",), "12", True), ((">11",), "16.4", True), ((">11",), "11", False), ((">11",), "11.9", False),
    ((">4.2",), "4.4.1", True), ((">4.2",), "8.0", True), ((">4.2",), "4.2.9", False), ((">4.2",), "4", False),
    ((">11",), "latest", False),
])
def test_version_patterns(patterns: tuple[str, ...], version: str, expected: bool) -> None:
    assert compat.Versions(patterns).matches(version) is expected


def test_the_2025_facts_from_the_documentation() -> None:
    m = compat.load().lts[2025]
    assert m.deployable
    assert m.java.versions.patterns == ("21",) and m.app_server.versions.patterns == ("10.1",)
    assert m.postgresql.recommended == "16" and m.postgresql.versions.matches("17")
    assert m.mongodb.recommended == "8" and not m.mongodb.versions.matches("4.2")
    assert m.kafka.kraft_from_hotfix == 5 and m.audit.required_in_cluster
    os1, os2, es9 = (m.search_client(k) for k in ("opensearch1", "opensearch2", "elasticsearch9"))
    assert os1 and os2 and es9
    assert os1.package == "nuxeo-search-client-opensearch1" and os1.audit_package == "nuxeo-audit-opensearch1"
    assert os1.covers("opensearch", "1.3.20") and os1.covers("elasticsearch", "8.17.0")
    assert not os1.covers("opensearch", "2.19.1")
    assert all(os2.covers("opensearch", v) for v in ("1.3.20", "2.19.1", "3.0.0"))
    assert os2.covers("elasticsearch", "7.17.9") and not os2.covers("elasticsearch", "8.7.0")
    assert es9.covers("elasticsearch", "9.0.1") and not es9.covers("elasticsearch", "8.7.0")
    assert not es9.covers("opensearch", "1.3.20")
    assert {o.release for o in m.os} == {"debian12", "debian13"}
    assert [o.release for o in compat.load().lts[2023].os] == ["debian12"]


def test_lookups_read_the_data() -> None:
    assert set(MATRIX) == {2021, 2023, 2025}  # the LTS lines the roles deploy
    assert java_for(NuxeoVersion(2025, 0)) == "21" and java_for(NuxeoVersion(2023, 35)) == "17"
    assert not supports_kraft(NuxeoVersion(2025, 4)) and supports_kraft(NuxeoVersion(2025, 5))
    assert supports_kraft(NuxeoVersion(2023, 33)) and not supports_kraft(NuxeoVersion(2021, 40))


def test_upgrading_to_2025_takes_a_full_stop() -> None:
    from nxprovision.daytwo import check_upgrade

    with pytest.raises(NxError, match="crosses LTS majors"):
        check_upgrade("2023.35", "2025.5")
    assert check_upgrade("2023.35", "2025.5", full_stop=True) == "full-stop"
    assert check_upgrade("2025.8", "2025.9") == "rolling"  # hotfixes within LTS 2025


def test_the_committed_page_is_up_to_date() -> None:
    from nxprovision.compatdocs import render

    page = render()
    assert (ROOT / "docs" / "compatibility.md").read_text() == page, "run: .venv/bin/python -m nxprovision.compatdocs"
    assert M2025 in page and M2023 in page and "nuxeo-search-client-opensearch2" in page


# --------------------------------------------------------------------------- validate


def _validate(make_inv, run_cli, **kwargs: Any) -> tuple[int, dict[str, list[str]]]:
    code, out, err = run_cli("validate", "-i", str(make_inv(**kwargs)))
    assert "Traceback" not in out + err
    lines: dict[str, list[str]] = {}
    for ln in out.splitlines():
        if ln.startswith(("ERROR", "WARNING")):
            lines.setdefault(ln.rsplit("[", 1)[1].split("]")[0], []).append(ln)
    return code, lines


def _error(lines: dict[str, list[str]], rule: str) -> str:
    found = [ln for ln in lines.get(rule, []) if ln.startswith("ERROR")]
    assert found, f"no ERROR [{rule}] in {lines}"
    assert "Fix: " in found[0]
    return found[0]


def test_2025_on_debian_13_with_coherent_settings_is_deployable(make_inv, run_cli) -> None:
    code, lines = _validate(make_inv, run_cli, set={"nuxeo_version": "2025.7", "nx_os_release": "debian13",
                                                    "postgresql_version": "17"})
    assert code == 0, lines
    assert not [ln for ls in lines.values() for ln in ls if ln.startswith("ERROR")]


def test_a_postgresql_version_the_hosts_release_does_not_ship_is_refused(make_inv, run_cli) -> None:
    """Debian 13 ships PostgreSQL 17 only: 15 (the Debian 12 default) would fail at the package task mid-run."""
    code, lines = _validate(make_inv, run_cli, set={"nuxeo_version": "2025.7", "nx_os_release": "debian13",
                                                    "postgresql_version": "15"})
    assert code == 2
    line = _error(lines, "versions.postgresql_package")
    assert "postgresql_version 15 is not in Debian 13 (trixie)'s archive, which ships PostgreSQL 17" in line, line
    assert "set postgresql_version: '17'" in line and "packages.debian.org/trixie/postgresql" in line, line
    code, lines = _validate(make_inv, run_cli, set={"nuxeo_version": "2023.35", "nx_os_release": "debian12",
                                                    "postgresql_version": "15"})
    assert "versions.postgresql_package" not in lines, lines


def test_database_hosts_on_two_releases_without_a_common_major_are_told_how_to_move(make_inv, run_cli) -> None:
    """A Debian 13 replica added to a Debian 12 database (PostgreSQL 15): no postgresql_version fits both releases,
    so the fix is not "set 17" (which Debian 12 lacks) but the move of the database as a whole."""
    lay = {"loadbalancers": ["lb1"], "nuxeo_front": ["front1", "front2"], "nuxeo_worker": ["worker1"],
           "postgresql": ["db1", "db2", "db3"], "opensearch": ["search1", "search2", "search3"],
           "kafka": ["kafka1"], "s3": ["s3-1"]}
    code, lines = _validate(make_inv, run_cli, set={"nuxeo_version": "2023.35", "nx_os_release": "debian12",
                                                    "postgresql_version": "15"},
                            layout=lay, hostvars={"db3": {"nx_os_release": "debian13"}})
    assert code == 2
    line = _error(lines, "versions.postgresql_package")
    assert "hosts db3:" in line and "ship no major in common" in line and "db1, db2: debian12" in line, line
    assert "Moving a cluster to Debian 13" in line and "set postgresql_version" not in line, line


def test_2025_nodes_on_debian_12_need_a_jdk_21_package(make_inv, run_cli) -> None:
    code, lines = _validate(make_inv, run_cli, set={"nuxeo_version": "2025.7", "nx_os_release": "debian12",
                                                    "postgresql_version": "15"})
    assert code == 2
    line = _error(lines, "versions.java_os")
    assert "Debian 12 (bookworm) has no OpenJDK 21 package" in line and M2025 in line
    assert "run the Nuxeo nodes on debian13" in line and "common_java_package" in line
    assert "set java_download_base_url" in line and "java_version" in line
    code, lines = _validate(make_inv, run_cli, set={"nuxeo_version": "2025.7", "nx_os_release": "debian12",
                                                    "postgresql_version": "15",
                                                    "common_java_package": "temurin-21-jre"})
    assert code == 0, lines


JRE = {"nuxeo_version": "2025.7", "nx_os_release": "debian12", "postgresql_version": "15",
       "java_download_base_url": "https://mirror.example.com/temurin", "java_version": "21.0.5+11"}


def test_2025_nodes_on_debian_12_take_a_jre_archive_from_the_mirror(make_inv, run_cli) -> None:
    code, lines = _validate(make_inv, run_cli, set=JRE)
    assert code == 0, lines
    code, lines = _validate(make_inv, run_cli, set={**JRE, "java_version": "17.0.13+11"})
    assert code == 2
    line = _error(lines, "versions.java_os")
    assert "java_version 17.0.13+11 is Java 17; Nuxeo LTS 2025 needs JDK 21" in line, line


def test_the_jre_archive_is_where_the_model_says_and_nuxeo_conf_names_it(make_inv) -> None:
    from nxprovision.inventory import load_inventory
    from nxprovision.model.cluster import build_cluster

    c = build_cluster(load_inventory(make_inv("compact", set=JRE)))
    front = c.derived["java"]["front1"]
    assert front["package"] == "" and front["home"] == "/opt/nxprovision/java/jdk-21.0.5+11-jre"
    assert front["archive"]["url"] == ("https://mirror.example.com/temurin/jdk-21.0.5+11/"
                                       "OpenJDK21U-jre_x64_linux_hotspot_21.0.5_11.tar.gz")
    assert front["archive"]["checksum"] == "sha512:" + front["archive"]["url"] + ".sha512"
    conf = {i.key: i.value for i in c.node("front1").conf}
    assert conf["JAVA_HOME"] == front["home"]
    # Kafka runs on the release's own OpenJDK; a 2023 node on Debian 12 keeps the package and no JAVA_HOME
    assert c.derived["java"]["kafka1"] == {"major": "17", "package": "openjdk-17-jre-headless", "archive": {},
                                           "home": ""}
    # one host running Nuxeo and a broker (single architecture): the JRE for Nuxeo, the release's OpenJDK for Kafka
    single = build_cluster(load_inventory(make_inv("single", set=JRE)))
    host = single.nuxeo_nodes[0].host
    assert single.derived["java"][host]["package"] == "openjdk-17-jre-headless"
    assert single.derived["java"][host]["home"].endswith("jdk-21.0.5+11-jre")
    old = build_cluster(load_inventory(make_inv("compact", set=LTS2023)))
    assert old.derived["java"]["front1"]["package"] == "openjdk-17-jre-headless"
    assert "JAVA_HOME" not in {i.key for i in old.node("front1").conf}


def test_2025_with_java_17(make_inv, run_cli) -> None:
    code, lines = _validate(make_inv, run_cli, set={"nuxeo_version": "2025.7", "nuxeo_java_version": 17})
    assert code == 2
    line = _error(lines, "versions.java")
    assert "Java 17 does not run Nuxeo LTS 2025, which needs JDK 21" in line and M2025 in line
    assert "versions.nuxeo" not in lines  # LTS 2025 itself is deployable


def test_2025_with_a_java_17_package(make_inv, run_cli) -> None:
    code, lines = _validate(make_inv, run_cli, set={"nuxeo_version": "2025.7",
                                                    "common_java_package": "openjdk-17-jre-headless"})
    assert code == 2
    assert "needs JDK 21" in _error(lines, "versions.java")


def test_2025_opensearch1_client_against_opensearch_2(make_inv, run_cli) -> None:
    code, lines = _validate(make_inv, run_cli, set={
        "nuxeo_version": "2025.7", "nuxeo_search_client": "opensearch1", "search_version": "2.19.1"})
    assert code == 2
    line = _error(lines, "versions.search_client")
    assert "nuxeo-search-client-opensearch1 does not support OpenSearch 2.19.1" in line
    assert "it supports OpenSearch 1, Elasticsearch 7, 8" in line and M2025 in line
    assert "opensearch2: OpenSearch 1, 2, 3, Elasticsearch 7" in line
    assert "nuxeo_search_client: opensearch2" in line.split("Fix: ", 1)[1]


def test_2025_auto_client_follows_the_search_cluster(make_inv, run_cli) -> None:
    for version in ("1.3.20", "2.19.1", "3.0.0"):
        _code, lines = _validate(make_inv, run_cli, set={"nuxeo_version": "2025.7", "search_version": version})
        assert not {"versions.search_client", "versions.opensearch", "versions.audit_backend"} & set(lines), version
    _code, lines = _validate(make_inv, run_cli, set={"nuxeo_version": "2025.7", "search_distribution": "elasticsearch",
                                                     "search_version": "9.0.1"})
    assert not {"versions.search_client", "versions.elasticsearch"} & set(lines)
    _code, lines = _validate(make_inv, run_cli, set={"nuxeo_version": "2025.7", "search_version": "4.0.0"})
    line = _error(lines, "versions.opensearch")
    assert "no search client package of Nuxeo LTS 2025 supports OpenSearch 4.0.0" in line


def test_2025_cluster_without_an_audit_backend(make_inv, run_cli) -> None:
    code, lines = _validate(make_inv, run_cli, set={"nuxeo_version": "2025.7", "nuxeo_audit_backend": "memory"})
    assert code == 2
    line = _error(lines, "versions.audit_backend")
    assert "in memory" in line and "testing purpose only" in line and AUDIT2025 in line
    assert "nuxeo-audit-opensearch1" in line and "nuxeo-audit-mongodb" in line and "nuxeo-audit-sql" in line


def test_2025_single_node_in_memory_audit_is_a_warning(make_inv, run_cli) -> None:
    _code, lines = _validate(make_inv, run_cli, arch="single",
                             set={"nuxeo_version": "2025.7", "nuxeo_audit_backend": "memory"})
    assert [ln for ln in lines["versions.audit_backend"] if ln.startswith("WARNING")]
    assert not [ln for ln in lines["versions.audit_backend"] if ln.startswith("ERROR")]


def test_2025_audit_store_must_match_the_database(make_inv, run_cli) -> None:
    _code, lines = _validate(make_inv, run_cli, set={"nuxeo_version": "2025.7", "nuxeo_audit_backend": "mongodb"})
    assert "nuxeo-audit-mongodb stores the audit log in a mongodb database" in _error(lines, "versions.audit_backend")
    _code, lines = _validate(make_inv, run_cli, set={"nuxeo_version": "2025.7", "nuxeo_audit_backend": "sql"})
    assert "versions.audit_backend" not in lines


def test_kraft_before_2025_5(make_inv, run_cli) -> None:
    code, lines = _validate(make_inv, run_cli, set={"nuxeo_version": "2025.3", "kafka_mode": "kraft"})
    assert code == 2
    line = _error(lines, "versions.kraft")
    assert "needs Nuxeo LTS 2025.5 or later; this cluster runs 2025.3" in line and M2025 in line
    _code, lines = _validate(make_inv, run_cli, set={"nuxeo_version": "2025.5", "kafka_mode": "kraft"})
    assert "versions.kraft" not in lines


def test_2023_on_an_os_release_the_matrix_does_not_list(make_inv, run_cli) -> None:
    code, lines = _validate(make_inv, run_cli, set={**LTS2023, "nx_os_release": "debian13"})
    assert code == 2
    line = _error(lines, "versions.os")
    assert "debian13 is not an OS release of Nuxeo LTS 2023" in line and "(supported: debian12)" in line
    assert "OpenJDK 21, 25" in line and "needs JDK 17" in line and M2023 in line


def test_one_host_on_another_release_is_named(make_inv, run_cli) -> None:
    _code, lines = _validate(make_inv, run_cli, set=LTS2023, hostvars={"front2": {"nx_os_release": "debian13"}})
    line = _error(lines, "versions.os")
    assert "hosts front2:" in line and "front1" not in line


def test_2025_on_debian_13_and_12(make_inv, run_cli) -> None:
    for release in ("debian12", "debian13"):
        _code, lines = _validate(make_inv, run_cli, set={"nuxeo_version": "2025.7", "nx_os_release": release})
        assert "versions.os" not in lines


def test_the_override_mechanism_applies(make_inv, run_cli) -> None:
    code, lines = _validate(make_inv, run_cli, set={
        **LTS2023, "nx_os_release": "debian13",
        "nx_compat_overrides": {"os": "JDK 17 from our own repository", "postgresql": "Debian 12 ships 15",
                                "postgresql_package": "PostgreSQL 15 from our own apt repository"}})
    assert code == 0, lines
    assert any("overridden: JDK 17 from our own repository" in ln for ln in lines["versions.os"])
    assert lines["versions.postgresql_package"][0].startswith("WARNING"), lines
    code, lines = _validate(make_inv, run_cli, set={
        "nuxeo_version": "2025.7", "nuxeo_search_client": "opensearch1", "search_version": "2.19.1",
        "nx_compat_overrides": {"search_client": "tested by us"}})
    assert not [ln for ln in lines["versions.search_client"] if ln.startswith("ERROR")]


def test_2025_settings_have_no_effect_before_2025(make_inv, run_cli) -> None:
    code, lines = _validate(make_inv, run_cli, set={**LTS2023, "nuxeo_search_client": "opensearch2"})
    assert code == 0
    assert lines["versions.search_packages"][0].startswith("WARNING")


def test_unknown_package_keys(make_inv, run_cli) -> None:
    _code, lines = _validate(make_inv, run_cli, set={"nuxeo_version": "2025.7", "nuxeo_search_client": "solr",
                                                     "nuxeo_audit_backend": "cassandra"})
    assert "use auto or one of opensearch1, opensearch2, elasticsearch9" in _error(lines, "versions.search_client")
    assert "'cassandra' is not an audit store" in _error(lines, "versions.audit_backend")


def test_the_package_settings_are_read_as_the_nuxeo_nodes_see_them(make_inv, run_cli) -> None:
    inv = make_inv(set={"nuxeo_version": "2025.7"})
    (inv / "group_vars" / "nuxeo.yml").write_text("nuxeo_audit_backend: memory\n")
    code, out, _err = run_cli("validate", "-i", str(inv))
    assert code == 2
    assert any(ln.startswith("ERROR") and "[versions.audit_backend]" in ln for ln in out.splitlines()), out
