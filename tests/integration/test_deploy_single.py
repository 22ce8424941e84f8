"""The single architecture (trials) deployed from nothing into a one-host lab, verified from outside.

One host runs everything: HAProxy, the Nuxeo node (front, and the one that processes work), PostgreSQL,
the search node, the Kafka broker and the S3 store (issue 5). It runs what `init` writes: Nuxeo LTS 2025 on
Debian 13 (issue 16), so its node also shows the 2025 distribution: the search and audit packages and their keys,
none of the dead elasticsearch.* keys, Java 21, an offline registration.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
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
    runningstatus,
    s3_keys,
    secret_hits,
    sudo_journal,
    sudo_user_on,
    wait_for,
)
from conftest import DEFAULT_VERSION, Lab, lab, lab_name, lab_traces, nxprovision, require_lab_machine
from test_deploy_compact import deploy, recap, service_starts

pytestmark = pytest.mark.lab

NAME = lab_name("nxsingle")
HOST = "nuxeo1"


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def single() -> Iterator[tuple[Lab, subprocess.CompletedProcess[str]]]:
    """Built by the README's main job (`make lab-demo`, here with ARCH=single): lab, validate, plan, deploy."""
    require_lab_machine()
    try:
        lab("down", "--name", NAME)  # leftovers of an earlier, interrupted run
        first = subprocess.run(
            ["bash", "scripts/lab-demo.sh", "single"],
            cwd=ROOT,
            env={**os.environ, "NXLAB_NAME": NAME},
            capture_output=True,
            text=True,
            timeout=1500,
        )
        inventory = Path(lab("inventory", "--name", NAME).stdout.strip())
        status = json.loads(lab("status", "--json", "--name", NAME).stdout)
        yield Lab(name=NAME, inventory=inventory, status=status), first
    finally:
        lab("down", "--name", NAME, check=False)


def test_main_job_ends_with_the_url_a_health_table_and_a_picture(single) -> None:
    lab_, first = single
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
    d = Deployed.load(lab_.inventory)
    tail = first.stdout[-3000:]
    assert f"Nuxeo is at {d.url}" in tail
    summary = tail.strip().splitlines()[-1]
    assert summary.endswith("healthy") and summary.split("/")[0] == summary.split("/")[1].split()[0], summary
    picture = lab_.inventory.parent / "cluster.svg"
    assert picture.read_text().lstrip().startswith(("<svg", "<?xml")), picture


def test_first_deploy_converges(single) -> None:
    _lab, first = single
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
    hosts = recap(first.stdout)
    assert set(hosts) == {HOST}, hosts
    _ok, changed, unreachable, failed = hosts[HOST]
    assert changed > 0 and unreachable == 0 and failed == 0, hosts


def test_runningstatus_through_the_lb(single) -> None:
    lab_, _ = single
    d = Deployed.load(lab_.inventory)
    _code, body = wait_for(
        lambda: (lambda r: r if r[0] == 200 else None)(runningstatus(d.url)), 120, "runningstatus 200 through the LB"
    )
    for probe in ("runtimeStatus", "repositoryStatus", "elasticSearchStatus", "streamStatus", "s3BinaryManagerStatus"):
        assert body.get(probe) == "ok", body
    assert body.get("standin") is True


def test_documents_blobs_search_and_work(single) -> None:
    lab_, _ = single
    d = Deployed.load(lab_.inventory)
    nx = d.client()
    assert node_of(nx) == HOST
    title = f"verify {uuid.uuid4().hex[:8]}"
    doc, content = create_document_with_blob(nx, title, f"hello nxprovision {title}")
    assert nx.documents.fetch_blob(uid=doc.uid) == content
    found = wait_for(lambda: nxql(nx, f"dc:title = '{title}'"), 60, "the document in the search index")
    assert [e.uid for e in found] == [doc.uid]
    worker = wait_for(
        lambda: nx.documents.get(uid=doc.uid).properties.get("nxstandin:rendition"), 120, "the work item processed"
    )
    assert worker == HOST  # no worker node: the single node processes work itself
    assert md5_hex(content) in " ".join(s3_keys(d))


def on_search_nodes(lab_: Lab, d: Deployed, method: str, path: str) -> list[tuple[int, str]]:
    """One request to each search node, sent from the first search host as the search admin (the firewall admits
    the search port from the cluster's hosts only): a check of the index asks every one (on the single lab, the one
    node)."""
    host = d.cluster.search_hosts[0]
    tls = d.cluster.derived["tls"]
    out = []
    for base in d.cluster.derived["search"]["urls"]:
        ca = f"--cacert {tls['ca_path']}" if base.startswith("https://") else ""
        auth = f"-u admin:{d.secret('nx_secret_search_admin_password')}" if tls["search"] else ""
        r = lab_.ssh(host, f"curl -s -o /tmp/nxp-out -w '%{{http_code}}' {ca} {auth} -X {method} '{base}{path}'; "
                           "echo; cat /tmp/nxp-out; rm -f /tmp/nxp-out")
        code, _, body = r.stdout.partition("\n")
        out.append((int(code or 0), body))
    return out


def audit_count(lab_: Lab, d: Deployed, index: str) -> int:
    answers = on_search_nodes(lab_, d, "GET", f"/{index}-audit/_count")
    return sum(json.loads(body).get("count", 0) for code, body in answers if code == 200)


def test_reindex_rebuilds_the_repository_index_and_leaves_the_audit_alone(single) -> None:
    """A document whose index entry is lost is found again after `nxprovision reindex`, which follows the
    management API's bulk status to its end; the audit index keeps every entry."""
    lab_, _ = single
    d = Deployed.load(lab_.inventory)
    nx = d.client()
    title = f"reindexed {uuid.uuid4().hex[:8]}"
    doc, content = create_document_with_blob(nx, title, f"kept {title}")
    wait_for(lambda: nxql(nx, f"dc:title = '{title}'"), 60, "the document in the search index")
    # the worker's rendition updates the document (and indexes it again): let it land before the entry is deleted
    wait_for(lambda: nx.documents.get(uid=doc.uid).properties.get("nxstandin:rendition"), 120, "the work item")
    index = d.cluster.derived["search"]["index_name"]
    audit_before = audit_count(lab_, d, index)
    codes = [code for code, _ in on_search_nodes(lab_, d, "DELETE", f"/{index}/_doc/{doc.uid}?refresh=true")]
    assert 200 in codes and set(codes) <= {200, 404}, codes
    assert all(nxql(nx, f"dc:title = '{title}'") == [] for _ in range(6))  # every search node asked

    r = nxprovision("reindex", "-i", str(lab_.inventory), "--progress", "plain")
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-2000:]
    report = re.search(r"reindex COMPLETED on (\S+): (\d+) of (\d+) documents indexed", r.stdout)
    assert report, r.stdout[-4000:]
    assert report.group(1) in {n.host for n in d.cluster.nuxeo_nodes}
    assert int(report.group(2)) == int(report.group(3)) > 1
    found = wait_for(lambda: nxql(nx, f"dc:title = '{title}'"), 60, "the document indexed again")
    assert [e.uid for e in found] == [doc.uid]
    assert nx.documents.fetch_blob(uid=doc.uid) == content
    assert audit_count(lab_, d, index) >= audit_before > 0
    assert secret_hits(lab_.name, [d.secret("nx_secret_nuxeo_admin_password")], (r.stdout, r.stderr)) == []


DEAD_KEYS = re.compile(r"^(elasticsearch\.|audit\.elasticsearch\.)", re.M)


def test_the_2025_node_has_its_packages_keys_java_21_and_a_registration(single) -> None:
    lab_, first = single
    assert first.returncode == 0
    version = DEFAULT_VERSION
    assert f"nuxeo_version: '{version}'" in (lab_.inventory / "group_vars" / "all" / "main.yml").read_text()
    assert "debian13" in lab_.ssh(HOST, ". /etc/os-release; echo $ID$VERSION_ID").stdout
    conf = lab_.ssh(HOST, "cat /etc/nuxeo/nuxeo.conf").stdout
    assert "nuxeo.opensearch1.client.server=" in conf
    assert "nuxeo.search.client.default.opensearch1.index.name=nuxeo" in conf
    assert "nuxeo.audit.backend.default.opensearch1.index.name=nuxeo-audit" in conf
    assert not DEAD_KEYS.findall(conf), DEAD_KEYS.findall(conf)
    templates = re.search(r"^nuxeo.templates=(.*)$", conf, re.M)
    assert templates and templates.group(1).split(",")[-2:] == ["opensearch1-search-client", "opensearch1-audit"]
    packages = lab_.ssh(HOST, "cat /var/lib/nuxeo/data/nxprovision-packages.txt").stdout
    assert f"nuxeo-search-client-opensearch1-{version}.zip" in packages
    assert f"nuxeo-audit-opensearch1-{version}.zip" in packages
    assert lab_.ssh(HOST, "test -s /var/lib/nuxeo/data/instance.clid").returncode == 0  # registered (offline)
    java = lab_.ssh(HOST, "java -version 2>&1").stdout
    assert 'version "21.' in java, java
    assert "Tomcat Version 10.1." in lab_.ssh(HOST, "cat /opt/nuxeo/RELEASE-NOTES").stdout
    log = lab_.ssh(HOST, "cat /var/log/nuxeo/server.log").stdout
    assert f"Nuxeo stand-in started (version {version}" in log and "needs Java" not in log
    assert "search client opensearch1 (index nuxeo), audit store opensearch1" in log


def test_second_deploy_changes_and_restarts_nothing(single) -> None:
    """The second deploy logs in as a non-root operator with sudo (issue 18: `--user` wins over the lab inventory's
    ansible_user: root, and the plays become root), and changes and restarts nothing. (The compact lab's second
    deploy is the AWX-way run of the installed collection.)"""
    lab_, first = single
    assert first.returncode == 0
    user = "nxops"
    since = sudo_user_on(lab_, [HOST], user)
    before = service_starts(lab_, [HOST])
    assert before, "no service start time recorded"
    second = deploy(lab_.inventory, "--user", user, "--become")
    assert second.returncode == 0, second.stdout[-4000:]
    changed = {h: r[1] for h, r in recap(second.stdout).items() if r[1]}
    assert changed == {}, changed
    assert service_starts(lab_, [HOST]) == before
    journal = sudo_journal(lab_, HOST, since[HOST])
    assert f"Accepted publickey for {user}" in journal, journal[-2000:]
    assert f"{user} : " in journal and "USER=root" in journal, journal[-2000:]  # sudo to root by the user


# `status` with the controller's own network probes cut off, as behind a bastion that passes only SSH
_CUT_OFF = """
import sys
from nxprovision import status
def cut(*args, **kwargs):
    raise OSError("the controller's own probes are cut off")
status._http = status._tls_handshake = status._pg_tls_handshake = cut
status._tcp = lambda address, port: False
from nxprovision.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_status_via_hosts_probes_from_the_hosts_and_leaves_nothing(single, tmp_path: Path) -> None:
    """Issue 18: `status --via-hosts` runs the probes on the cluster's hosts. With the controller's own probes cut
    off it reads every row healthy, the rows the controller reads when it can reach the ports; the run records and
    the output hold no secret, and the host keeps no file of it."""
    from nxprovision.inventory import load_inventory
    from nxprovision.rotation import masked_names

    lab_, first = single
    assert first.returncode == 0
    inv = str(lab_.inventory)
    outside = subprocess.run([sys.executable, "-m", "nxprovision.cli", "status", "-i", inv, "--json"],
                             capture_output=True, text=True, timeout=300)
    assert outside.returncode == 0, outside.stdout[-3000:] + outside.stderr[-2000:]
    env = {**os.environ, "NXPROVISION_RUNS_DIR": str(tmp_path / "runs")}
    blind = subprocess.run([sys.executable, "-c", _CUT_OFF, "status", "-i", inv, "--json", "--quick"],
                           capture_output=True, text=True, timeout=300, env=env)
    assert blind.returncode == 1 and all(c["health"] == "down" for c in json.loads(blind.stdout)["components"])
    marker = lab_.ssh(HOST, "touch /run/nxvia.marker && echo marked")
    assert "marked" in marker.stdout, marker.stderr
    via = subprocess.run([sys.executable, "-c", _CUT_OFF, "status", "-i", inv, "--json", "--via-hosts"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert via.returncode == 0, via.stdout[-3000:] + via.stderr[-2000:]

    def rows(doc: str) -> list[tuple[str, ...]]:
        return sorted((c["host"], c["component"], c["address"], c["health"], c["version"], c["lb_state"], c["detail"])
                      for c in json.loads(doc)["components"])

    assert rows(via.stdout) == rows(outside.stdout)
    view = load_inventory(lab_.inventory)
    secrets = {str(v) for h in view.hostvars.values() for k, v in h.items() if k in masked_names() and len(str(v)) > 5}
    [run] = list((tmp_path / "runs").glob("*-status-probe-*"))
    command = json.loads((run / "command.json").read_text())
    assert command["extravars"]["status_via_plan"] and command["extravars"]["status_via_secret_names"]
    for path in [p for p in run.rglob("*") if p.is_file()]:
        text = path.read_text(errors="replace")
        assert not [s for s in secrets if s in text], path
    assert not [s for s in secrets if s in via.stdout + via.stderr]
    left = lab_.ssh(HOST, "find /root /tmp /var/tmp /home -newer /run/nxvia.marker \\( -path '*/.ansible/tmp/*' "
                          "-o -name '*ansible*' -o -name '*AnsiballZ*' -o -name '*status*' -o -name '*.py' \\) -print; "
                          "rm -f /run/nxvia.marker")
    assert left.returncode == 0 and left.stdout.strip() == "", left.stdout + left.stderr


def test_a_non_root_ssh_user_with_sudo_deploys_with_become(single) -> None:
    """Issue 18: the plays become root, so a non-root SSH user with passwordless sudo deploys; `--user` wins over
    the lab inventory's ansible_user: root. Runs after the other tests of this lab (it logs in as another user)."""
    lab_, first = single
    assert first.returncode == 0
    user = "nxops"
    since = sudo_user_on(lab_, [HOST], user)[HOST]
    # The lab is converged already (as root): one run as the user, with every task checked and nothing to
    # change, proves the plays reach root through sudo (a task without root would fail or report a change).
    run = deploy(lab_.inventory, "--user", user, "--become", timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert recap(run.stdout)[HOST][1] == 0, f"the deploy as {user} changed something: {recap(run.stdout)}"
    journal = sudo_journal(lab_, HOST, since)
    assert f"Accepted publickey for {user}" in journal, journal[-2000:]
    assert f"{user} : " in journal and "USER=root" in journal, journal[-2000:]  # sudo to root by the user


def _tls_tasks(run: subprocess.CompletedProcess[str]) -> list[str]:
    """The tls role's task starts of a run, read from its job events (the run's records folder)."""
    records = Path(run.stdout.rsplit("records in ", 1)[1].split()[0])
    events = [json.loads(p.read_text()) for p in records.glob("artifacts/*/job_events/*.json")]
    return [e["event_data"]["task"] for e in sorted(events, key=lambda e: e["counter"])
            if e["event"] == "playbook_on_task_start" and e["event_data"].get("role") == "tls"]


def test_tls_fast_path_skips_a_converged_host_and_reissues_a_deleted_certificate(single) -> None:
    """Issue 19: on a converged host the tls role runs no certificate task; a certificate deleted on the host is
    seen at the next fact gathering (the configure stamp re-checks the files) and issued again with the same key.
    The new certificate is not installed into the services here."""
    lab_, first = single
    assert first.returncode == 0
    noop = deploy(lab_.inventory, "--tags", "role::tls", timeout=600)
    assert noop.returncode == 0, noop.stdout[-4000:]
    assert recap(noop.stdout)[HOST][1] == 0, recap(noop.stdout)
    tasks = _tls_tasks(noop)
    full_path = {"Sign the certificate on the controller with the CA key", "Install the cluster CA certificate",
                 "Record what the tls role deployed"}
    assert "Configure" in tasks and not full_path & set(tasks), tasks
    cert = f"/etc/nxprovision/tls/{HOST}.crt"
    pub = f"openssl pkey -pubout -in /etc/nxprovision/tls/{HOST}.key | sha256sum"
    key_before = lab_.ssh(HOST, pub).stdout
    gone = lab_.ssh(HOST, f"openssl x509 -noout -serial -in {cert} && rm -f {cert}")
    assert gone.returncode == 0, gone.stderr
    again = deploy(lab_.inventory, "--tags", "role::tls", timeout=600)
    assert again.returncode == 0, again.stdout[-4000:]
    assert recap(again.stdout)[HOST][1] > 0, recap(again.stdout)
    assert "Sign the certificate on the controller with the CA key" in _tls_tasks(again)
    issued = lab_.ssh(HOST, f"openssl x509 -noout -serial -checkend 86400 -in {cert}")
    assert issued.returncode == 0, issued.stdout + issued.stderr
    assert issued.stdout.splitlines()[0] != gone.stdout.splitlines()[0]  # a new serial
    assert lab_.ssh(HOST, pub).stdout == key_before  # the key stayed on the host, the same
    # and the host is converged again: the next run skips the phase
    third = deploy(lab_.inventory, "--tags", "role::tls", timeout=600)
    assert third.returncode == 0 and recap(third.stdout)[HOST][1] == 0, third.stdout[-4000:]
    assert not full_path & set(_tls_tasks(third))


def test_version_lock_holds_the_host_and_refuses_a_version_it_cannot_get(single) -> None:
    """Issue 18: `lock` writes the versions the host runs (dpkg's); the next deploy holds the host there with apt
    pins that apt honours, changing nothing else; a locked version the host cannot get fails the deploy naming the
    host and package before any package task, `lock` then shows the difference and `--update` takes the host's.
    Without the lock, the next deploy removes the pins. Last of this lab's tests."""
    import yaml

    from nxprovision import versionlock
    from nxprovision.inventory import inventory_dir

    lab_, first = single
    assert first.returncode == 0
    inv = lab_.inventory
    path = versionlock.path_of(inventory_dir(inv))
    pins_file = "/etc/apt/preferences.d/nxprovision-lock"
    try:
        wrote = nxprovision("lock", "-i", str(inv), timeout=600)
        assert wrote.returncode == 0 and f"wrote {path}" in wrote.stdout, wrote.stdout[-3000:] + wrote.stderr
        lock = yaml.safe_load(path.read_text())["nx_version_lock"]
        [(release, profiles)] = lock["releases"].items()
        [pkgs] = [dict(p) for p in profiles.values()]  # one host: one profile, nothing shared
        assert {"haproxy", "python3-psycopg2"} <= set(pkgs) and "bash" not in pkgs, sorted(pkgs)  # bash: required
        dpkg = lab_.ssh(HOST, "dpkg-query -W -f '${Package} ${Version}\\n' " + " ".join(sorted(pkgs)))
        assert dict(line.split(" ", 1) for line in dpkg.stdout.splitlines()) == pkgs, dpkg.stdout + dpkg.stderr
        assert release == lab_.ssh(HOST, ". /etc/os-release && echo $VERSION_CODENAME").stdout.strip()

        held = deploy(inv, "--tags", "role::common", timeout=900)
        assert held.returncode == 0 and recap(held.stdout)[HOST][1] == 1, held.stdout[-4000:]
        policy = lab_.ssh(HOST, "apt-cache policy haproxy").stdout
        assert f" {pkgs['haproxy']} 1001" in policy, policy
        again = nxprovision("lock", "-i", str(inv), timeout=600)
        assert again.returncode == 0 and "is up to date" in again.stdout, again.stdout[-2000:]

        good = path.read_text()
        prof = next(iter(profiles))
        offered = [m.group(1) for m in re.finditer(r"^ (?:\*\*\*| {3}) (\S+) -?\d+$", policy, re.M)
                   if m.group(1) != pkgs["haproxy"]]
        if offered:  # the sources offer another haproxy: a lock naming it is drift, left alone by the pins
            lock["releases"][release][prof]["haproxy"] = offered[0]
            path.write_text(versionlock.render(lock))
            drifted = nxprovision("drift", "-i", str(inv), timeout=900)
            assert drifted.returncode == 1, drifted.stdout[-3000:]
            assert (f"package: haproxy {pkgs['haproxy']} is installed, the version lock holds {offered[0]}"
                    in drifted.stdout), drifted.stdout[-3000:]
            assert f"+Pin: version {offered[0]}" in drifted.stdout, drifted.stdout[-3000:]
        lock["releases"][release][prof]["haproxy"] = "9.9.9-nx1"
        path.write_text(versionlock.render(lock))
        refused = deploy(inv, timeout=900)
        out = refused.stdout + refused.stderr
        assert refused.returncode != 0 and "haproxy=9.9.9-nx1" in out and HOST in out, out[-4000:]
        assert "Hold packages to the version lock" in out, out[-4000:]
        assert lab_.ssh(HOST, f"grep -c 9.9.9-nx1 {pins_file} || true").stdout.strip() == "0"  # nothing written
        differs = nxprovision("lock", "-i", str(inv), timeout=600)
        assert differs.returncode == 1 and f"haproxy: 9.9.9-nx1 -> {pkgs['haproxy']}" in differs.stdout, \
            differs.stdout[-2000:]
        assert "9.9.9-nx1" in path.read_text()  # nothing written without --update
        updated = nxprovision("lock", "-i", str(inv), "--update", timeout=600)
        assert updated.returncode == 0 and path.read_text() == good, updated.stdout[-2000:]
    finally:
        path.unlink(missing_ok=True)
    unpinned = deploy(inv, "--tags", "role::common", timeout=900)
    assert unpinned.returncode == 0 and recap(unpinned.stdout)[HOST][1] == 1, unpinned.stdout[-4000:]
    assert lab_.ssh(HOST, f"test -e {pins_file} && echo present || echo gone").stdout.strip() == "gone"


# -- Molecule scenarios per reference architecture (long: `make test-long` only) ---------------------------

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = {"single": "molsingle", "compact": "molcompact", "compact-mongodb": "molcompactmongo"}


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_molecule_reference_architecture(scenario: str) -> None:
    """create, converge (playbooks/site.yml), idempotence, verify (runningstatus via the LB), destroy."""
    require_lab_machine()
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        "ANSIBLE_NOCOLOR": "1",
        "NO_COLOR": "1",
        "PY_COLORS": "0",
    }
    try:
        run = subprocess.run(
            [str(bin_dir / "molecule"), "test", "-s", scenario],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=2400,
        )
    finally:
        lab("down", "--name", lab_name(SCENARIOS[scenario]), check=False)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-5000:]
    for action in ("create", "converge", "idempotence", "verify", "destroy"):
        assert f"{action}: Executed: Successful" in out, action
    left = lab_traces(lab_name(SCENARIOS[scenario]))
    assert left == {k: [] for k in left}, left
