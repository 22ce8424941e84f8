"""Restore rehearsal (issue 7): back a cluster up, then restore it into a fresh lab and check every document,
every blob and the audit entries. Compact (streaming replicas) and distributed (Patroni: the cluster bootstrapped
again from the backup, the other members cloned; two 15-host labs one after the other, about 40 minutes here).

Lab A: deploy, write documents with blobs through the load balancer (the official `nuxeo` client), then
`nxprovision backup`; one more document is written after the backup (it must not come back). The backup bucket
(pgBackRest repository, binaries pool, audit index snapshots, manifests) is copied off the lab, as an off-site copy
of the bucket would be, and lab A is destroyed. Lab B: a new lab of the same shape with the same vault (a
disaster-recovery site keeps the inventory's secrets: the pgBackRest repository is encrypted with
nx_secret_backup_cipher_pass), deployed from nothing; the bucket copy is put into its S3 store, then
`nxprovision restore --backup ID`.

Audit entries are the ones the Nuxeo stand-in writes itself (one per document event, into `<index>-audit`). The
lab's search stand-ins hold the same data (each write copied to every live node), so the snapshot taken through
the node the backups talk to (nx.backup.audit_snapshot) covers the whole index, as on a real cluster. The check is
made on that node: every entry it held before the backup is back on it after the restore.
"""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from cluster_checks import Deployed, create_document_with_blob, md5_hex, recap, runningstatus, wait_for
from conftest import bring_up, lab, lab_name, require_lab_machine

# The rehearsal and the expiry scenario are slow; the refusal without --yes runs on the shared compact lab.
pytestmark = [pytest.mark.lab]

NXP = [sys.executable, "-m", "nxprovision.cli"]
DOCS = 8
# Backups need PostgreSQL: compact (streaming replicas) and distributed (Patroni)
ARCHITECTURES = ["compact", "distributed"]


def nxp(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    # no terminal: a restore without --yes refuses
    return subprocess.run([*NXP, *args, "--progress", "plain"], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def ok(proc: subprocess.CompletedProcess[str], what: str) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"{what} failed:\n{proc.stdout[-8000:]}\n{proc.stderr[-3000:]}"
    return proc


def s3_client(d: Deployed):
    return d.s3_client()  # https with the cluster CA when the store serves TLS


def keys(client, bucket: str) -> list[str]:
    out = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        out += [o["Key"] for o in page.get("Contents", [])]
    return out


def serving(d: Deployed) -> None:
    wait_for(lambda: runningstatus(d.url)[0] == 200 or None, 300, "runningstatus 200 through the LB")


def search(d: Deployed, method: str, path: str, body: Any = None) -> Any:
    """The search node the audit snapshots are taken on (nx.backup.audit_snapshot.url), over its REST API."""
    base = d.cluster.derived["backup"]["audit_snapshot"]["url"]
    ctx = ssl.create_default_context(cafile=d.backend_ca) if base.startswith("https://") else None
    headers = {"Content-Type": "application/json"}
    security = d.cluster.derived["search"].get("security") or {}
    if security.get("enabled"):
        # the backups' own search user: the snapshot repository, its snapshots and the audit index
        token = base64.b64encode(f"backup:{d.secret(security['users']['backup']['secret'])}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers=headers)
    with urllib.request.urlopen(req, timeout=60, context=ctx) as resp:
        return json.loads(resp.read() or b"{}")


def audit_entries(d: Deployed) -> dict[str, dict[str, Any]]:
    """Every entry of the audit index on the snapshot node (id -> entry)."""
    index = d.cluster.derived["backup"]["audit_index"]
    try:
        search(d, "POST", f"/{index}/_refresh")
    except urllib.error.HTTPError as e:
        if e.code == 404:  # no audit entry reached that node yet
            return {}
        raise
    hits = search(d, "POST", f"/{index}/_search", {"size": 10000, "query": {"match_all": {}}})["hits"]["hits"]
    return {h["_id"]: h["_source"] for h in hits}


def patroni_members(lab_b, host: str) -> list[dict]:  # type: ignore[type-arg]
    out = lab_b.ssh(host, "patronictl -c /etc/patroni/config.yml list -f json", timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


def db_state(lab_, d: Deployed) -> dict[str, str]:
    """What a refused restore must leave as it was: each database host's data directory (its inode), the directories
    moved aside, the running PostgreSQL (its postmaster's pid and start time, its role) and each Nuxeo's process."""
    data_dir = d.cluster.derived["backup"]["data_dir"]
    port = d.cluster.derived["db"]["port"]
    state = {}
    for h in d.cluster.db_hosts:
        out = lab_.ssh(h, f"stat -c %i {data_dir}; ls -d {data_dir}.before-restore-* 2>/dev/null; "
                          f"head -1 {data_dir}/postmaster.pid; runuser -u postgres -- psql -p {port} -tAc "
                          "'select pg_postmaster_start_time(), pg_is_in_recovery()'", timeout=30)
        state[h] = out.stdout
        assert out.returncode == 0 and "before-restore" not in out.stdout, (h, out.stdout, out.stderr)
    for n in d.cluster.nuxeo_nodes:
        out = lab_.ssh(n.host, "systemctl show -p MainPID -p ActiveState nuxeo", timeout=30)
        state[n.host] = out.stdout
        assert "ActiveState=active" in out.stdout, (n.host, out.stdout)
    return state


def patroni_roles(lab_, d: Deployed) -> list[tuple[str, str, str, int]]:
    """Patroni's members as etcd knows them: name, role, state and timeline (a restore changes every one)."""
    members = patroni_members(lab_, d.cluster.db_hosts[0])
    assert len(members) == len(d.cluster.db_hosts) and all(m["State"] in ("running", "streaming") for m in members)
    return sorted((m["Member"], m["Role"], m["State"], int(m.get("TL") or 0)) for m in members)


def assert_moved_aside(lab_, d: Deployed, stdout: str) -> None:
    """Each database host keeps its data directory of before the restore, and the run said where and how to go
    back."""
    data_dir = d.cluster.derived["backup"]["data_dir"]
    assert f"kept as {data_dir}.before-restore-" in stdout and "To go back" in stdout, stdout[-2000:]
    for h in d.cluster.db_hosts:
        out = lab_.ssh(h, f"ls -d {data_dir}.before-restore-*/PG_VERSION {data_dir}/PG_VERSION", timeout=30)
        assert out.returncode == 0 and out.stdout.count("PG_VERSION") == 2, (h, out.stdout, out.stderr)


def manifests(d: Deployed) -> list[str]:
    bucket = d.cluster.derived["backup"]["bucket"]
    prefix = d.cluster.derived["backup"]["manifests_prefix"]
    return sorted(k[len(prefix):-5] for k in keys(s3_client(d), bucket) if k.startswith(prefix))


def test_compact_restore_without_yes_touches_nothing(compact_cluster) -> None:
    """No terminal and no --yes: one line, exit 2, before the run lock and before any host is contacted."""
    lab_, first = compact_cluster
    assert first.returncode == 0, "the compact deploy failed; see test_deploy_compact"
    d = Deployed.load(lab_.inventory)
    before = db_state(lab_, d)
    t = time.monotonic()
    refused = nxp("restore", "-i", str(lab_.inventory), "--backup", "20261126T033000Z", timeout=120)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stdout == "" and refused.stderr.count("\n") == 1 and "--yes" in refused.stderr, refused.stderr
    assert time.monotonic() - t < 30  # no playbook ran
    assert db_state(lab_, d) == before


@pytest.mark.slow
def test_compact_restore_expired_set_then_restore_keeps_data(compact_cluster) -> None:
    """Two full backups; pgBackRest expires the first set. Its restore is refused before anything stops; the next
    backup removes its manifest and local record, and a restore of that id is refused again. A restore of the
    latest backup then works and keeps the former data directories."""
    lab_, first = compact_cluster
    assert first.returncode == 0, "the compact deploy failed; see test_deploy_compact"
    inv = str(lab_.inventory)
    d = Deployed.load(lab_.inventory)
    b = d.cluster.derived["backup"]
    records = lab_.inventory / ".backups"
    serving(d)
    # a backup snapshots the audit index: documents until the snapshot node holds it (see the module's docstring)
    nx = d.client()
    for i in range(20):
        if audit_entries(d):
            break
        create_document_with_blob(nx, f"expiry {i}", f"blob {i}")
    assert audit_entries(d), "no audit entry on the snapshot node"

    ok(nxp("backup", "-i", inv, "--type", "full"), "first full backup")
    time.sleep(1.5)  # ids are to the second
    ok(nxp("backup", "-i", inv, "--type", "full"), "second full backup")
    ids = sorted(p.stem for p in records.glob("*.json"))
    assert len(ids) >= 2, ids
    old, newer = ids[-2], ids[-1]
    label = json.loads((records / f"{old}.json").read_text())["database"]["label"]
    primary = d.cluster.derived["db"]["primary"]
    expired = lab_.ssh(primary, f"runuser -u postgres -- pgbackrest --stanza={b['stanza']} --set={label} expire",
                       timeout=300)
    assert expired.returncode == 0, expired.stdout + expired.stderr

    before = db_state(lab_, d)
    refused = nxp("restore", "-i", inv, "--backup", old, "--yes")
    assert refused.returncode != 0, refused.stdout[-3000:]
    assert "is not in the pgBackRest repository" in refused.stdout, refused.stdout[-3000:]
    assert "Stop Nuxeo" not in refused.stdout and "Move the data directory aside" not in refused.stdout
    assert db_state(lab_, d) == before

    # the next backup expires the manifest and the local record of that set, not the others
    doc, content = create_document_with_blob(d.client(), "before the last backup", "kept by the restore")
    ok(nxp("backup", "-i", inv, "--type", "incr"), "incremental backup")
    last = sorted(p.stem for p in records.glob("*.json"))[-1]
    assert old not in manifests(d) and not (records / f"{old}.json").exists()
    assert {newer, last} <= set(manifests(d)) and (records / f"{newer}.json").exists()
    refused = nxp("restore", "-i", inv, "--backup", old, "--yes")
    assert refused.returncode != 0 and f"no manifest manifests/{old}.json" in refused.stdout, refused.stdout[-3000:]
    assert db_state(lab_, d) == before

    late, _ = create_document_with_blob(d.client(), "after the last backup", "gone after the restore")
    restore = ok(nxp("restore", "-i", inv, "--backup", last, "--yes"), "restore of the last backup")
    serving(d)
    assert_moved_aside(lab_, d, restore.stdout)
    nx = d.client()
    assert md5_hex(nx.documents.fetch_blob(uid=doc.uid)) == md5_hex(content)
    with pytest.raises(Exception):  # noqa: B017 - the client raises its own HTTP error class
        nx.documents.get(uid=late.uid)
    # the replica streams again from the restored primary
    port = d.cluster.derived["db"]["port"]
    for h in d.cluster.derived["db"]["replicas"]:
        wait_for(lambda h=h: "streaming" in lab_.ssh(h, f"runuser -u postgres -- psql -p {port} -tAc "
                                                        "'select status from pg_stat_wal_receiver'").stdout or None,
                 120, f"{h} streaming")


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_restore_into_a_fresh_lab(tmp_path: Path, architecture: str) -> None:
    require_lab_machine()
    suffix = "" if architecture == "compact" else "d"  # lab names hold no dash
    name_a, name_b = lab_name("nxbackup" + suffix), lab_name("nxrestore" + suffix)
    timings: dict[str, float] = {}
    try:
        # ---------------------------------------------------------------- lab A: deploy, write, back up
        t = time.monotonic()
        lab_a = bring_up(name_a, "--architecture", architecture)
        first = ok(nxp("deploy", "-i", str(lab_a.inventory), timeout=3000), "deploy of lab A")
        timings["deploy A"] = time.monotonic() - t
        assert all(r[2] == 0 and r[3] == 0 for r in recap(first.stdout).values())
        da = Deployed.load(lab_a.inventory)
        serving(da)
        nx = da.client()
        tag = uuid.uuid4().hex[:8]
        written: dict[str, tuple[str, str]] = {}
        for i in range(DOCS):
            title = f"rehearsal {tag} {i}"
            doc, content = create_document_with_blob(nx, title, f"blob {i} of {tag} " + "x" * (i * 5000))
            assert nx.documents.fetch_blob(uid=doc.uid) == content
            written[doc.uid] = (title, md5_hex(content))
        # the snapshot repository is registered once (a second run of the role changes nothing)
        again = ok(nxp("deploy", "-i", str(lab_a.inventory), "--tags", "role::opensearch"), "opensearch role again")
        assert not {h: r[1] for h, r in recap(again.stdout).items() if r[1]}, again.stdout[-3000:]
        # the audit entries of these documents the snapshot node holds (the Nuxeo stand-in spreads them over the
        # three independent search stand-ins): more documents until it holds some
        for i in range(DOCS, DOCS + 12):
            audit_before = {k: v for k, v in audit_entries(da).items() if v.get("docUUID") in written}
            if audit_before:
                break
            doc, content = create_document_with_blob(nx, f"rehearsal {tag} {i}", f"blob {i} of {tag}")
            written[doc.uid] = (f"rehearsal {tag} {i}", md5_hex(content))
        assert audit_before, "no audit entry of the rehearsal's documents on the snapshot node"

        t = time.monotonic()
        backup = ok(nxp("backup", "-i", str(lab_a.inventory), "--type", "full"), "backup")
        timings["backup"] = time.monotonic() - t
        records = sorted((lab_a.inventory / ".backups").glob("*.json"))
        assert len(records) == 1, backup.stdout[-3000:]
        manifest = json.loads(records[0].read_text())
        backup_id = manifest["id"]
        assert manifest["order"] == ["database", "binaries", "audit"]
        assert manifest["database"]["tool"] == "pgbackrest" and manifest["database"]["type"] == "full"
        in_manifest = {o["md5"] for o in manifest["binaries"]["objects"]}
        assert {md5 for _t, md5 in written.values()} <= in_manifest
        # the audit index: a snapshot in the repository the opensearch role registered, in the backup bucket
        snap = da.cluster.derived["backup"]["audit_snapshot"]
        audit = manifest["audit"]
        assert audit["status"] == "snapshot", audit
        assert audit["repository"] == snap["repository"] == "nxprovision-backup"
        assert audit["snapshot"] == backup_id.lower() and audit["index"] == "nuxeo-audit"
        assert audit["shards"]["failed"] == 0 and audit["shards"]["successful"] > 0
        assert "audit snapshot" in backup.stdout and "Snapshot the audit index" in backup.stdout
        listed = search(da, "GET", f"/_snapshot/{snap['repository']}/{audit['snapshot']}")["snapshots"]
        assert listed[0]["state"] == "SUCCESS" and listed[0]["indices"] == ["nuxeo-audit"]
        for name, value in da.cluster.settings.items():
            if name.startswith("nx_secret_"):
                assert str(value) not in backup.stdout + backup.stderr, f"{name} printed by backup"

        late, _ = create_document_with_blob(nx, f"after backup {tag}", f"written after the backup {tag}")

        # the backup bucket, copied off the lab (an off-site copy of the bucket)
        bucket = da.cluster.derived["backup"]["bucket"]
        client_a = s3_client(da)
        offsite = tmp_path / "offsite"
        for key in keys(client_a, bucket):
            (offsite / key).parent.mkdir(parents=True, exist_ok=True)
            client_a.download_file(bucket, key, str(offsite / key))
        assert any((offsite / snap["settings"]["base_path"]).rglob("*")), "no audit snapshot in the bucket copy"
        inventory_a = tmp_path / "inventory-a"
        shutil.copytree(lab_a.inventory, inventory_a)
        lab("down", "--name", name_a)

        # ---------------------------------------------------------------- lab B: a fresh cluster, same vault
        t = time.monotonic()
        lab_b = bring_up(name_b, "--architecture", architecture)
        for rel in (".vault-pass", "group_vars/all/secrets.yml"):
            shutil.copy2(inventory_a / rel, lab_b.inventory / rel)
        # and the cluster CA: its key is encrypted with that vault password
        shutil.rmtree(lab_b.inventory / ".pki")
        shutil.copytree(inventory_a / ".pki", lab_b.inventory / ".pki")
        ok(nxp("deploy", "-i", str(lab_b.inventory), timeout=3000), "deploy of lab B")
        timings["deploy B"] = time.monotonic() - t
        db_ = Deployed.load(lab_b.inventory)
        serving(db_)
        assert db_.client().documents.get(path="/default-domain/workspaces").uid  # a new, empty repository
        client_b = s3_client(db_)
        for key in keys(client_b, bucket):  # the fresh cluster's own (empty) repository makes way
            client_b.delete_object(Bucket=bucket, Key=key)
        for f in sorted(p for p in offsite.rglob("*") if p.is_file()):
            client_b.upload_file(str(f), bucket, str(f.relative_to(offsite)))

        # refused without --yes, and for a set the repository does not hold: nothing touched either time
        before = db_state(lab_b, db_)
        members = patroni_roles(lab_b, db_) if architecture == "distributed" else None
        refused = nxp("restore", "-i", str(lab_b.inventory), "--backup", backup_id)
        assert refused.returncode == 2 and "--yes" in refused.stderr, refused.stdout + refused.stderr
        gone = dict(manifest, id=backup_id + "X", database=dict(manifest["database"], label="20200101-000000F"))
        client_b.put_object(Bucket=bucket, Key=f"manifests/{backup_id}X.json", Body=json.dumps(gone).encode())
        refused = nxp("restore", "-i", str(lab_b.inventory), "--backup", backup_id + "X", "--yes")
        assert refused.returncode != 0, refused.stdout[-3000:]
        assert "is not in the pgBackRest repository" in refused.stdout, refused.stdout[-3000:]
        assert db_state(lab_b, db_) == before
        if architecture == "distributed":  # the cluster still in etcd, the same leader, every member running
            assert patroni_roles(lab_b, db_) == members

        t = time.monotonic()
        restore = ok(nxp("restore", "-i", str(lab_b.inventory), "--backup", backup_id, "--yes"), "restore")
        timings["restore"] = time.monotonic() - t
        serving(db_)
        assert_moved_aside(lab_b, db_, restore.stdout)

        # ---------------------------------------------------------------- every document and blob is back
        nxb = db_.client()
        for uid, (title, md5) in written.items():
            doc = nxb.documents.get(uid=uid)
            assert doc.properties["dc:title"] == title
            assert md5_hex(nxb.documents.fetch_blob(uid=uid)) == md5, f"blob of {title}"
        s3_b = db_.cluster.derived["s3"]["bucket"]
        etags = {o["Key"]: o["ETag"].strip('"') for page in client_b.get_paginator("list_objects_v2").paginate(
            Bucket=s3_b) for o in page.get("Contents", [])}
        for obj in manifest["binaries"]["objects"]:
            assert etags.get(obj["key"]) == obj["md5"], obj["key"]
        with pytest.raises(Exception):  # noqa: B017 - the client raises its own HTTP error class
            nxb.documents.get(uid=late.uid)
        # every audit entry the snapshot node held before the backup is back on it, as it was; none of the late one
        assert "Restore the audit index from the snapshot" in restore.stdout, restore.stdout[-3000:]
        audit_after = audit_entries(db_)
        missing = sorted(set(audit_before) - set(audit_after))
        assert not missing, f"{len(missing)} of {len(audit_before)} audit entries not restored: {missing[:5]}"
        assert all(audit_after[k] == v for k, v in audit_before.items())
        assert not [v for v in audit_after.values() if v.get("docUUID") == late.uid]
        if architecture == "distributed":
            # one leader, every other member streaming from it (cloned from the restored leader)
            members = patroni_members(lab_b, db_.cluster.db_hosts[0])
            assert [m["Role"] for m in members].count("Leader") == 1, members
            assert all(m["State"] in ("running", "streaming") for m in members), members
            assert len(members) == len(db_.cluster.db_hosts), members
            assert "Patroni stops on every database host" in restore.stdout
        print(f"restore rehearsal: {len(written)} documents and blobs back, {len(audit_before)} audit entries of the "
              "snapshot node back; timings (s): "
              + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
        print(restore.stdout[-1500:])
    finally:
        lab("down", "--name", name_a, check=False)
        lab("down", "--name", name_b, check=False)
