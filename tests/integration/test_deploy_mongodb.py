"""The compact architecture on MongoDB deployed from nothing into the lab, verified from outside.

1 LB; 2 Nuxeo front nodes and 1 worker; 3 search; 3 MongoDB hosts; 1 Kafka; 1 S3 host (issue 5). Every MongoDB host
runs mongod and the role initiates the 3-member replica set, with access control (SCRAM) on. (The lab's MongoDB
answers the replica-set commands as mongod does but does not replicate: the data is on the primary only.)
Then (after the second deploy) `secrets rotate db_password` under a steady load, and a deploy after it.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_checks import (
    Deployed,
    create_document_with_blob,
    md5_hex,
    node_of,
    nxql,
    recap,
    runningstatus,
    s3_keys,
    secret_hits,
    wait_for,
)
from conftest import Lab, bring_up, lab, lab_name, nxprovision, require_lab_machine
from load import SteadyLoad, unreadable_acks

from nxprovision import secrets

pytestmark = [pytest.mark.lab, pytest.mark.slow]

NXP = [sys.executable, "-m", "nxprovision.cli"]
NAME = lab_name("nxmongo")
SERVICES = {
    "mongo1": ["mongod"],
    "mongo2": ["mongod"],
    "mongo3": ["mongod"],
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


def test_every_host_runs_a_member_of_the_replica_set(compact_mongodb) -> None:
    lab_, _ = compact_mongodb
    members = ",".join(f"{lab_.ip(h)}:27017" for h in ("mongo1", "mongo2", "mongo3"))
    for h in ("mongo1", "mongo2", "mongo3"):
        assert lab_.ssh(h, "systemctl is-active mongod").stdout.strip() == "active", h
    conf = lab_.ssh("front1", "grep '^nuxeo.mongodb.server=' /etc/nuxeo/nuxeo.conf").stdout
    assert f"@{members}/nuxeo?replicaSet=rs0" in conf, conf
    # each member answers with the whole set and its own state (hello needs no login)
    probe = ("import json, pymongo; h = pymongo.MongoClient('127.0.0.1', 27017, directConnection=True)"
             ".admin.command('hello'); print(json.dumps({k: h.get(k) for k in ('setName', 'hosts', 'primary', "
             "'isWritablePrimary', 'secondary')}))")
    for h in ("mongo1", "mongo2", "mongo3"):
        r = lab_.ssh(h, f"python3 -c {shlex.quote(probe)}")
        seen = json.loads(r.stdout.strip().splitlines()[-1])
        assert seen["setName"] == "rs0" and seen["hosts"] == members.split(","), seen
        assert seen["primary"] == f"{lab_.ip('mongo1')}:27017", seen
        assert seen["isWritablePrimary"] is (h == "mongo1") and seen["secondary"] is (h != "mongo1"), (h, seen)


def test_status_lists_every_member_with_its_state(compact_mongodb) -> None:
    lab_, _ = compact_mongodb
    out = nxprovision("status", "-i", str(lab_.inventory), "--json")
    report = json.loads(out.stdout)
    rows = {r["host"]: r for r in report["components"] if r["component"] == "mongodb"}
    assert sorted(rows) == ["mongo1", "mongo2", "mongo3"], report["components"]
    assert rows["mongo1"]["detail"].startswith("PRIMARY of rs0, 3 member(s)"), rows["mongo1"]
    for h in ("mongo2", "mongo3"):
        assert rows[h]["detail"].startswith("SECONDARY of rs0, 3 member(s)"), rows[h]
    # the lab's MongoDB says what it does not do
    assert all("no replication" in r["notice"] for r in rows.values()), rows
    assert all(r["healthy"] for r in rows.values()), rows


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
    assert seen["setName"] == "rs0" and len(seen["hosts"]) == 3, seen


def test_second_deploy_changes_and_restarts_nothing(compact_mongodb) -> None:
    lab_, first = compact_mongodb
    assert first.returncode == 0
    before = service_starts(lab_)
    second = deploy(lab_.inventory, timeout=900)
    assert second.returncode == 0, second.stdout[-4000:]
    changed = {h: r[1] for h, r in recap(second.stdout).items() if r[1]}
    assert changed == {}, changed
    assert service_starts(lab_) == before


def mongo_login(lab_: Lab, password: str) -> str:
    """Log in as the Nuxeo user from the test machine with pymongo (SCRAM): 'accepted' or 'refused <code>'."""
    import pymongo
    from pymongo.errors import OperationFailure

    client = pymongo.MongoClient(lab_.ip("mongo1"), 27017, username="nuxeo", password=password, authSource="nuxeo",
                                 directConnection=True, serverSelectionTimeoutMS=10000)
    try:
        client.nuxeo.list_collection_names()
    except OperationFailure as e:
        return f"refused {e.code}"
    finally:
        client.close()
    return "accepted"


def test_rotate_db_password_under_load(compact_mongodb) -> None:
    lab_, first = compact_mongodb
    assert first.returncode == 0, "the deploy failed; see test_first_deploy_converges"
    d = Deployed.load(lab_.inventory)
    old = d.secret("nx_secret_db_password")
    assert mongo_login(lab_, old) == "accepted"

    with SteadyLoad(d.client, threads=2, pause_s=0.25) as load:
        wait_for(lambda: len(load.stats.acked) >= 10, 120, "the load to get going")
        t0 = time.monotonic()
        r = nxprovision("secrets", "rotate", "-i", str(lab_.inventory), "db_password", "--progress", "plain")
        took = time.monotonic() - t0
        time.sleep(5)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert "rotation of the Nuxeo database password done" in r.stdout, out[-3000:]

    after = Deployed.load(lab_.inventory)
    new = after.secret("nx_secret_db_password")
    assert new != old and len(new) == len(old)
    kept = secrets.load_secrets_file(lab_.inventory / secrets.SECRETS_RELPATH,
                                     secrets.read_vault_password(lab_.inventory / ".vault-pass"))
    assert kept["nx_secret_db_password"] == new
    assert "nx_secret_db_password_previous" not in kept, "the previous value must leave the vault when done"

    for node in ("front1", "front2", "worker1"):
        line = lab_.ssh(node, "grep '^nuxeo.mongodb.server=' /etc/nuxeo/nuxeo.conf").stdout
        assert f"nuxeo:{new}@" in line, (node, line.replace(new, "<new>").replace(old, "<old>"))

    # from outside, with a real client: the old password refused (AuthenticationFailed), the new one accepted
    assert mongo_login(lab_, old) == "refused 18"
    assert mongo_login(lab_, new) == "accepted"

    wait_for(lambda: runningstatus(after.url)[0] == 200, 120, "runningstatus 200 through the LB")
    wait_for(lambda: {"front1", "front2"} <= {node_of(after.client()) for _ in range(10)}, 120,
             "both front nodes serving through the LB")
    stats = load.stats
    print(f"MongoDB rotation under load: {took:.0f}s, {stats.requests} requests, {len(stats.failures)} failed, "
          f"{len(stats.acked)} acknowledged writes; failures: {stats.failures[:10]}")
    assert len(stats.acked) > 10
    assert unreadable_acks(after.client, stats.acked) == []
    assert stats.failures == [], stats.failures[:20]
    assert secret_hits(lab_.name, [new, old], (r.stdout, r.stderr)) == []


def test_deploy_after_the_rotation_leaves_the_user_alone(compact_mongodb) -> None:
    """The mongodb role creates the Nuxeo user with update_password: on_create: a deploy neither reverts nor
    re-sets the rotated password, and changes nothing anywhere (nuxeo.conf already holds the new one)."""
    lab_, _ = compact_mongodb
    d = Deployed.load(lab_.inventory)
    new = d.secret("nx_secret_db_password")
    assert mongo_login(lab_, new) == "accepted", "run after test_rotate_db_password_under_load"
    before = service_starts(lab_)
    again = deploy(lab_.inventory, timeout=900)
    assert again.returncode == 0, again.stdout[-4000:]
    hosts = recap(again.stdout)
    assert hosts["mongo1"][1] == 0, hosts["mongo1"]
    changed = {h: r[1] for h, r in hosts.items() if r[1]}
    assert changed == {}, changed
    assert service_starts(lab_) == before
    assert mongo_login(lab_, new) == "accepted"
    assert secret_hits(lab_.name, [new], (again.stdout, again.stderr)) == []
