"""The Nuxeo stand-in as LTS 2025: Tomcat 10.1 layout, Java 21, search and audit from packages, the dead
elasticsearch.* keys ignored, a cluster refused without an audit package, the commit limit when unregistered."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nxprovision_lab.standins.nuxeo import package_names, write_distribution, write_package
from nxprovision_lab.standins.nuxeo.runtime import conf
from nxprovision_lab.standins.nuxeo.runtime.node import Node

MONGO = "nuxeo.templates=mongodb\nnuxeo.mongodb.server=mongodb://db1:27017/nuxeo\n"
DEAD = "elasticsearch.addressList=http://old:9200\nelasticsearch.enabled=true\naudit.elasticsearch.enabled=true\n"


def jdk(tmp_path: Path, version: str) -> dict[str, str]:
    home = tmp_path / f"jdk-{version}"
    (home / "bin").mkdir(parents=True, exist_ok=True)
    java = home / "bin" / "java"
    java.write_text("#!/bin/sh\nexit 0\n")
    java.chmod(0o755)
    (home / "release").write_text(f'JAVA_VERSION="{version}"\n')
    return {"JAVA_HOME": str(home)}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    nx = tmp_path / "nuxeo-server-2025.9-tomcat"
    write_distribution(nx, "2025.9")
    return nx


def ctl(home: Path, conf_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env, "NUXEO_CONF": str(conf_path)}
    return subprocess.run([sys.executable, str(home / "bin" / "nuxeoctl"), *args], env=full, capture_output=True,
                          text=True, timeout=60)


def install(home: Path, tmp_path: Path, conf_path: Path, *names: str) -> None:
    zips = []
    for name in names:
        z = tmp_path / f"{name}.zip"
        write_package(z, name, "2025.9")
        zips.append(str(z))
    out = ctl(home, conf_path, {}, "mp-install", "--accept=true", *zips)
    assert out.returncode == 0, out.stdout + out.stderr


def test_2025_distribution_has_tomcat_10_1_and_no_elasticsearch_defaults(home: Path) -> None:
    assert "Apache Tomcat Version 10.1." in (home / "RELEASE-NOTES").read_text()
    base = (home / "templates/common-base/nuxeo.defaults").read_text()
    assert "elasticsearch." not in base
    assert "nuxeo-search-client-opensearch1" in package_names("2025.8")
    assert "nuxeo-audit-opensearch1" in package_names("2025.8")
    assert "nuxeo-search-client-opensearch1" not in package_names("2023.35")
    with pytest.raises(ValueError):
        write_package(home.parent / "x.zip", "nuxeo-audit-opensearch1", "2023.35")


def test_2025_needs_java_21(home: Path, tmp_path: Path) -> None:
    p = home / "nuxeo.conf"
    p.write_text(MONGO)
    refused = conf.refusals(conf.load(home, p, jdk(tmp_path, "17.0.13")))
    assert any("needs Java 21" in r and "17.0.13" in r for r in refused), refused
    assert not any("Java" in r for r in conf.refusals(conf.load(home, p, jdk(tmp_path, "21.0.5"))))
    assert any("no java" in r for r in conf.refusals(conf.load(home, p, {"JAVA_HOME": str(tmp_path / "none")})))


def test_2025_reads_the_package_keys_and_ignores_the_dead_ones(home: Path, tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    p = tmp_path / "nuxeo.conf"
    p.write_text(MONGO + DEAD + "nuxeo.opensearch1.client.server=http://os1:9200\n"
                 "nuxeo.search.client.default.opensearch1.index.name=idx\n"
                 "nuxeo.audit.backend.default.opensearch1.index.name=idx-audit\n")
    install(home, tmp_path, p, "nuxeo-search-client-opensearch1", "nuxeo-audit-opensearch1")
    assert "nuxeo.templates=mongodb,opensearch1-search-client,opensearch1-audit" in p.read_text()
    cfg = conf.load(home, p, jdk(tmp_path, "21.0.5"))
    assert conf.refusals(cfg) == []
    assert conf.dead_keys(cfg) == ["audit.elasticsearch.enabled", "elasticsearch.addressList",
                                   "elasticsearch.enabled"]
    with caplog.at_level(logging.WARNING):
        node = Node(cfg)
    assert node.search is not None and node.search.addresses == ["http://os1:9200"]
    assert (node.index_name, node.audit_index, node.audit_enabled) == ("idx", "idx-audit", True)
    assert "elasticsearch.addressList has no effect since Nuxeo LTS 2025" in caplog.text


def test_2025_without_packages_indexes_nothing_even_with_the_old_keys(home: Path, tmp_path: Path) -> None:
    p = home / "nuxeo.conf"
    p.write_text(MONGO + DEAD)
    cfg = conf.load(home, p, jdk(tmp_path, "21.0.5"))
    assert conf.refusals(cfg) == []  # 2023 refused an empty addressList; 2025 runs its repository search
    node = Node(cfg)
    assert node.search is None and not node.search_enabled and not node.audit_enabled


def test_2025_cluster_node_needs_an_audit_package(home: Path, tmp_path: Path) -> None:
    p = tmp_path / "nuxeo.conf"
    p.write_text(MONGO + "nuxeo.cluster.enabled=true\nnuxeo.binarystores.root=/shared\n"
                 "nuxeo.opensearch1.client.server=http://os1:9200\n")
    install(home, tmp_path, p, "nuxeo-search-client-opensearch1")
    refused = conf.refusals(conf.load(home, p, jdk(tmp_path, "21.0.5")))
    assert any("without an audit backend package" in r for r in refused), refused
    install(home, tmp_path, p, "nuxeo-audit-opensearch1")
    assert conf.refusals(conf.load(home, p, jdk(tmp_path, "21.0.5"))) == []


def test_unregistered_2025_stops_at_the_commit_limit_and_a_clid_keeps_it(home: Path, tmp_path: Path) -> None:
    p = home / "nuxeo.conf"
    data = tmp_path / "data"
    p.write_text(MONGO + f"nuxeo.data.dir={data}\nnuxeo.standin.unregistered.commit.limit=3\n")
    node = Node(conf.load(home, p, jdk(tmp_path, "21.0.5")))
    stopped: list[int] = []
    node.on_commit_limit = lambda: stopped.append(node.commits)
    for _ in range(2):
        node.count_commit()
    assert stopped == []
    node.count_commit()
    assert stopped == [3]
    data.mkdir()
    (data / "instance.clid").write_text("clid\n")
    node.count_commit()
    assert stopped == [3]


def test_2023_keeps_its_keys(tmp_path: Path) -> None:
    nx = tmp_path / "nx23"
    write_distribution(nx, "2023.35")
    assert not (nx / "RELEASE-NOTES").exists()
    p = nx / "nuxeo.conf"
    p.write_text(MONGO + "elasticsearch.addressList=http://es1:9200\naudit.elasticsearch.enabled=true\n")
    node = Node(conf.load(nx, p, {}))
    assert node.search is not None and node.audit_enabled and node.commit_limit == 100000
    node.commits = 10**6
    node.count_commit()  # no limit before 2025


def test_java_home_in_nuxeo_conf_wins_over_the_environment(home: Path, tmp_path: Path) -> None:
    """nuxeoctl takes JAVA_HOME from nuxeo.conf first (a JRE unpacked from the mirror on Debian 12)."""
    p = home / "nuxeo.conf"
    jre = jdk(tmp_path, "21.0.5")["JAVA_HOME"]
    p.write_text(MONGO + f"JAVA_HOME={jre}\n")
    assert not any("Java" in r for r in conf.refusals(conf.load(home, p, jdk(tmp_path, "17.0.13"))))
    p.write_text(MONGO + f"JAVA_HOME={tmp_path / 'gone'}\n")
    assert any("no java" in r for r in conf.refusals(conf.load(home, p, jdk(tmp_path, "21.0.5"))))
