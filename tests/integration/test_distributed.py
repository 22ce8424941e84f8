"""The distributed architecture (no single point of failure) deployed into the lab, verified from outside.

2 load balancers sharing a virtual IP (keepalived); 2 Nuxeo front nodes and 1 worker; 3 search; 3 PostgreSQL
under Patroni with a 3-member etcd (on the database hosts); 3 Kafka brokers; 1 S3 host (issue 7).

Then failures under a steady load of the official client through the virtual IP: the active load balancer
is powered off (test_lb_failover_under_load), and, marked slow and ha, the database leader
(test_database_leader_failover_under_load).

NXPROVISION_TEST_LAB=<name> runs the tests against an existing, already deployed distributed lab of that
name and leaves it up (a development shortcut: the first deploy is then the one already done).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_checks import Deployed, recap, runningstatus, wait_for
from conftest import Lab, bring_up, lab, lab_name, require_lab_machine
from load import SteadyLoad, report_figures, unreadable_acks

# The 15-host distributed lab takes 15-20 minutes on this 2-core machine: it runs with `make test-long` and
# `make test-ha`, outside the default CI run, until CI time allows it back (issue #7).
pytestmark = [pytest.mark.lab, pytest.mark.slow]

NXP = [sys.executable, "-m", "nxprovision.cli"]
PATRONICTL = "patronictl -c /etc/patroni/config.yml"
SERVICES = ["haproxy", "keepalived", "nuxeo", "patroni", "etcd", "opensearch", "kafka", "seaweedfs"]
LOAD_THREADS = 4


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


def patroni_rest_leader(d: Deployed, hosts: list[str]) -> str | None:
    """The leader as Patroni's REST API (port 8008) of any reachable member reports it, straight from here."""
    import urllib.request

    port = d.cluster.derived["db"]["patroni"]["rest_port"]
    for h in hosts:
        try:
            with urllib.request.urlopen(f"http://{d.address(h)}:{port}/cluster", timeout=2) as r:
                members = json.loads(r.read())["members"]
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


# --------------------------------------------------------------------------- failures under load


@pytest.mark.ha
def _failure_time(line: str, ref: float) -> float:
    """load.py stamps failures with the wall clock's HH:MM:SS: place it on ref's day."""
    hh, mm, ss = (int(x) for x in line.split()[0].split(":"))
    day = time.localtime(ref)
    return time.mktime((day.tm_year, day.tm_mon, day.tm_mday, hh, mm, ss, 0, 0, -1))


def _outside_window(failures: list[str], start: float, end: float) -> list[str]:
    # one second of slack each side: the stamps have a resolution of one second
    return [f for f in failures if not start - 1 <= _failure_time(f, start) <= end + 1]


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


def test_lb_failover_under_load(distributed) -> None:
    lab_, _ = distributed
    d = Deployed.load(lab_.inventory)
    holders = vip_holders(lab_, d)
    assert len(holders) == 1, holders
    active = holders[0]
    standby = next(h for h in d.cluster.lb_hosts if h != active)
    with Prober(d.url) as probe, SteadyLoad(d.client, threads=LOAD_THREADS) as load:
        time.sleep(15)
        before = (load.stats.requests, len(load.stats.failures))
        t_kill, wall_kill = time.monotonic(), time.time()
        lab("kill", "--name", lab_.name, active)
        wait_for(lambda: vip_holders(lab_, d) == [standby], 30, f"the virtual IP on {standby}", interval=0.5)
        t_moved = time.monotonic() - t_kill
        wait_for(lambda: probe.recovered_after(t_kill) is not None, 60, "answers through the virtual IP again")
        time.sleep(15)
        load.stop()
    recovered = probe.recovered_after(t_kill)
    lost = unreadable_acks(d.client, load.stats.acked)
    figures = {
        "killed": active,
        "new_holder": standby,
        "requests_before_kill": before[0],
        "requests_total": load.stats.requests,
        "failed_before_kill": before[1],
        "failed_total": len(load.stats.failures),
        "failures": load.stats.failures,
        "acknowledged_writes": len(load.stats.acked),
        "lost_writes": len(lost),
        "vip_moved_seen_by_ssh_s": round(t_moved, 1),
        "time_to_recover_s": round(recovered or -1, 1),
        "failed_per_thread": _per_thread(load.stats.failures),
        "failure_kinds": _kinds(load.stats.failures),
    }
    attempts = load.stats.requests + len(load.stats.failures)
    figures["failed_share"] = round(len(load.stats.failures) / max(attempts, 1), 5)
    report_figures("lb_failover", figures)
    try:
        assert before[1] == 0, load.stats.failures
        assert lost == [], lost
        assert figures["failed_share"] < 0.01, figures  # the target: under 1 % of the load
        assert recovered is not None and recovered < 15, figures
        # Requests fail only while no load balancer answers on the address: those in flight on the dead one,
        # and (retries being off) those the clients send before the survivor announces it (gratuitous ARP).
        outside = _outside_window(load.stats.failures, wall_kill, wall_kill + recovered + 2)
        assert outside == [], outside
    finally:
        lab("start", "--name", lab_.name, active, timeout=300)
    # Back up, the recovered balancer does not take the address back (nopreempt): no second interruption.
    wait_for(
        lambda: lab_.ssh(active, "systemctl is-active keepalived haproxy").returncode == 0,
        120,
        f"keepalived and haproxy on {active}",
    )
    time.sleep(8)
    assert vip_holders(lab_, d) == [standby]


@pytest.mark.slow
@pytest.mark.ha
def test_database_leader_failover_under_load(distributed) -> None:
    lab_, _ = distributed
    d = Deployed.load(lab_.inventory)
    leader, survivor = leader_and_other(lab_, d)
    with Prober(d.url) as probe, SteadyLoad(d.client, threads=LOAD_THREADS) as load:
        time.sleep(15)
        before = (load.stats.requests, len(load.stats.failures))
        t_kill, wall_kill = time.monotonic(), time.time()
        lab("kill", "--name", lab_.name, leader)

        others = [h for h in d.cluster.db_hosts if h != leader]
        promoted = wait_for(
            lambda: (lambda x: x if x not in (None, leader) else None)(patroni_rest_leader(d, others)),
            90,
            "a new Patroni leader",
            interval=0.5,
        )
        t_promoted = time.monotonic() - t_kill
        wait_for(lambda: probe.recovered_after(t_kill) is not None, 90, "runningstatus 200 again")
        time.sleep(25)
        load.stop()
    # runningstatus caches its probes (about 20 s): it is reported, the load decides when writes work again
    recovered = probe.recovered_after(t_kill)
    last_failure = max((_failure_time(f, wall_kill) - wall_kill for f in load.stats.failures), default=0.0)
    healthy = last_failure + 1  # the stamps have a one-second resolution
    lost = unreadable_acks(d.client, load.stats.acked)
    figures = {
        "killed": leader,
        "new_leader": promoted,
        "promoted_after_s": round(t_promoted, 1),
        "time_to_recover_s": round(recovered or -1, 1),
        "requests_total": load.stats.requests,
        "failed_before_kill": before[1],
        "failed_total": len(load.stats.failures),
        "failures": load.stats.failures,
        "acknowledged_writes": len(load.stats.acked),
        "lost_writes": len(lost),
        "lost": lost,
        "failed_per_thread": _per_thread(load.stats.failures),
        "failure_kinds": _kinds(load.stats.failures),
        "last_failure_after_s": round(last_failure, 1),
        "time_to_healthy_s": round(healthy, 1),
    }
    report_figures("database_leader_failover", figures)
    try:
        assert lost == [], lost
        assert t_promoted < 30, figures
        # healthy: writes succeed again (no failure after that, the load ran 25 s more) within 30 s
        assert healthy < 30, figures
        assert recovered is not None, figures
    finally:
        lab("start", "--name", lab_.name, leader, timeout=300)
    # The old leader comes back as a replica of the new one (pg_rewind), streaming.
    wait_back_as_replica(lab_, leader, survivor)


@pytest.mark.slow
@pytest.mark.ha
def test_database_leader_host_rebooted_under_load(distributed) -> None:
    """A clean reboot of the Patroni leader's host: Patroni hands the leadership over while it stops."""
    lab_, _ = distributed
    d = Deployed.load(lab_.inventory)
    leader, survivor = leader_and_other(lab_, d)
    with SteadyLoad(d.client, threads=LOAD_THREADS) as load:
        time.sleep(15)
        wall_reboot = time.time()
        t0 = time.monotonic()
        lab("reboot", "--name", lab_.name, leader, timeout=300)
        t_back = time.monotonic() - t0
        wait_back_as_replica(lab_, leader, survivor)
        time.sleep(15)
    stats = load.stats
    lost = unreadable_acks(d.client, stats.acked)
    last_failure = max((t - wall_reboot for t in stats.failure_times), default=0.0)
    figures = {
        "rebooted": leader,
        "host_back_after_s": round(t_back, 1),
        "requests_total": stats.requests,
        "failed_total": len(stats.failures),
        "failed_share": round(len(stats.failures) / max(stats.requests + len(stats.failures), 1), 5),
        "failures": stats.failures[:20],
        "acknowledged_writes": len(stats.acked),
        "lost_writes": len(lost),
        "last_failure_after_s": round(last_failure, 1),
    }
    report_figures("database_leader_host_reboot", figures)
    assert lost == [], lost
    assert last_failure < 30, figures  # healthy again within 30 s of the reboot
