"""The compact architecture on MongoDB deployed from nothing into the lab, verified from outside.

1 LB; 2 Nuxeo front nodes and 1 worker; 3 search; 3 MongoDB hosts; 1 Kafka; 1 S3 host (issue 5). The lab's
MongoDB is a stand-in (SecantusDB) that is a single node: it runs on mongo1 only, as the one member and
primary of the replica set, with access control (SCRAM) on; mongo2 and mongo3 run no MongoDB.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_checks import Deployed, create_document_with_blob, md5_hex, nxql, recap, runningstatus, s3_keys, wait_for
from conftest import Lab, bring_up, lab, lab_name, require_lab_machine

pytestmark = [pytest.mark.lab, pytest.mark.slow]

NXP = [sys.executable, "-m", "nxprovision.cli"]
NAME = lab_name("nxmongo")
SERVICES = {
    "mongo1": ["mongod"],
    "front1": ["nuxeo"],
    "front2": ["nuxeo"],
    "worker1": ["nuxeo"],
    "lb1": ["haproxy"],
    "search1": ["opensearch"],
    "kafka1": ["kafka"],
    "s3-1": ["seaweedfs"],
}

# Runs on mongo1 with the system python3 and Debian's pymongo (installed by the role).
PROBE = r"""
import json, os, sys
import pymongo
from pymongo.errors import OperationFailure
uid = sys.argv[1]
anon = pymongo.MongoClient("127.0.0.1", 27017, directConnection=True, serverSelectionTimeoutMS=5000)
try:
    anon.nuxeo.default.count_documents({})
    anonymous = "allowed"
except OperationFailure as e:
    anonymous = "refused %s" % e.code
c = pymongo.MongoClient("127.0.0.1", 27017, username="nuxeo", password=os.environ["NXPW"], authSource="nuxeo",
                        directConnection=True, serverSelectionTimeoutMS=5000)
doc = c.nuxeo.default.find_one({"ecm:id": uid}) or {}
hello = c.admin.command("isMaster")
print(json.dumps({"anonymous": anonymous, "title": (doc.get("props") or {}).get("dc:title"),
                  "count": c.nuxeo.default.count_documents({}), "setName": hello.get("setName"),
                  "hosts": hello.get("hosts")}))
"""


def deploy(inventory: Path, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NXP, "deploy", "-i", str(inventory), "--progress", "plain"], capture_output=True, text=True, timeout=timeout
    )


def service_starts(lab_: Lab) -> dict[tuple[str, str], str]:
    out = {}
    for host, services in SERVICES.items():
        for svc in services:
            r = lab_.ssh(host, f"systemctl show -p ActiveEnterTimestampMonotonic --value {svc}")
            out[(host, svc)] = r.stdout.strip()
    return out


@pytest.fixture(scope="module")
def compact_mongodb() -> Iterator[tuple[Lab, subprocess.CompletedProcess[str]]]:
    require_lab_machine()
    try:
        lab_ = bring_up(NAME, "--architecture", "compact", "--database", "mongodb")
        yield lab_, deploy(lab_.inventory)
    finally:
        lab("down", "--name", NAME, check=False)


def test_first_deploy_converges(compact_mongodb) -> None:
    _lab, first = compact_mongodb
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
    hosts = recap(first.stdout)
    expected = {"lb1", "front1", "front2", "worker1", "mongo1", "mongo2", "mongo3", "search1", "kafka1", "s3-1"}
    assert expected <= set(hosts), hosts
    assert all(r[2] == 0 and r[3] == 0 for r in hosts.values()), hosts
    # the stand-in's limit is said plainly, once, before the run
    notes = [ln for ln in first.stdout.splitlines() if "stand-in: single node, no replication" in ln]
    assert len(notes) == 1 and "mongo1 only" in notes[0], notes


def test_only_the_first_host_runs_the_single_node_stand_in(compact_mongodb) -> None:
    lab_, _ = compact_mongodb
    assert lab_.ssh("mongo1", "systemctl is-active mongod").stdout.strip() == "active"
    for other in ("mongo2", "mongo3"):
        assert lab_.ssh(other, "systemctl is-active mongod").stdout.strip() != "active"
    conf = lab_.ssh("front1", "grep '^nuxeo.mongodb.server=' /etc/nuxeo/nuxeo.conf").stdout
    assert f"@{lab_.ip('mongo1')}:27017/nuxeo?replicaSet=rs0" in conf, conf
    assert lab_.ip("mongo2") not in conf


def test_runningstatus_through_the_lb(compact_mongodb) -> None:
    lab_, _ = compact_mongodb
    d = Deployed.load(lab_.inventory)
    _code, body = wait_for(
        lambda: (lambda r: r if r[0] == 200 else None)(runningstatus(d.url)), 120, "runningstatus 200 through the LB"
    )
    for probe in ("runtimeStatus", "repositoryStatus", "elasticSearchStatus", "streamStatus", "s3BinaryManagerStatus"):
        assert body.get(probe) == "ok", body


def test_documents_blobs_search_work_and_the_data_in_mongodb(compact_mongodb) -> None:
    lab_, _ = compact_mongodb
    d = Deployed.load(lab_.inventory)
    nx = d.client()
    title = f"verify {uuid.uuid4().hex[:8]}"
    doc, content = create_document_with_blob(nx, title, f"hello nxprovision on mongodb {title}")
    assert nx.documents.fetch_blob(uid=doc.uid) == content
    found = wait_for(lambda: nxql(nx, f"dc:title = '{title}'"), 60, "the document in the search index")
    assert [e.uid for e in found] == [doc.uid]
    worker = wait_for(
        lambda: nx.documents.get(uid=doc.uid).properties.get("nxstandin:rendition"), 120, "the work item processed"
    )
    assert worker == "worker1"
    assert md5_hex(content) in " ".join(s3_keys(d))

    cmd = (
        f"NXPW={shlex.quote(d.secret('nx_secret_db_password'))} python3 -c {shlex.quote(PROBE)} {shlex.quote(doc.uid)}"
    )
    r = lab_.ssh("mongo1", cmd)
    assert r.returncode == 0, r.stdout + r.stderr
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    assert seen["title"] == title, seen
    assert seen["anonymous"].startswith("refused"), seen  # access control (SCRAM) is on
    assert seen["setName"] == "rs0" and seen["hosts"] == [f"{lab_.ip('mongo1')}:27017"], seen


def test_second_deploy_changes_and_restarts_nothing(compact_mongodb) -> None:
    lab_, first = compact_mongodb
    assert first.returncode == 0
    before = service_starts(lab_)
    second = deploy(lab_.inventory, timeout=900)
    assert second.returncode == 0, second.stdout[-4000:]
    changed = {h: r[1] for h, r in recap(second.stdout).items() if r[1]}
    assert changed == {}, changed
    assert service_starts(lab_) == before
