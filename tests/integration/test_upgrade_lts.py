"""LTS 2023 -> LTS 2025 on the shared compact cluster, Debian 12 hosts (issue 16): `upgrade --full-stop` validates
the inventory as it will be, takes a full backup, installs the JRE 21 archive from the mirror on the Nuxeo nodes
(Debian 12 ships no OpenJDK 21), stops every node, upgrades, starts them and reindexes the repository. Every
document written before is then readable and found by NXQL and full text through the load balancer, with its audit
entries; each node runs 2025 with the mirror's JRE and the 2025 keys only; a second deploy changes nothing.

Slow (make test-long): it boots a compact lab of its own on Debian 12 (the shared compact lab runs LTS 2025 on
Debian 13, as `init` writes it).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from cluster_checks import Deployed, create_document_with_blob, nxql, recap, wait_for
from conftest import Lab, bring_up, lab, lab_name, nxprovision, pin_lts2023, require_lab_machine
from test_deploy_compact import deploy

pytestmark = [pytest.mark.lab, pytest.mark.slow]

TARGET = "2025.9"
DEAD = re.compile(r"^(elasticsearch\.|audit\.elasticsearch\.)", re.M)


NAME = lab_name("nxlts")


@pytest.fixture(scope="module")
def compact_2023() -> Iterator[tuple[Lab, object]]:
    require_lab_machine()
    try:
        lab_ = bring_up(NAME, "--architecture", "compact", "--os", "debian12")
        pin_lts2023(lab_.inventory)
        yield lab_, nxprovision("deploy", "-i", str(lab_.inventory), "--progress", "plain", timeout=2400)
    finally:
        lab("down", "--name", NAME, check=False)


def test_lts_2023_to_2025_full_stop_keeps_every_document_searchable(compact_2023) -> None:
    lab_, first = compact_2023
    assert first.returncode == 0, "the compact LTS 2023 deploy failed"
    inv = lab_.inventory
    d = Deployed.load(inv)
    nx = d.client()
    tag = uuid.uuid4().hex[:8]
    written = {}
    for i in range(5):
        doc, content = create_document_with_blob(nx, f"lts jump {tag} {i}", f"written on 2023 {tag} {i}")
        written[doc.uid] = (f"lts jump {tag} {i}", content)
    wait_for(lambda: len(nxql(nx, f"dc:title LIKE 'lts jump {tag}%'")) == 5 or None, 90, "the documents indexed")
    audited = {uid: wait_for(lambda uid=uid: nx.documents.fetch_audit(uid)["entries"], 60, "audit entries")
               for uid in written}

    up = nxprovision("upgrade", "-i", str(inv), "--nuxeo-version", TARGET, "--full-stop", "--progress", "plain",
                     timeout=2400)
    out = up.stdout
    assert up.returncode == 0, out[-6000:] + up.stderr[-3000:]
    assert re.search(r"backup \S+ taken; `nxprovision restore --backup", out), out[-4000:]
    assert out.index("Take the pgBackRest backup") < out.index("Stop Nuxeo")  # the backup comes first
    report = re.search(r"reindex COMPLETED on (\S+): (\d+) of (\d+) documents indexed", out)
    assert report and int(report.group(2)) == int(report.group(3)) >= 5, out[-4000:]
    assert f"recorded nuxeo_version {TARGET}" in out

    after = Deployed.load(inv)
    nx = after.client()
    assert str(nx.client.server_info(force=True)["productVersion"]) == TARGET
    for uid, (title, content) in written.items():
        assert nx.documents.fetch_blob(uid=uid) == content
        assert [e.uid for e in nxql(nx, f"dc:title = '{title}'")] == [uid]
        entries = nx.documents.fetch_audit(uid)["entries"]
        assert {e["eventId"] for e in audited[uid]} <= {e["eventId"] for e in entries}, (uid, entries)
    assert len(nxql(nx, f"ecm:fulltext = '{tag}'")) == 5
    home = after.cluster.derived["java"]["front1"]["home"]
    assert home.startswith("/opt/nxprovision/java/jdk-21"), home
    for node in after.cluster.nuxeo_nodes:
        conf = lab_.ssh(node.host, "cat /etc/nuxeo/nuxeo.conf").stdout
        assert f"JAVA_HOME={home}\n" in conf and "nuxeo.opensearch1.client.server=" in conf, node.host
        assert not DEAD.search(conf), (node.host, DEAD.findall(conf))
        java = lab_.ssh(node.host, f"{home}/bin/java -version 2>&1")
        assert 'version "21.' in java.stdout, (node.host, java.stdout)

    second = deploy(inv, timeout=1500)
    assert second.returncode == 0, second.stdout[-4000:]
    assert {h: r[1] for h, r in recap(second.stdout).items() if r[1]} == {}, recap(second.stdout)
