"""`plan --graph` draws every host of the inventory into a well-formed SVG."""

from __future__ import annotations

import re
import xml.dom.minidom
from pathlib import Path

import pytest

from nxprovision.inventory import load_inventory
from nxprovision.model.cluster import build_cluster

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("sample", ["single", "compact", "distributed", "compact-mongodb"])
def test_graph_shows_every_host(sample: str, run_cli, tmp_path: Path) -> None:
    out = tmp_path / "c.svg"
    code, _o, err = run_cli("plan", "-i", str(ROOT / "inventories" / sample), "--graph", str(out))
    assert code == 0, err
    svg = out.read_text()
    xml.dom.minidom.parseString(svg)
    for host in build_cluster(load_inventory(ROOT / "inventories" / sample)).hosts:
        assert f">{host} " in svg


def test_graph_is_never_written_into_the_inventory_folder(make_inv, run_cli) -> None:
    inv = make_inv("compact")
    code, _o, err = run_cli("plan", "-i", str(inv), "--graph", str(inv / "cluster.svg"))
    assert code != 0 and "inside the inventory folder" in err and "write it outside" in err
    assert not (inv / "cluster.svg").exists()
    assert "Traceback" not in err


def test_role_reference_is_up_to_date() -> None:
    from nxprovision.roledocs import render

    assert (ROOT / "docs" / "roles.md").read_text() == render(), "run: .venv/bin/python -m nxprovision.roledocs"


def _lines(svg: str) -> set[tuple[str, str]]:
    return set(re.findall(r'data-from="([^"]+)" data-to="([^"]+)"', svg))


def test_graph_wires_nuxeo_to_what_its_configuration_names(run_cli, tmp_path: Path) -> None:
    out = tmp_path / "c.svg"
    code, _o, err = run_cli("plan", "-i", str(ROOT / "inventories" / "compact"), "--graph", str(out))
    assert code == 0, err
    lines = _lines(out.read_text())
    # plain streaming: Nuxeo's JDBC URL names the primary only, never the replica
    assert ("front1", "db1") in lines and ("worker1", "db1") in lines
    assert not {(a, b) for a, b in lines if b == "db2"}
    # users reach the load balancer, the load balancer the front nodes only
    assert ("users", "lb1") in lines and ("lb1", "front1") in lines and ("lb1", "worker1") not in lines
    assert ("front1", "search3") in lines and ("worker1", "kafka1") in lines


def test_graph_wires_every_patroni_member_and_shows_the_whole_public_url(run_cli, tmp_path: Path) -> None:
    out = tmp_path / "d.svg"
    code, _o, err = run_cli("plan", "-i", str(ROOT / "inventories" / "distributed"), "--graph", str(out))
    assert code == 0, err
    svg = out.read_text()
    assert {("front1", "db1"), ("front1", "db2"), ("front1", "db3")} <= _lines(svg)
    url = build_cluster(load_inventory(ROOT / "inventories" / "distributed")).settings["nx_public_url"]
    assert f">{url}<" in svg
