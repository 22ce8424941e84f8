"""The distributed architecture (no single point of failure) deployed into the lab, verified from outside.

2 load balancers sharing a virtual IP (keepalived); 2 Nuxeo front nodes and 1 worker; 3 search; 3 PostgreSQL
under Patroni with a 3-member etcd (on the database hosts); 3 Kafka brokers; 1 S3 host (issue 7).

Then, marked ha (`make test-ha`), failures under a steady load of the official client through the virtual IP
(test_failure_under_load, one case per scenario): a front node powered off, the database primary's host powered
off, the active load balancer powered off, a front node cut off the network, a front host and the database
primary's host rebooted.

NXPROVISION_TEST_LAB=<name> runs the tests against an existing, already deployed distributed lab of that
name and leaves it up (a development shortcut: the first deploy is then the one already done).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cluster_checks import Deployed, cluster_health, node_of, recap, runningstatus, wait_for
from conftest import Lab, bring_up, lab, lab_name, require_lab_machine
from load import SteadyLoad, report_figures, unreadable_acks

# The 15-host distributed lab takes 15-20 minutes on this 2-core machine: it runs with `make test-long` and
# `make test-ha`, outside the default CI run, until CI time allows it back (issue #7).
pytestmark = [pytest.mark.lab, pytest.mark.slow]

NXP = [sys.executable, "-m", "nxprovision.cli"]
PATRONICTL = "patronictl -c /etc/patroni/config.yml"
SERVICES = ["haproxy", "keepalived", "nuxeo", "patroni", "etcd", "opensearch", "kafka", "seaweedfs"]
LOAD_THREADS = 4
MONITOR = "lb1"


def deploy(inventory: Path, *extra: str, timeout: float = 3000) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NXP, "deploy", "-i", str(inventory), "--progress", "plain", *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def distributed() -> Iterator[tuple[Lab, subprocess.CompletedProcess[str] | None]]:
    require_lab_machine()
    existing = os.environ.get("NXPROVISION_TEST_LAB")
    if existing:
        status = json.loads(lab("status", "--json", "--name", existing).stdout)
        inventory = Path(lab("inventory", "--name", existing).stdout.strip().splitlines()[-1])
        yield Lab(name=existing, inventory=inventory, status=status), None
        return
    name = lab_name("nxdisttest")
    try:
        lab_ = bring_up(name, "--architecture", "distributed")
        # monitoring on (issue 20): the first load balancer's host runs Prometheus, which reads Patroni's own
        # /metrics, the search exporters and every broker's under-replicated partitions check
        hosts_yml = lab_.inventory / "hosts.yml"
        data = yaml.safe_load(hosts_yml.read_text())
        data["all"]["children"]["monitoring"] = {"hosts": {MONITOR: None}}
        hosts_yml.write_text(yaml.safe_dump(data, sort_keys=False))
        first = deploy(lab_.inventory)
        yield lab_, first
    finally:
        lab("down", "--name", name, check=False)


def vip_holders(lab_: Lab, d: Deployed) -> list[str]:
    vip = str(d.cluster.settings["nx_vip"])
    holders = []
    for h in d.cluster.lb_hosts:
        out = lab_.ssh(h, "ip -4 -o addr show", timeout=20)
        if out.returncode == 0 and f" {vip}/" in out.stdout:
            holders.append(h)
    return holders


def cluster_ca(d: Deployed) -> str:
    """The cluster CA's certificate on this machine (the inventory's .pki/ca.crt)."""
    p = Path(d.cluster.derived["tls"]["ca_cert_file"])
    return str(p if p.is_absolute() else d.inventory / p)


def patroni_rest(d: Deployed, host: str, path: str, method: str = "GET", auth: tuple[str, str] | None = None,
                 body: bytes | None = None, timeout: float = 2) -> tuple[int, bytes]:
    """One call to a member's REST API from here: https verified with the cluster CA when the cluster has TLS."""
    import base64
    import ssl
    import urllib.error
    import urllib.request

    member = next(m for m in d.cluster.derived["db"]["patroni"]["members"] if m["host"] == host)
    req = urllib.request.Request(member["rest_url"] + path, data=body, method=method)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    if body is not None:
        req.add_header("Content-Type", "application/json")
    ctx = ssl.create_default_context(cafile=cluster_ca(d)) if member["rest_url"].startswith("https://") else None
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def patroni_rest_leader(d: Deployed, hosts: list[str]) -> str | None:
    """The leader as Patroni's REST API (port 8008) of any reachable member reports it, straight from here."""
    for h in hosts:
        try:
            members = json.loads(patroni_rest(d, h, "/cluster")[1])["members"]
        except Exception:  # a dead or busy member: ask the next one
            continue
        return next((m["name"] for m in members if m["role"] == "leader" and m["state"] == "running"), None)
    return None


def patroni_members(lab_: Lab, host: str) -> list[dict]:  # type: ignore[type-arg]
    out = lab_.ssh(host, f"{PATRONICTL} list -f json", timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


def leader_and_other(lab_: Lab, d: Deployed) -> tuple[str, str]:
    """The current Patroni leader, and another database host to ask while the leader is away."""
    members = patroni_members(lab_, d.cluster.db_hosts[0])
    leader = next(m["Member"] for m in members if m["Role"] == "Leader")
    return leader, next(h for h in d.cluster.db_hosts if h != leader)


def wait_back_as_replica(lab_: Lab, member: str, ask: str) -> None:
    """Wait until Patroni (asked on `ask`) lists `member` as a streaming replica again."""
    wait_for(
        lambda: any(
            m["Member"] == member and m["Role"] == "Replica" and m["State"] in ("streaming", "running")
            for m in patroni_members(lab_, ask)
        ),
        180,
        f"{member} back as a replica",
    )


def service_starts(lab_: Lab, hosts: list[str]) -> dict[tuple[str, str], str]:
    out = {}
    for h in hosts:
        for svc in SERVICES:
            r = lab_.ssh(h, f"systemctl show -p ActiveEnterTimestampMonotonic --value {svc} 2>/dev/null || true")
            value = r.stdout.strip()
            if value and value != "0":
                out[(h, svc)] = value
    return out


class Prober:
    """Polls runningstatus through the virtual IP in the background: when did it stop and start answering."""

    def __init__(self, url: str, interval: float = 0.2) -> None:
        self.url, self.interval = url, interval
        self.samples: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Prober:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ok = runningstatus(self.url)[0] == 200
            except Exception:  # any error is "not answering"
                ok = False
            self.samples.append((time.monotonic(), ok))
            time.sleep(self.interval)

    def recovered_after(self, t0: float) -> float | None:
        """Seconds from t0 until answers were back for good (None if they never were)."""
        after = [(t, ok) for t, ok in self.samples if t >= t0]
        last_bad = max((t for t, ok in after if not ok), default=None)
        if last_bad is None:
            return 0.0
        good = [t for t, ok in after if ok and t > last_bad]
        return (good[0] - t0) if good else None


# --------------------------------------------------------------------------- convergence


def test_first_deploy_converges(distributed) -> None:
    _lab, first = distributed
    if first is None:
        pytest.skip("existing lab: deployed before the test")
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
    hosts = recap(first.stdout)
    assert {
        "lb1",
        "lb2",
        "front1",
        "front2",
        "worker1",
        "db1",
        "db2",
        "db3",
        "kafka1",
        "kafka2",
        "kafka3",
        "s3-1",
    } <= set(hosts)
    assert all(r[2] == 0 and r[3] == 0 for r in hosts.values()), hosts


def test_second_deploy_changes_and_restarts_nothing(distributed) -> None:
    lab_, _ = distributed
    hosts = [h["host"] for h in lab_.status["hosts"]]
    before = service_starts(lab_, hosts)
    second = deploy(lab_.inventory)
    assert second.returncode == 0, second.stdout[-4000:]
    changed = {h: r[1] for h, r in recap(second.stdout).items() if r[1]}
    assert changed == {}, changed
    assert service_starts(lab_, hosts) == before


def test_runningstatus_through_the_virtual_ip(distributed) -> None:
    lab_, _ = distributed
    d = Deployed.load(lab_.inventory)
    vip = str(d.cluster.settings["nx_vip"])
    assert d.url == f"https://{vip}/nuxeo"
    _code, body = wait_for(
        lambda: (lambda r: r if r[0] == 200 else None)(runningstatus(d.url)),
        120,
        "runningstatus 200 through the virtual IP",
    )
    for probe in ("runtimeStatus", "repositoryStatus", "elasticSearchStatus", "streamStatus"):
        assert body.get(probe) == "ok", body


def test_virtual_ip_held_by_one_load_balancer(distributed) -> None:
    lab_, _ = distributed
    d = Deployed.load(lab_.inventory)
    assert len(vip_holders(lab_, d)) == 1


def test_patroni_leader_and_two_streaming_replicas(distributed) -> None:
    lab_, _ = distributed
    members = wait_for(
        lambda: (
            lambda m: (
                m
                if sum(x["Role"] == "Leader" for x in m) == 1
                and sum(x["Role"] == "Replica" and x["State"] in ("streaming", "running") for x in m) == 2
                else None
            )
        )(patroni_members(lab_, "db1")),
        60,
        "one leader and two replicas",
    )
    leader = next(m["Member"] for m in members if m["Role"] == "Leader")
    streaming = lab_.ssh(
        leader,
        "runuser -u postgres -- psql -tAc \"select count(*) from pg_stat_replication where state = 'streaming'\"",
    )
    assert streaming.stdout.strip() == "2", streaming.stdout + streaming.stderr
    rows = lab_.ssh(leader, 'runuser -u postgres -- psql -d nuxeo -tAc "select count(*) from hierarchy"')
    assert rows.returncode == 0 and int(rows.stdout.strip()) > 0, rows.stdout + rows.stderr


def test_nuxeo_conf_points_at_every_database_host(distributed) -> None:
    lab_, _ = distributed
    d = Deployed.load(lab_.inventory)
    conf = lab_.ssh("front1", "grep '^nuxeo.db.jdbc.url=' /etc/nuxeo/nuxeo.conf")
    for h in d.cluster.db_hosts:
        assert d.address(h) in conf.stdout, conf.stdout
    assert "targetServerType=primary" in conf.stdout


NODE_CA = "/etc/nxprovision/tls/ca.crt"
PATRONI_CRT = "/etc/patroni/tls/server.crt"
# Run on a Nuxeo node: connect as Nuxeo does (its password read from nuxeo.conf there, never passed around), to every
# database host with the leader picked by libpq, verify-full with the cluster CA; print what the server saw.
VERIFY_FULL_PROBE = """
import sys, psycopg2
conf = dict(l.rstrip("\\n").split("=", 1) for l in open("/etc/nuxeo/nuxeo.conf") if "=" in l and not l.startswith("#"))
c = psycopg2.connect(host=sys.argv[1], port=5432, dbname="nuxeo", user="nuxeo", password=conf["nuxeo.db.password"],
                     sslmode="verify-full", sslrootcert=sys.argv[2], target_session_attrs="read-write",
                     connect_timeout=10)
cur = c.cursor()
cur.execute("select ssl, version, host(inet_server_addr()) from pg_stat_ssl where pid = pg_backend_pid()")
print(*cur.fetchone())
"""
PLAIN_PROBE = """
import sys, psycopg2
try:
    psycopg2.connect(host=sys.argv[1], port=5432, dbname="nuxeo", user="nuxeo", password="x", sslmode="disable",
                     connect_timeout=10)
except psycopg2.OperationalError as e:
    print(e)
"""


def test_nuxeo_talks_to_the_patroni_leader_over_tls_only(distributed) -> None:
    lab_, _ = distributed
    d = Deployed.load(lab_.inventory)
    assert d.cluster.derived["db"]["ssl"] is True
    conf = lab_.ssh("front1", "grep '^nuxeo.db.jdbc.url=' /etc/nuxeo/nuxeo.conf").stdout
    assert f"targetServerType=primary&ssl=true&sslmode=verify-full&sslrootcert={NODE_CA}" in conf, conf
    leader, _other = leader_and_other(lab_, d)
    # every connection of the Nuxeo user on the leader is TLS, from the Nuxeo nodes
    q = ("select client_addr, ssl from pg_stat_ssl join pg_stat_activity using (pid) "
         "where usename = 'nuxeo' and datname = 'nuxeo'")
    rows = lab_.ssh(leader, f'runuser -u postgres -- psql -tA -F " " -c "{q}"')
    assert rows.returncode == 0, rows.stderr
    conns = [line.split() for line in rows.stdout.split("\n") if line.strip()]
    assert conns and all(ssl == "t" for _addr, ssl in conns), conns
    nodes = {d.address(n.host) for n in d.cluster.nuxeo_nodes}
    assert {addr.split("/")[0] for addr, _ in conns} <= nodes, conns
    # a Nuxeo node verifies the leader's certificate with the cluster CA (verify-full) over the multi-host list
    hosts = ",".join(d.address(h) for h in d.cluster.db_hosts)
    probe = lab_.ssh("front1", f"python3 -c '{VERIFY_FULL_PROBE}' {hosts} {NODE_CA}", timeout=60)
    assert probe.returncode == 0, probe.stdout + probe.stderr
    ssl_on, version, server = probe.stdout.split()
    assert ssl_on == "True" and version.startswith("TLSv1") and server == d.address(leader), probe.stdout
    for h in d.cluster.db_hosts:
        # every member (any may lead): hostssl only for the Nuxeo user, a plain connection refused
        hba = lab_.ssh(h, f"grep -E '^host[a-z]* +nuxeo +nuxeo ' /var/lib/postgresql/{d.pg_major}/patroni/pg_hba.conf"
                       ).stdout
        lines = [line.split() for line in hba.splitlines() if line.strip()]
        assert len(lines) == len(nodes) and all(line[0] == "hostssl" for line in lines), (h, hba)
        plain = lab_.ssh("front1", f"python3 -c '{PLAIN_PROBE}' {d.address(h)}", timeout=60)
        assert "no encryption" in plain.stdout, (h, plain.stdout + plain.stderr)


def test_patroni_rest_api_asks_for_its_password_over_tls_only(distributed) -> None:
    """From here: the REST API is on each member's cluster address only, over https with the member's certificate
    (verified with the cluster CA); its unsafe endpoints refuse a call without the vault's password or with a wrong
    one (401), the read-only ones answer; plain http gets no answer from Patroni."""
    lab_, _ = distributed
    d = Deployed.load(lab_.inventory)
    patroni = d.cluster.derived["db"]["patroni"]
    assert patroni["rest_tls"] is True
    port = patroni["rest_port"]
    user, password = patroni["rest_user"], d.secret("nx_secret_patroni_rest_password")
    for h in d.cluster.db_hosts:
        # the local address column only (the peer column reads 0.0.0.0:* on Debian 13's ss for any listener)
        bound = [ln.split()[3] for ln in lab_.ssh(h, f"ss -Hltn 'sport = :{port}'").stdout.splitlines() if ln.strip()]
        wildcard = [a for a in bound if a.startswith(("0.0.0.0:", "*:", "[::]:"))]
        assert f"{d.address(h)}:{port}" in bound and not wildcard, (h, bound)
        assert patroni_rest(d, h, "/health")[0] == 200, h
        for method, path, body in (("POST", "/restart", b"{}"), ("PATCH", "/config", b"{}"),
                                   ("POST", "/switchover", b'{"leader": "x"}')):
            code, answer = patroni_rest(d, h, path, method, body=body)
            assert code == 401, (h, method, path, code, answer)
            code, answer = patroni_rest(d, h, path, method, auth=(user, "not-the-password"), body=body)
            assert code == 401, (h, method, path, code, answer)
        # the vault's password is accepted: a patch that sets ttl to its value changes nothing (Patroni 4 answers
        # 400 to an empty one)
        code, current = patroni_rest(d, h, "/config")
        assert code == 200, (h, code, current)
        same = json.dumps({"ttl": json.loads(current)["ttl"]}).encode()
        code, answer = patroni_rest(d, h, "/config", "PATCH", auth=(user, password), body=same)
        assert code == 200, (h, code, answer)
        # plain http: the TLS listener answers no HTTP request
        plain = plain_http_health(d.address(h), port)
        assert not (isinstance(plain, int) and plain < 400), (h, plain)
    # patronictl on a member reaches every member with the CA and the password (a reload goes through the API)
    out = lab_.ssh("db1", f"{PATRONICTL} reload --force {patroni['scope']}", timeout=60)
    assert out.returncode == 0 and "reload" in out.stdout.lower(), out.stdout + out.stderr


def etcd_call(d: Deployed, host: str, port: int, path: str, cert: tuple[str, str] | None = None,
              body: bytes | None = None) -> tuple[int, bytes]:
    """An https request to an etcd member from here, verified with the cluster CA, with or without a client
    certificate."""
    import ssl
    import urllib.request

    ctx = ssl.create_default_context(cafile=cluster_ca(d))
    if cert:
        ctx.load_cert_chain(*cert)
    req = urllib.request.Request(f"https://{d.address(host)}:{port}{path}", data=body,
                                 method="POST" if body is not None else "GET")
    with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
        return r.status, r.read()


def test_etcd_serves_only_clients_with_a_certificate(distributed, tmp_path: Path) -> None:
    """From here: etcd's client and peer ports speak https only; with the CA alone (no client certificate) the
    handshake is refused and no key is read; with a certificate of the cluster CA (a database host's, as Patroni
    shows it) Patroni's keys are there."""
    import base64
    import ssl

    lab_, _ = distributed
    d = Deployed.load(lab_.inventory)
    etcd = d.cluster.derived["etcd"]
    assert etcd["tls"] is True and d.cluster.derived["db"]["patroni"]["etcd_protocol"] == "https"
    prefix = d.cluster.derived["db"]["patroni"]["namespace"].encode()
    rng = json.dumps({"key": base64.b64encode(prefix).decode(),
                      "range_end": base64.b64encode(prefix[:-1] + bytes([prefix[-1] + 1])).decode(),
                      "keys_only": True}).encode()
    host = d.cluster.etcd_hosts[0]
    # a client certificate of the cluster CA: the member's own (fetched from the lab host for this test only)
    crt, key = tmp_path / "client.crt", tmp_path / "client.key"
    crt.write_text(lab_.ssh(host, "cat /etc/etcd/tls/server.crt").stdout)
    key.write_text(lab_.ssh(host, "cat /etc/etcd/tls/server.key").stdout)
    key.chmod(0o600)
    for h in d.cluster.etcd_hosts:
        for port, path, body in ((etcd["client_port"], "/v3/kv/range", rng), (etcd["client_port"], "/health", None),
                                 (etcd["peer_port"], "/members", None)):
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)) as refused:
                etcd_call(d, h, port, path, body=body)
            # refused for the missing client certificate, not because this side distrusts the member's certificate
            reason = getattr(refused.value, "reason", refused.value)
            assert not isinstance(reason, ssl.SSLCertVerificationError), (h, port, refused.value)
        code, answer = etcd_call(d, h, etcd["client_port"], "/health", cert=(str(crt), str(key)))
        assert code == 200 and json.loads(answer)["health"] == "true", (h, answer)
        code, answer = etcd_call(d, h, etcd["client_port"], "/v3/kv/range", cert=(str(crt), str(key)), body=rng)
        keys = [base64.b64decode(k["key"]).decode() for k in json.loads(answer).get("kvs", [])]
        assert code == 200 and any(k.endswith("/leader") for k in keys), (h, keys)
        # plain http on the client port: no answer from etcd
        plain = plain_http_health(d.address(h), etcd["client_port"])
        assert not (isinstance(plain, int) and plain < 400), (h, plain)



def plain_http_health(address: str, port: int) -> object:
    """What a plain http GET /health on a TLS-only port gets: an HTTP status, or the error it failed with."""
    conn = http.client.HTTPConnection(address, port, timeout=5)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        return exc
    finally:
        conn.close()


def test_prometheus_reads_patroni_search_and_kafka(distributed) -> None:
    """issue 20 on the distributed architecture: every target up, Patroni's own /metrics (one leader, the cluster
    locked), the search cluster green from each node's exporter, no under-replicated partition over three brokers."""
    from cluster_checks import monitoring_access, monitoring_get, prometheus_query, wait_every_target_up

    lab_, first = distributed
    assert first is None or first.returncode == 0
    d, m, ca, auth = monitoring_access(lab_.inventory)
    assert {"patroni", "search"} <= {j["name"] for j in m["jobs"]}
    wait_every_target_up(m, ca, auth, timeout=240)

    def query(expr: str) -> dict[str, str]:
        return prometheus_query(m, ca, auth, expr)

    db = set(d.cluster.db_hosts)
    primaries = wait_for(lambda: (lambda r: r if set(r) == db else None)(query("patroni_primary")), 120,
                         "patroni_primary from every member")
    assert sorted(primaries.values()) == ["0", "0", "1"], primaries
    assert set(query("patroni_cluster_unlocked").values()) == {"0"}
    green = wait_for(lambda: (lambda r: r if set(r) == set(d.cluster.search_hosts) else None)(
        query('elasticsearch_cluster_health_status{color="green"}')), 120, "every search exporter")
    assert set(green.values()) == {"1"}, green
    brokers = {b.host for b in d.cluster.kafka_brokers}
    under = wait_for(lambda: (lambda r: r if set(r) == brokers else None)(
        query("nxprovision_kafka_under_replicated_partitions_all")), 180, "every broker's check")
    assert set(under.values()) == {"0"}, under
    # their alerts stay quiet on a healthy cluster
    code, alerts = monitoring_get(m["alertmanager_url"] + "/api/v2/alerts?active=true", ca, auth)
    quiet = {"NxPatroniWithoutLeader", "NxSearchNotGreen", "NxUnderReplicatedPartitions"}
    assert code == 200 and not [a for a in alerts if a["labels"]["alertname"] in quiet], alerts


def test_kafka_brokers_share_one_log(distributed) -> None:
    """Stand-in only: the three Tansu brokers keep their topics in one S3 bucket, so each lists the same."""
    lab_, _ = distributed
    d = Deployed.load(lab_.inventory)
    listed = {}
    # with Kafka TLS the tools speak SSL with the client settings the kafka role wrote
    tls = " --command-config /etc/kafka/client.properties" if d.cluster.derived["kafka"]["tls"] else ""
    for b in d.cluster.derived["kafka"]["brokers"]:
        out = lab_.ssh(
            b["host"],
            f"/opt/kafka/bin/kafka-topics.sh --bootstrap-server {b['address']}:{b['port']} --list{tls}",
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        listed[b["host"]] = sorted(out.stdout.split())
    assert len({tuple(v) for v in listed.values()}) == 1, listed
    assert any(t.startswith(d.cluster.derived["kafka"]["topic_prefix"]) for t in next(iter(listed.values())))


def test_certs_renew_reloads_the_patroni_members_without_restarts(distributed) -> None:
    """`certs renew --all`: each member serves its new certificate after a reload through Patroni; no PostgreSQL
    restarts, no failover, Nuxeo's connections stay TLS."""
    lab_, _ = distributed
    d = Deployed.load(lab_.inventory)
    dbs = list(d.cluster.db_hosts)
    started = "runuser -u postgres -- psql -tAc 'select pg_postmaster_start_time()'"

    def serial(host: str) -> str:
        return lab_.ssh(host, f"openssl x509 -noout -serial -in {PATRONI_CRT}").stdout.strip()

    def served(host: str) -> str:
        return lab_.ssh(host, "openssl s_client -starttls postgres -connect 127.0.0.1:5432 </dev/null 2>/dev/null"
                              " | openssl x509 -noout -serial").stdout.strip()

    leader, _ = leader_and_other(lab_, d)
    before = {h: serial(h) for h in dbs}
    assert all(before.values()) and all(served(h) == before[h] for h in dbs), before
    before_start = {h: lab_.ssh(h, started).stdout.strip() for h in dbs}
    before_units = service_starts(lab_, dbs)
    renew = subprocess.run([*NXP, "certs", "renew", "-i", str(lab_.inventory), "--all", "--progress", "plain"],
                           capture_output=True, text=True, timeout=1800)
    assert renew.returncode == 0, renew.stdout[-4000:] + renew.stderr[-2000:]
    for h in dbs:
        new = serial(h)
        assert new and new != before[h], h
        assert served(h) == new, h  # certs renew waited for it
    assert {h: lab_.ssh(h, started).stdout.strip() for h in dbs} == before_start
    assert service_starts(lab_, dbs) == before_units
    assert leader_and_other(lab_, d)[0] == leader
    check = subprocess.run([*NXP, "certs", "check", "-i", str(lab_.inventory), "--json"],
                           capture_output=True, text=True, timeout=900)
    report = json.loads(check.stdout)
    copies = {c["where"]: c for c in report["certificates"] if c["kind"] == "postgresql"}
    assert set(copies) == set(dbs), report
    assert all(not c.get("error") for c in copies.values()), copies


# --------------------------------------------------------------------------- failures under load
#
# Each scenario: a steady load of the official client through the virtual IP; one failure (a host powered off,
# cut off the network, or rebooted); the host back after a while (as an operator's hardware would come back);
# then the cluster must be healthy again without any other action. The figures of every scenario go to the
# test output and to NXPROVISION_HA_REPORT when set (one JSON line each).

FAILED_SHARE_MAX = 0.01  # the target: only the requests in flight fail, under 1 % of the load
SERVING_WITHIN_S = 30  # the target: serving without errors again within 30 s, database failover included
HEALTHY_WITHIN_S = 240  # from the host being back (boot, Nuxeo start, pg_rewind included) to a healthy cluster


def patroni_state(d: Deployed) -> tuple[str | None, int]:
    """(leader, number of replicas streaming or running) as Patroni's REST API of any reachable member says."""
    for h in d.cluster.db_hosts:
        try:
            members = json.loads(patroni_rest(d, h, "/cluster")[1])["members"]
        except Exception:  # a dead or busy member: ask the next one
            continue
        leader = next((m["name"] for m in members if m["role"] == "leader" and m["state"] == "running"), None)
        replicas = sum(
            m["role"] in ("replica", "sync_standby") and m["state"] in ("streaming", "running") for m in members
        )
        return leader, replicas
    return None, 0


def distributed_health(lab_: Lab, d: Deployed) -> tuple[bool, list[str]]:
    """The operator's view (`nxprovision status`), plus what only the distributed architecture has: the
    virtual IP on exactly one load balancer, a Patroni leader with every other member replicating."""
    _ok, bad = cluster_health(str(lab_.inventory))
    holders = vip_holders(lab_, d)
    if len(holders) != 1:
        bad.append(f"virtual IP held by {holders or 'no load balancer'}")
    leader, replicas = patroni_state(d)
    if leader is None or replicas != len(d.cluster.db_hosts) - 1:
        bad.append(f"Patroni: leader {leader}, {replicas} replica(s) replicating")
    return not bad, bad


def _failure_time(line: str, ref: float) -> float:
    """load.py stamps failures with the wall clock's HH:MM:SS: place it on ref's day."""
    hh, mm, ss = (int(x) for x in line.split()[0].split(":"))
    day = time.localtime(ref)
    return time.mktime((day.tm_year, day.tm_mon, day.tm_mday, hh, mm, ss, 0, 0, -1))


def _per_thread(failures: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in failures:
        m = re.search(r"load-(\d+)-", f)
        key = f"thread-{m[1]}" if m else "?"
        out[key] = out.get(key, 0) + 1
    return out


def _kinds(failures: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in failures:
        kind = f.split(": ", 2)[1] if f.count(": ") >= 2 else f
        out[kind] = out.get(kind, 0) + 1
    return out


def active_lb(lab_: Lab, d: Deployed) -> str:
    holders = vip_holders(lab_, d)
    assert len(holders) == 1, holders
    return holders[0]


def db_leader(lab_: Lab, d: Deployed) -> str:
    return leader_and_other(lab_, d)[0]


def watch_vip(lab_: Lab, d: Deployed, victim: str, t_fail: float) -> dict[str, object]:
    """How long the virtual IP took to reach the other load balancer (seen over SSH, 0.5 s resolution; only the
    survivor is asked: SSH to the powered-off one would wait for its timeout at every poll)."""
    other = next(h for h in d.cluster.lb_hosts if h != victim)
    vip = str(d.cluster.settings["nx_vip"])
    wait_for(
        lambda: f" {vip}/" in lab_.ssh(other, "ip -4 -o addr show", timeout=20).stdout,
        30,
        f"the virtual IP on {other}",
        interval=0.5,
    )
    return {"new_vip_holder": other, "vip_moved_after_s": round(time.monotonic() - t_fail, 1)}


def watch_leader(lab_: Lab, d: Deployed, victim: str, t_fail: float) -> dict[str, object]:
    """How long Patroni took to elect a new leader (its REST API asked from here, 0.5 s resolution)."""
    others = [h for h in d.cluster.db_hosts if h != victim]
    new = wait_for(
        lambda: (lambda x: x if x not in (None, victim) else None)(patroni_rest_leader(d, others)),
        90,
        "a new Patroni leader",
        interval=0.5,
    )
    return {"new_leader": new, "new_leader_after_s": round(time.monotonic() - t_fail, 1)}


Pick = Callable[[Lab, Deployed], str]
Watch = Callable[[Lab, Deployed, str, float], dict[str, object]]


@dataclass
class Scenario:
    host: str | Pick  # the host that fails, or how to find it when the failure starts (leader, VIP holder)
    fail: str  # the lab verb that causes the failure: kill | partition | reboot
    back: str | None  # the lab verb that ends it (None: a reboot comes back by itself)
    hold_s: float  # seconds from the failure to the host coming back
    watch: Watch | None = None  # what to time while the host is away


SCENARIOS: dict[str, Scenario] = {
    "front node powered off": Scenario("front2", "kill", "start", 20),
    "database primary powered off": Scenario(db_leader, "kill", "start", 45, watch_leader),
    "active load balancer powered off": Scenario(active_lb, "kill", "start", 20, watch_vip),
    "front node partitioned": Scenario("front1", "partition", "heal", 20),
    "front host rebooted": Scenario("front2", "reboot", None, 0),
    "database primary host rebooted": Scenario(db_leader, "reboot", None, 0, watch_leader),
}


@pytest.mark.ha
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_failure_under_load(distributed, scenario: str) -> None:
    lab_, first = distributed
    if first is not None:
        assert first.returncode == 0, "the distributed deploy failed; see test_first_deploy_converges"
    s = SCENARIOS[scenario]
    d = Deployed.load(lab_.inventory)
    ok, bad = distributed_health(lab_, d)
    assert ok, f"the cluster is not healthy before the failure: {bad}"
    host = s.host if isinstance(s.host, str) else s.host(lab_, d)
    extra: dict[str, object] = {}
    back_done = s.back is None
    with Prober(d.url) as probe, SteadyLoad(d.client, threads=LOAD_THREADS) as load:
        try:
            wait_for(lambda: len(load.stats.acked) >= 10, 120, "the load to get going")
            time.sleep(10)  # a steady state before the failure
            failed_before = len(load.stats.failures)
            t_fail, wall_fail = time.monotonic(), time.time()
            if s.fail == "reboot":
                # a clean reboot comes back by itself: the lab verb returns once the host answers SSH again
                rebooted: list[subprocess.CompletedProcess[str]] = []
                t_reboot = threading.Thread(
                    target=lambda: rebooted.append(lab(s.fail, "--name", lab_.name, host, check=False, timeout=400)),
                    daemon=True,
                )
                t_reboot.start()
            else:
                lab(s.fail, "--name", lab_.name, host, timeout=300)
            if s.watch:
                extra |= s.watch(lab_, d, host, t_fail)
            if s.fail == "reboot":
                t_reboot.join(timeout=400)
                assert rebooted and rebooted[0].returncode == 0, f"{host} did not come back from a reboot: {rebooted}"
            else:
                time.sleep(max(0.0, s.hold_s - (time.monotonic() - t_fail)))
                back_done = True
                lab(s.back, "--name", lab_.name, host, timeout=300)
            t_back = time.monotonic()
            healthy = wait_for(
                lambda: (lambda h: h if h[0] else None)(distributed_health(lab_, d)),
                HEALTHY_WITHIN_S,
                "the cluster to be healthy again",
                interval=2,
            )
            t_healthy = time.monotonic()
            time.sleep(10)  # load on the recovered cluster: failures must have stopped
        finally:
            if not back_done:  # the test failed while the host was away: bring it back for the next scenario
                lab(s.back, "--name", lab_.name, host, check=False, timeout=300)
    stats = load.stats
    total = stats.requests + len(stats.failures)
    last_failure = max((t - wall_fail for t in stats.failure_times), default=None)
    recovered = probe.recovered_after(t_fail)
    figures: dict[str, object] = {
        "host": host,
        "requests": total,
        "failed": len(stats.failures),
        "failed_share": round(len(stats.failures) / max(total, 1), 5),
        "failed_before_failure": failed_before,
        "acknowledged_writes": len(stats.acked),
        # serving again: no failed request after this (1 s stamp resolution); 0 when nothing failed
        "serving_again_after_s": round(last_failure + 1, 1) if last_failure is not None else 0.0,
        "runningstatus_back_after_s": round(recovered, 1) if recovered is not None else None,
        **extra,
        "host_away_s": round(t_back - t_fail, 1),
        "healthy_after_host_back_s": round(t_healthy - t_back, 1),
        "healthy_after_failure_s": round(t_healthy - t_fail, 1),
        "failed_per_thread": _per_thread(stats.failures),
        "failure_kinds": _kinds(stats.failures),
        # the first ones and the last ones: when the failures stopped matters as much as how they started
        "failures": stats.failures if len(stats.failures) <= 12 else [*stats.failures[:8], "...", *stats.failures[-4:]],
    }
    lost = unreadable_acks(d.client, stats.acked)
    figures["lost_acknowledged_writes"] = len(lost)
    report_figures(f"distributed: {scenario}", figures)
    assert healthy
    assert failed_before == 0, stats.failures
    assert lost == [], lost[:20]
    assert len(stats.acked) > 50, figures
    assert figures["serving_again_after_s"] < SERVING_WITHIN_S, figures  # type: ignore[operator]
    assert figures["failed_share"] < FAILED_SHARE_MAX, figures  # type: ignore[operator]
    if s.watch is watch_vip:
        # back up, the recovered balancer does not take the address back (nopreempt): no second interruption
        time.sleep(8)
        assert vip_holders(lab_, d) == [extra["new_vip_holder"]]
    # every front node takes its share of the traffic again
    wait_for(lambda: len({node_of(d.client()) for _ in range(12)}) >= 2, 60, "both front nodes serving")


# --------------------------------------------------------------------------- remove-node per component (issue 15)
# Run after the failure scenarios (they need every host). Each removal but the last brings its host back with
# `add-node` (the operator's way back, clearing the removal record), so the inventory stays valid for the next
# one; the Patroni leader's removal comes last and leaves the cluster with two database members.


def remove_node(lab_: Lab, host: str, *flags: str, timeout: float = 1500) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NXP, "remove-node", "-i", str(lab_.inventory), host, "--progress", "plain", *flags],
        capture_output=True, text=True, timeout=timeout,
    )


def add_node(lab_: Lab, host: str, timeout: float = 2400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NXP, "add-node", "-i", str(lab_.inventory), host, "--progress", "plain"],
        capture_output=True, text=True, timeout=timeout,
    )


def etcd_member_names(lab_: Lab, d: Deployed, ask: str) -> list[str]:
    """`etcdctl member list` on `ask`, with that member's own client certificate."""
    certs = d.cluster.derived["tls"]["certs"][ask]["paths"].get("etcd") or {}
    tls = (f"--cacert={d.cluster.derived['tls']['ca_path']} --cert={certs['cert']} --key={certs['key']}"
           if d.cluster.derived["etcd"]["tls"] else "")
    member = next(m for m in d.cluster.derived["etcd"]["members"] if m["host"] == ask)
    out = lab_.ssh(ask, f"ETCDCTL_API=3 etcdctl --endpoints={member['client_url']} {tls} member list -w json",
                   timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    return sorted(m.get("name", "") for m in json.loads(out.stdout)["members"])


def unit_state(lab_: Lab, host: str, unit: str) -> tuple[str, str]:
    """(is-active, is-enabled) of a unit on a lab host."""
    out = lab_.ssh(host, f"systemctl is-active {unit}; systemctl is-enabled {unit}", timeout=30)
    lines = [*out.stdout.split(), "?", "?"][:2]
    return lines[0], lines[1]


def lb_backends(lab_: Lab, lb: str) -> str:
    return lab_.ssh(lb, "cat /etc/haproxy/haproxy.cfg", timeout=30).stdout


def _under_load(lab_: Lab, d: Deployed, name: str, action: Callable[[], dict[str, object]]) -> dict[str, object]:
    """Runs `action` under the steady load through the virtual IP; every acknowledged write must be readable
    after it. Returns the figures (reported, and in NXPROVISION_HA_REPORT when set)."""
    with SteadyLoad(d.client, threads=LOAD_THREADS) as load:
        wait_for(lambda: len(load.stats.acked) >= 10, 120, "the load to get going")
        time.sleep(5)
        failed_before = len(load.stats.failures)
        t0 = time.monotonic()
        figures = action()
        figures["action_s"] = round(time.monotonic() - t0, 1)
        time.sleep(10)  # load on the cluster without the host
    stats = load.stats
    total = stats.requests + len(stats.failures)
    lost = unreadable_acks(d.client, stats.acked)
    figures |= {
        "requests": total, "failed": len(stats.failures), "failed_before": failed_before,
        "failed_share": round(len(stats.failures) / max(total, 1), 5), "acknowledged_writes": len(stats.acked),
        "lost_acknowledged_writes": len(lost), "failure_kinds": _kinds(stats.failures),
        "failures": stats.failures if len(stats.failures) <= 12 else [*stats.failures[:8], "...", *stats.failures[-4:]],
    }
    report_figures(f"distributed: remove-node {name}", figures)
    assert failed_before == 0, stats.failures
    assert lost == [], lost[:20]
    assert len(stats.acked) > 20, figures
    return figures


def _healthy(lab_: Lab) -> Deployed:
    d = Deployed.load(lab_.inventory)
    wait_for(lambda: (lambda h: h if h[0] else None)(distributed_health(lab_, d)), HEALTHY_WITHIN_S,
             "a healthy cluster", interval=3)
    return d


def test_remove_etcd_member_refused_below_quorum(distributed) -> None:
    """One etcd member powered off: removing another would leave 1 healthy of 2, no quorum. Refused, even with
    --force, before anything changed."""
    lab_, _first = distributed
    d = _healthy(lab_)
    leader, _ = leader_and_other(lab_, d)
    dead, target = [h for h in d.cluster.db_hosts if h != leader][:2]
    lab("kill", "--name", lab_.name, dead, timeout=300)
    try:
        r = remove_node(lab_, target, "--force")
        out = r.stdout + r.stderr
        assert r.returncode != 0, out[-4000:]
        assert "quorum" in out and "is refused" in out, out[-4000:]
        # nothing changed: the target still runs Patroni and etcd, still an etcd member, no removal recorded
        assert unit_state(lab_, target, "patroni") == ("active", "enabled")
        assert unit_state(lab_, target, "etcd") == ("active", "enabled")
        assert etcd_member_names(lab_, d, leader) == sorted(d.cluster.etcd_hosts)
        assert not (lab_.inventory / ".nxprovision-removed.yml").exists()
    finally:
        lab("start", "--name", lab_.name, dead, timeout=300)
    _healthy(lab_)


def test_remove_powered_off_front_node_with_unreachable(distributed) -> None:
    lab_, _first = distributed
    d = _healthy(lab_)
    victim = "front2"
    route = d.cluster.derived["lb"]["backends"][1]
    assert route["host"] == victim, route

    def act() -> dict[str, object]:
        lab("kill", "--name", lab_.name, victim, timeout=300)
        r = remove_node(lab_, victim, "--unreachable", "--force")
        assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
        assert "without contacting it" in r.stdout
        assert victim not in recap(r.stdout), "the dead host was part of the run"
        return {"host": victim}

    _under_load(lab_, d, "powered-off front node (--unreachable)", act)
    for lb in d.cluster.lb_hosts:  # the surviving balancers render their pool without it
        cfg = lb_backends(lab_, lb)
        assert not re.search(rf"(?m)^\s*server {victim}\s", cfg), cfg
        assert f"{route['address']}:{route['port']}" not in cfg, cfg
    # back: powered on and added again (the operator's way back; clears the removal record)
    lab("start", "--name", lab_.name, victim, timeout=300)
    back = add_node(lab_, victim)
    assert back.returncode == 0, back.stdout[-6000:] + back.stderr[-2000:]
    _healthy(lab_)


def test_remove_load_balancer_holding_the_virtual_ip(distributed) -> None:
    lab_, _first = distributed
    d = _healthy(lab_)
    holder = active_lb(lab_, d)
    other = next(h for h in d.cluster.lb_hosts if h != holder)

    def act() -> dict[str, object]:
        r = remove_node(lab_, holder, "--force")
        assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
        return {"host": holder}

    _under_load(lab_, d, "load balancer holding the virtual IP", act)
    assert vip_holders(lab_, d) == [other]
    assert unit_state(lab_, holder, "keepalived") == ("inactive", "disabled")
    assert unit_state(lab_, holder, "haproxy") == ("inactive", "disabled")
    back = add_node(lab_, holder)
    assert back.returncode == 0, back.stdout[-6000:] + back.stderr[-2000:]
    _healthy(lab_)
    assert vip_holders(lab_, d) == [other]  # nopreempt: the address stays where it is


def test_remove_patroni_leader_after_switchover(distributed) -> None:
    lab_, _first = distributed
    d = _healthy(lab_)
    leader, ask = leader_and_other(lab_, d)

    def act() -> dict[str, object]:
        r = remove_node(lab_, leader, "--force")
        assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
        assert "switchover" in r.stdout.lower() or "Hand the leadership over" in r.stdout, r.stdout[-4000:]
        return {"host": leader}

    figures = _under_load(lab_, d, "Patroni leader (switchover first)", act)
    members = patroni_members(lab_, ask)
    assert sorted(m["Member"] for m in members) == sorted(h for h in d.cluster.db_hosts if h != leader), members
    new_leader = next(m["Member"] for m in members if m["Role"] == "Leader")
    assert new_leader != leader
    wait_for(lambda: all(m["State"] in ("streaming", "running") for m in patroni_members(lab_, ask)), 120,
             "the remaining replica streaming from the new leader")
    assert unit_state(lab_, leader, "patroni") == ("inactive", "disabled")
    assert unit_state(lab_, leader, "etcd") == ("inactive", "disabled")
    assert leader not in etcd_member_names(lab_, d, ask)
    assert lab_.ssh(leader, "pgrep -x postgres", timeout=30).returncode != 0, "PostgreSQL still runs"
    print(f"new leader {new_leader}; figures {figures}")
