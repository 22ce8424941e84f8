"""`nxprovision drift` on the shared compact lab (issue 18): hand edits on three hosts are named with their diffs,
drift writes nothing, and after a deploy drift is clean.

Runs after test_deploy_compact.py (file order) and leaves the cluster converged (it ends with a deploy), as the
later users of the compact_cluster fixture expect.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cluster_checks import Deployed
from conftest import Lab

pytestmark = pytest.mark.lab

NXP = [sys.executable, "-m", "nxprovision.cli"]
Deployment = tuple[Lab, subprocess.CompletedProcess[str]]

NUXEO_CONF = "/etc/nuxeo/nuxeo.conf"
PG_CONF = "/etc/postgresql/{pg}/main/conf.d/90-nxprovision.conf"  # {pg}: the lab's PostgreSQL major
HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"
EDITS = {
    "front1": (NUXEO_CONF, r"/^JAVA_OPTS=/ s/$/ -Dnx.drift.probe=1/", "-Dnx.drift.probe=1"),
    "db1": (PG_CONF, r"s/^random_page_cost = .*/random_page_cost = 3.9/", "random_page_cost = 3.9"),
    "lb1": (HAPROXY_CFG, r"s/^\(\s*timeout queue\) .*/\1 61s/", "timeout queue 61s"),
}
WATCHED = "/etc/nuxeo /etc/postgresql /etc/haproxy /etc/ansible/facts.d"
HOSTS = ["lb1", "front1", "front2", "worker1", "db1", "db2"]
SERVICES = ["haproxy", "nuxeo", "postgresql@{pg}-main"]


def nxp(*args: str, timeout: float = 1500) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NXP, *args], capture_output=True, text=True, timeout=timeout)


def edits(lab_: Lab) -> dict[str, tuple[str, str, str]]:
    pg = Deployed.load(lab_.inventory).pg_major
    return {h: (path.format(pg=pg), script, marker) for h, (path, script, marker) in EDITS.items()}


def state(lab_: Lab) -> dict[str, str]:
    """Checksums of every managed config file and the start time of every service, per host."""
    services = [s.format(pg=Deployed.load(lab_.inventory).pg_major) for s in SERVICES]
    out = {}
    for h in HOSTS:
        sums = lab_.ssh(h, f"find {WATCHED} -type f 2>/dev/null | sort | xargs -r sha256sum")
        starts = lab_.ssh(h, " ; ".join(f"systemctl show -p ActiveEnterTimestampMonotonic --value {s} 2>/dev/null"
                                        for s in services))
        out[h] = sums.stdout + starts.stdout
    return out


def test_drift_names_each_hand_edit_changes_nothing_and_is_clean_after_deploy(compact_cluster: Deployment) -> None:
    lab_, first = compact_cluster
    assert first.returncode == 0, first.stdout[-3000:]
    inv = str(lab_.inventory)
    edited = edits(lab_)
    for host, (path, script, marker) in edited.items():
        r = lab_.ssh(host, f"sed -i '{script}' {path} && grep -c -- '{marker}' {path}")
        assert r.stdout.strip() == "1", (host, r.stdout, r.stderr)
    before = state(lab_)

    found = nxp("drift", "-i", inv, "--json")
    assert state(lab_) == before  # check mode: no file written, no service restarted or reloaded
    assert found.returncode == 1, found.stdout[-4000:] + found.stderr[-3000:]
    report = json.loads(found.stdout)
    assert report["clean"] is False
    for host, (path, _script, marker) in edited.items():
        files = {f["path"]: f for f in report["hosts"].get(host, []) if f["kind"] == "file"}
        assert path in files, (host, report["hosts"].get(host))
        diff = files[path]["diff"]
        assert f"--- before: {path}" in diff, diff
        assert any(ln.startswith("-") and marker in ln for ln in diff.splitlines()), diff
    # the other hosts were not edited: nothing is reported there
    assert not {"front2", "worker1", "db2", "search1", "kafka1", "s3-1"} & set(report["hosts"]), report["hosts"]
    # between the Nuxeo nodes: front1's JAVA_OPTS is the odd one out
    nodes = {n["what"]: n["values"] for n in report["nodes"]}
    assert "-Dnx.drift.probe=1" in nodes["nuxeo.conf JAVA_OPTS"]["front1"], nodes
    assert "-Dnx.drift.probe=1" not in nodes["nuxeo.conf JAVA_OPTS"]["front2"]
    # secrets masked: no vault value in anything drift printed
    d = Deployed.load(Path(inv))
    secrets = [str(v) for k, v in d.cluster.settings.items() if k.startswith("nx_secret_") and v]
    assert not [k for k, v in d.cluster.settings.items() if k.startswith("nx_secret_") and v
                and str(v) in found.stdout + found.stderr]
    assert secrets

    # the repair limited to the hosts drift named (their groups whole: the database pair is one replicated set)
    deployed = nxp("deploy", "-i", inv, "--limit", "lb1:front1:postgresql", "--progress", "plain")
    assert deployed.returncode == 0, deployed.stdout[-4000:]
    again = nxp("drift", "-i", inv)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-2000:]
    assert "drift: none" in again.stdout
    for host, (path, _script, marker) in edited.items():
        assert lab_.ssh(host, f"grep -c -- '{marker}' {path}").stdout.strip() == "0", host
