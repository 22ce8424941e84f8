"""Nuxeo LTS 2025 on Debian 13: the single architecture deployed from nothing, verified from outside (issue 16).

Through the load balancer, with the official Python client: documents are created, found by NXQL and their
audit entries read (the audit package's store). nuxeo.conf has LTS 2025's keys and none of the dead ones, Java 21
runs the stand-in, and a second deploy changes nothing.

Marked slow: it boots its own Debian 13 lab (the first run builds that base image) and deploys twice; the module
took 12.5 minutes on this 2-core machine, well over the 8 minutes a CI lab test may take.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from cluster_checks import Deployed, create_document_with_blob, node_of, nxql, recap, wait_for
from conftest import Lab, bring_up, lab, lab_name, require_lab_machine
from test_deploy_compact import deploy, service_starts

pytestmark = [pytest.mark.lab, pytest.mark.slow]

NAME = lab_name("nx2025")
HOST = "nuxeo1"
VERSION = "2025.9"
DEAD = re.compile(r"^(elasticsearch\.|audit\.elasticsearch\.)", re.M)


@pytest.fixture(scope="module")
def lts2025() -> Iterator[tuple[Lab, object]]:
    require_lab_machine()
    try:
        lab_ = bring_up(NAME, "--architecture", "single", "--os", "debian13")
        main_yml = lab_.inventory / "group_vars" / "all" / "main.yml"
        text = main_yml.read_text()
        assert "nuxeo_version: '2023.35'" in text
        # Debian 13 ships PostgreSQL 17 only; LTS 2025 accepts any version above 11
        text = text.replace("nuxeo_version: '2023.35'", f"nuxeo_version: '{VERSION}'")
        text = re.sub(r"^(postgresql_version|nx_os_release): .*\n", "", text, flags=re.M)
        main_yml.write_text(text + "postgresql_version: '17'\nnx_os_release: debian13\n")
        first = deploy(lab_.inventory, timeout=2400)
        yield lab_, first
    finally:
        lab("down", "--name", NAME, check=False)


def test_first_deploy_converges(lts2025) -> None:
    _lab, first = lts2025
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
    _ok, changed, unreachable, failed = recap(first.stdout)[HOST]
    assert changed > 0 and unreachable == 0 and failed == 0


def test_nuxeo_conf_has_the_2025_keys_and_none_of_the_dead_ones(lts2025) -> None:
    lab_, first = lts2025
    assert first.returncode == 0
    conf = lab_.ssh(HOST, "cat /etc/nuxeo/nuxeo.conf").stdout
    assert "nuxeo.opensearch1.client.server=" in conf
    assert "nuxeo.search.client.default.opensearch1.index.name=nuxeo" in conf
    assert "nuxeo.audit.backend.default.opensearch1.index.name=nuxeo-audit" in conf
    assert not DEAD.findall(conf), DEAD.findall(conf)
    templates = re.search(r"^nuxeo.templates=(.*)$", conf, re.M)
    assert templates and templates.group(1).split(",")[-2:] == ["opensearch1-search-client", "opensearch1-audit"]
    packages = lab_.ssh(HOST, "cat /var/lib/nuxeo/data/nxprovision-packages.txt").stdout
    assert f"nuxeo-search-client-opensearch1-{VERSION}.zip" in packages
    assert f"nuxeo-audit-opensearch1-{VERSION}.zip" in packages
    assert lab_.ssh(HOST, "test -s /var/lib/nuxeo/data/instance.clid").returncode == 0  # registered (offline)


def test_java_21_runs_the_2025_server(lts2025) -> None:
    lab_, first = lts2025
    assert first.returncode == 0
    java = lab_.ssh(HOST, "java -version 2>&1").stdout
    assert 'version "21.' in java, java
    assert "Tomcat Version 10.1." in lab_.ssh(HOST, "cat /opt/nuxeo/RELEASE-NOTES").stdout
    log = lab_.ssh(HOST, "cat /var/log/nuxeo/server.log").stdout
    assert "Nuxeo stand-in started (version 2025.9" in log and "needs Java" not in log
    assert "search client opensearch1 (index nuxeo), audit store opensearch1" in log


def test_documents_search_and_audit_through_the_lb(lts2025) -> None:
    lab_, first = lts2025
    assert first.returncode == 0
    d = Deployed.load(lab_.inventory)
    nx = d.client()
    assert node_of(nx) == HOST
    title = f"lts2025 {uuid.uuid4().hex[:8]}"
    doc, content = create_document_with_blob(nx, title, f"hello LTS 2025 {title}")
    assert nx.documents.fetch_blob(uid=doc.uid) == content
    found = wait_for(lambda: nxql(nx, f"dc:title = '{title}'"), 60, "the document in the search index")
    assert [e.uid for e in found] == [doc.uid]
    audit = wait_for(lambda: nx.documents.fetch_audit(doc.uid)["entries"], 60, "the document's audit entries")
    events = {e["eventId"] for e in audit}
    assert "documentCreated" in events and all(e["docUUID"] == doc.uid for e in audit), audit


def test_second_deploy_changes_and_restarts_nothing(lts2025) -> None:
    lab_, first = lts2025
    assert first.returncode == 0
    before = service_starts(lab_, [HOST])
    assert before, "no service start time recorded"
    second = deploy(lab_.inventory, timeout=900)
    assert second.returncode == 0, second.stdout[-4000:]
    assert recap(second.stdout)[HOST][1] == 0, recap(second.stdout)
    assert service_starts(lab_, [HOST]) == before
