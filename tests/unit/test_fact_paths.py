"""Every path of the `nx` fact that a role or playbook reads is one the model computes (issue 17): a template that
reads `nx.db.prmary`, or a path the model stopped computing, fails here instead of on a host. docs/nx-fact.md, the
reference of those paths, is generated from the same walk and kept current."""

from __future__ import annotations

from pathlib import Path

import pytest

from nxprovision.factpaths import paths_in, paths_read, render, resolve, sample_facts

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def facts() -> dict:
    return sample_facts(ROOT)


def test_every_path_read_is_computed_by_the_model(facts: dict) -> None:
    read = paths_read(ROOT)
    assert len(read) > 150, "the walk finds too few paths: it is broken"
    missing = {".".join(p): sorted(files) for p, files in read.items()
               if not any(resolve(fact, p) for fact in facts.values())}
    assert missing == {}


def test_the_reference_is_current(facts: dict) -> None:
    assert (ROOT / "docs" / "nx-fact.md").read_text() == render(facts, ROOT), \
        "docs/nx-fact.md is stale: python -m nxprovision.factpaths"


def test_a_misspelt_path_is_caught(facts: dict, tmp_path: Path) -> None:
    tasks = tmp_path / "roles" / "x" / "templates"
    tasks.mkdir(parents=True)
    (tmp_path / "playbooks").mkdir()
    (tasks / "a.conf.j2").write_text("host={{ nx.db.prmary }} port={{ nx.nodes[inventory_hostname].port }}\n")
    read = paths_read(tmp_path)
    assert set(read) == {("db", "prmary"), ("nodes", "*", "port")}
    assert not any(resolve(f, ("db", "prmary")) for f in facts.values())
    assert any(resolve(f, ("nodes", "*", "port")) for f in facts.values())


@pytest.mark.parametrize(("text", "paths"), [
    ("{{ nx.nodes[inventory_hostname].address }}", {("nodes", "*", "address")}),
    ("{{ nx.hosts['lb1'].address }}", {("hosts", "lb1", "address")}),
    ("{% for h, v in nx.hosts.items() %}", {("hosts",)}),
    ("{{ hostvars[h].nx_secret }} {{ nx_public_url }} {{ x.nx.y }}", set()),
    ("{{ nx.monitoring.node_exporter_bind[nx.nodes[h].role] }}", {("monitoring", "node_exporter_bind", "*"),
                                                                 ("nodes", "*", "role")}),
])
def test_paths_in_text(text: str, paths: set) -> None:
    assert paths_in(text) == paths
