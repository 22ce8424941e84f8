"""The model's Nuxeo LTS 2025 nodes: search and audit packages, their nuxeo.conf keys, the MongoDB template rule."""

from __future__ import annotations

from typing import Any

import pytest

from nxprovision.inventory import load_inventory
from nxprovision.model.cluster import build_cluster
from tests.unit.conftest import LTS2023

DEAD = ("elasticsearch.", "audit.elasticsearch.")


def facts(make_inv, database: str = "postgresql", **settings: Any) -> dict[str, Any]:
    return build_cluster(load_inventory(make_inv("compact", database=database, set=settings))).to_facts()


def conf_of(nx: dict[str, Any]) -> dict[str, str]:
    node = next(iter(nx["nodes"].values()))
    return {i["key"]: i["value"] for i in node["conf"]}


def test_2025_installs_the_chosen_packages_and_writes_their_keys(make_inv) -> None:
    nx = facts(make_inv, nuxeo_version="2025.9", nx_os_release="debian13")
    n = nx["nuxeo"]
    assert n["java"] == "21"
    assert n["packages"][-2:] == ["nuxeo-search-client-opensearch1", "nuxeo-audit-opensearch1"]
    assert set(n["package_urls"]) == set(n["packages"]) == set(n["package_checksums"])
    assert n["templates"][-2:] == ["opensearch1-search-client", "opensearch1-audit"]
    conf = conf_of(nx)
    assert not [k for k in conf if k.startswith(DEAD)], conf
    assert conf["nuxeo.opensearch1.client.server"].startswith("http")
    assert conf["nuxeo.search.client.default.opensearch1.index.name"] == "nuxeo"
    assert conf["nuxeo.audit.backend.default.opensearch1.index.name"] == "nuxeo-audit"


@pytest.mark.parametrize(("version", "client"), [("2.19.1", "opensearch2"), ("1.3.20", "opensearch1")])
def test_2025_auto_client_follows_the_search_version(make_inv, version: str, client: str) -> None:
    nx = facts(make_inv, nuxeo_version="2025.9", search_version=version)
    assert nx["nuxeo"]["search_packages"]["client"] == client
    assert f"nuxeo.{client}.client.server" in conf_of(nx)


def test_2025_sql_audit_store(make_inv) -> None:
    nx = facts(make_inv, nuxeo_version="2025.9", nuxeo_audit_backend="sql")
    assert nx["nuxeo"]["packages"][-2:] == ["nuxeo-search-client-opensearch1", "nuxeo-audit-sql"]
    assert "sql-audit" in nx["nuxeo"]["templates"]
    assert not [k for k in conf_of(nx) if k.startswith("nuxeo.audit.backend.")]


def test_2025_mongodb_template_stands_alone(make_inv) -> None:
    nx = facts(make_inv, "mongodb", nuxeo_version="2025.9")
    assert nx["nuxeo"]["templates"][0] == "mongodb" and "default" not in nx["nuxeo"]["templates"]
    nx23 = facts(make_inv, "mongodb", **LTS2023)
    assert nx23["nuxeo"]["templates"][:2] == ["default", "mongodb"]


def test_2023_is_unchanged(make_inv) -> None:
    nx = facts(make_inv, **LTS2023)
    assert nx["nuxeo"]["search_packages"] == {}
    assert nx["nuxeo"]["packages"] == ["nuxeo-web-ui", "amazon-s3-online-storage"]
    conf = conf_of(nx)
    assert conf["audit.elasticsearch.enabled"] == "true" and "elasticsearch.addressList" in conf
    assert not [k for k in conf if k.startswith("nuxeo.opensearch")]


def test_mongodb_every_host_is_a_member_whatever_the_lab_says(make_inv) -> None:
    """Each MongoDB host runs mongod in the replica set and Nuxeo lists them all (the lab's list of the products
    it serves changes nothing)."""
    for extra in ({}, {"nx_lab": {"standins": ["mongodb", "opensearch", "nuxeo"]}}):
        nx = facts(make_inv, "mongodb", **extra)
        db = nx["db"]
        assert len(db["hosts"]) == 3 and db["servers"] == db["hosts"] and len(db["members"]) == 3
        assert db["replica_set"] == "rs0" and db["replicas"] == db["hosts"][1:]
        assert not any(k.startswith("standin") for k in db)
        server = conf_of(nx)["nuxeo.mongodb.server"]
        assert ",".join(db["members"]) in server, server


@pytest.mark.parametrize(("version", "path"), [("2025.9", "/management/search/reindex"),
                                               ("2023.35", "/management/elasticsearch/reindex")])
def test_the_reindex_endpoint_follows_the_lts(make_inv, version: str, path: str) -> None:
    extra = {"nx_os_release": "debian13"} if version.startswith("2025") else {}
    assert facts(make_inv, nuxeo_version=version, **extra)["nuxeo"]["reindex_path"] == path
