"""`nxprovision adopt` on a cluster built by hand (issue 18): a 3-host compact cluster made with plain package
installs, vendor archives and hand-written configs and units (handbuilt.py, no role), with documents written through
its load balancer and a deliberate difference between its two Nuxeo nodes. Adopt reads it and writes an inventory;
the deploy from that inventory changes only what the report listed, the documents written before are readable
through the load balancer after it, and a second deploy changes nothing. No secret reaches a console, a report or a
run record.

Slow (a lab of its own: about 2 min of hand-building, two deploys): `make test-long`, not CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import bring_up, lab, lab_name, require_lab_machine
from handbuilt import EXTRA_KEYS, HandBuilt, blob_of, build_by_hand

from nxprovision.drift import changed
from nxprovision.secrets import SECRETS_RELPATH, load_secrets_file, read_vault_password

pytestmark = [pytest.mark.lab, pytest.mark.slow]

NXP = [sys.executable, "-m", "nxprovision.cli"]
MIRROR_KEYS = ("nuxeo_download_base_url", "kafka_download_base_url", "opensearch_download_base_url",
               "mongodb_download_base_url", "seaweedfs_download_base_url", "java_download_base_url", "java_version")


def nxp(runs: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NXP, *args, "--progress", "plain"], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env={**os.environ, "NXPROVISION_RUNS_DIR": str(runs)})


def given_inventory(lab_inventory: Path, dest: Path) -> Path:
    """What an operator starts adopt with: the hosts and how to reach them, the download mirror; no groups of
    ours, no settings, no vault."""
    hosts = yaml.safe_load((lab_inventory / "hosts.yml").read_text())
    main = yaml.safe_load((lab_inventory / "group_vars" / "all" / "main.yml").read_text())
    (dest / "group_vars" / "all").mkdir(parents=True)
    (dest / "hosts.yml").write_text(yaml.safe_dump(hosts))
    shutil.copy2(lab_inventory / "group_vars" / "all" / "lab.yml", dest / "group_vars" / "all" / "lab.yml")
    (dest / "group_vars" / "all" / "mirror.yml").write_text(yaml.safe_dump({k: main[k] for k in MIRROR_KEYS}))
    shutil.copy2(lab_inventory / ".known_hosts", dest / ".known_hosts")
    return dest


def changed_roles(runs: Path, verb: str) -> dict[str, set[str]]:
    """host -> the roles of its changed tasks ('' for a play's own task), from the newest run of `verb`."""
    run = sorted(p for p in runs.iterdir() if f"-{verb}-" in p.name)[-1]
    out: dict[str, set[str]] = {}
    for f in run.glob("artifacts/*/job_events/*.json"):
        event = json.loads(f.read_text())
        if changed(event):
            data = event.get("event_data") or {}
            out.setdefault(str(data.get("host")), set()).add(str(data.get("role") or ""))
    return out


def assert_within(touched_by_host: dict[str, set[str]], promised: dict[str, set[str]]) -> None:
    """Each host's changed tasks belong to the roles the adoption report listed for it."""
    for host, touched in touched_by_host.items():
        if host != "localhost":
            assert touched - {""} <= promised.get(host, set()), (host, touched - promised.get(host, set()))


def conf_diff(console: str, host: str) -> str:
    """The masked nuxeo.conf diff `deploy --diff` printed for `host`: the indented lines under its task's line."""
    lines = console.splitlines()
    start = next(i for i, ln in enumerate(lines) if f"{host}  nuxeo : Show the nuxeo.conf change" in ln)
    out = []
    for ln in lines[start + 1:]:
        if not ln.startswith("           "):
            break
        out.append(ln.strip())
    return "\n".join(out)


def secret_hits(runs: Path, values: list[str], texts: list[str], folder: Path) -> list[str]:
    hits = [f"console #{i}" for i, t in enumerate(texts) for v in values if v in t]
    for f in [*runs.rglob("*"), *folder.rglob("*")]:
        if f.is_file() and f.name not in (".vault-pass", "secrets.yml", "ca.key"):
            data = f.read_bytes()
            hits += [f"{v[:3]}... in {f}" for v in values if v.encode() in data]
    return hits


def read_back(hb: HandBuilt, admin_password: str) -> None:
    from nuxeo.client import Nuxeo

    nx = Nuxeo(host=hb.url + "/", auth=("Administrator", admin_password))
    for doc in hb.documents:
        got = nx.documents.get(path=doc.path)
        assert got.uid == doc.uid and got.properties["dc:title"] == doc.title
        assert got.properties["file:content"]["digest"] == doc.blob_md5
        assert blob_of(nx, doc) == doc.content


def test_adopt_a_hand_built_cluster_then_deploy_keeps_its_documents(tmp_path: Path) -> None:
    require_lab_machine()
    name = lab_name("adopt")
    runs = tmp_path / "runs"
    try:
        lab_ = bring_up(name, "--hosts", "3")
        hb = build_by_hand(lab_)
        given = given_inventory(lab_.inventory, tmp_path / "given")
        out = tmp_path / "adopted"
        adopted = nxp(runs, "adopt", "-i", str(given), "--output", str(out), timeout=600)
        assert adopted.returncode == 0, adopted.stdout[-6000:] + adopted.stderr[-3000:]
        report = json.loads((out / "adopt-report.json").read_text())
        assert report["architecture"] == "compact" and report["database"] == "postgresql"
        roles = hb.roles
        assert report["groups"]["loadbalancers"] == roles["loadbalancer"]
        assert sorted(report["groups"]["nuxeo_front"]) == sorted(roles["nuxeo"])
        assert report["groups"]["postgresql"] == roles["database_primary"] + roles["database_standby"]
        assert sorted(report["groups"]["opensearch"]) == sorted(roles["search"])
        assert report["groups"]["kafka"] == roles["kafka"] and report["groups"]["s3"] == roles["s3"]
        assert report["problems"] == [], report["problems"]
        # the secrets found went into the new vault under the model's names
        vault = load_secrets_file(out / SECRETS_RELPATH, read_vault_password(out / ".vault-pass"))
        assert vault["nx_secret_db_password"] == hb.db_password
        assert vault["nx_secret_db_replication_password"] == hb.replication_password
        assert (vault["nx_secret_s3_access_key"], vault["nx_secret_s3_secret_key"]) == (hb.s3_access_key,
                                                                                          hb.s3_secret_key)
        # the deliberate differences between the two Nuxeo nodes are kept per node and reported
        differences = " ".join(f"{d['where']}: {d['what']}" for d in report["differences"])
        for host, keys in EXTRA_KEYS.items():
            for key, value in keys.items():
                assert f"host {host}: nuxeo.conf {key}={value}" in differences, report["differences"]
        assert "heap" in differences, report["differences"]

        # its preview, on hosts the roles never installed: check mode exits 0, changes nothing outside the roles the
        # report listed, says per host and role what it leaves out, and shows each node's nuxeo.conf diff (masked)
        promised = {h: set(r) for h, r in report["changes"].items()}
        preview = nxp(runs, "deploy", "-i", str(out), "--check", "--diff", timeout=1800)
        assert preview.returncode == 0, preview.stdout[-8000:] + preview.stderr[-3000:]
        assert_within(changed_roles(runs, "deploy"), promised)
        for host in roles["nuxeo"]:
            assert f"nuxeo: would install on {host} (install stamp missing or different)" in preview.stdout
            diff = conf_diff(preview.stdout, host)
            assert "+JAVA_OPTS=-Xms" in diff and "nuxeo.db.password=********" in diff, diff
            for key, value in EXTRA_KEYS.get(host, {}).items():
                assert f"+{key}={value}" in diff, diff  # the node's own key, kept
        for host in roles["database_primary"] + roles["database_standby"]:
            assert f"postgresql: would install on {host}" in preview.stdout, preview.stdout[-6000:]

        deployed = nxp(runs, "deploy", "-i", str(out), timeout=2400)
        assert deployed.returncode == 0, deployed.stdout[-8000:] + deployed.stderr[-3000:]
        # the deploy changed nothing outside the roles the report listed for each host
        assert_within(changed_roles(runs, "deploy"), promised)
        # the documents written on the hand-built cluster, through the load balancer, with the vault's admin password
        read_back(hb, vault["nx_secret_nuxeo_admin_password"])

        again = nxp(runs, "deploy", "-i", str(out), timeout=1800)
        assert again.returncode == 0, again.stdout[-6000:]
        assert {h: r for h, r in changed_roles(runs, "deploy").items() if r} == {}, again.stdout[-6000:]

        values = [str(v) for k, v in vault.items() if k.startswith("nx_secret_") and len(str(v)) >= 6]
        hits = secret_hits(runs, values, [adopted.stdout, adopted.stderr, preview.stdout, preview.stderr,
                                          deployed.stdout, again.stdout], out)
        assert hits == [], hits
    finally:
        lab("down", "--name", name, check=False)
