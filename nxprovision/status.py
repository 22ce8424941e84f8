"""`nxprovision status`: a live health table of every component, probed from where the operator runs it (or, with
--via-hosts, by the cluster's own hosts: the same probes, see collect_via_hosts).

Probes speak each component's own protocol over the network (Nuxeo's runningstatus, HAProxy's stats
CSV, the search cluster's health API, TCP for the database and Kafka, HTTP for S3), in parallel. The links the
cluster runs over TLS (PostgreSQL, search, Kafka, S3) are probed with TLS, verified with the cluster CA of the
inventory. No credential is sent in clear: a Nuxeo node's own port is plain http, so it is asked only the
unauthenticated runningstatus; its version (a login) is asked through the load balancer's https.
"""

from __future__ import annotations

import csv
import io
import json
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from nxprovision.ansibleopts import AnsibleOptions
from nxprovision.model.cluster import Cluster, host_setting
from nxprovision.status_remote import http as _http
from nxprovision.status_remote import pg_tls_handshake as _pg_tls_handshake
from nxprovision.status_remote import tcp as _tcp
from nxprovision.status_remote import tls_handshake as _tls_handshake


@dataclass
class Row:
    host: str
    component: str
    address: str
    health: str  # ok | degraded | down | unknown
    version: str = ""
    # What the server itself declares about its limits (a test double answering the product's APIs says so here).
    notice: str = ""
    lb_state: str = ""
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.health == "ok"


def tls_context(c: Cluster) -> ssl.SSLContext | None:
    """A client context trusting the inventory's CA certificate (nx_tls_ca_cert_file), names checked; None when
    the cluster has no TLS or the certificate is not on this machine."""
    tls = c.derived.get("tls") or {}
    if not tls.get("enabled"):
        return None
    src = Path(str(c.view.source))
    if c.view.source in ("", "ansible") or not src.exists():
        return None
    base = src if src.is_dir() else src.parent
    ca = Path(tls["ca_cert_file"]) if Path(tls["ca_cert_file"]).is_absolute() else base / tls["ca_cert_file"]
    if not ca.is_file():
        return None
    return ssl.create_default_context(cafile=str(ca))


class Net:
    """How a probe reaches a server. A login is named (user, the setting holding its password), so the password is
    read where the request leaves: from the inventory here (LocalNet), on the host with --via-hosts."""

    def http(self, url: str, auth: tuple[str, str] | None = None, context: ssl.SSLContext | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, bytes, dict]:
        raise NotImplementedError

    def tcp(self, address: str, port: int) -> bool:
        raise NotImplementedError

    def tls(self, address: str, port: int, context: ssl.SSLContext) -> str:
        raise NotImplementedError

    def pg_tls(self, address: str, port: int, context: ssl.SSLContext) -> str:
        raise NotImplementedError


class LocalNet(Net):
    """From this machine."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings

    def http(self, url: str, auth: tuple[str, str] | None = None, context: ssl.SSLContext | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, bytes, dict]:
        login = (auth[0], str(self.settings.get(auth[1], ""))) if auth else None
        return _http(url, login, context=context, **({"headers": headers} if headers else {}))

    def tcp(self, address: str, port: int) -> bool:
        return _tcp(address, port)

    def tls(self, address: str, port: int, context: ssl.SSLContext) -> str:
        return _tls_handshake(address, port, context)

    def pg_tls(self, address: str, port: int, context: ssl.SSLContext) -> str:
        return _pg_tls_handshake(address, port, context)


def lb_https_url(c: Cluster, ctx: ssl.SSLContext | None) -> str:
    """The public URL when it is the cluster's own HAProxy serving https with a certificate of the cluster CA
    (and that CA is on this machine); empty otherwise: nothing authenticated is asked then."""
    url = str(c.settings.get("nx_public_url") or "").rstrip("/")
    if ctx is None or not url.startswith("https://") or not (c.derived.get("tls") or {}).get("lb"):
        return ""
    return url


def _nuxeo(c: Cluster, host: str, ctx: ssl.SSLContext | None = None, net: Net | None = None) -> Row:
    net = net or LocalNet(c.settings)
    node = c.node(host)
    assert node is not None
    # The node's own port is plain http: only runningstatus, which needs no credentials.
    base = f"http://{node.address}:{node.port}/nuxeo"
    row = Row(host, f"nuxeo ({node.role})", node.address, "unknown")
    try:
        code, body, _ = net.http(base + "/runningstatus")
        data = json.loads(body or b"{}") if body.strip().startswith(b"{") else {}
        row.notice = str(data.get("notice") or "")
        failing = [k for k, v in data.items() if k.endswith("Status") and v != "ok"]
        row.health = "ok" if code == 200 else ("degraded" if data else "down")
        row.detail = f"probes failing: {', '.join(failing)}" if failing else f"runningstatus {code}"
    except (OSError, ValueError) as exc:
        row.health, row.detail = "down", f"unreachable: {getattr(exc, 'reason', exc)}"
        return row
    lb = lb_https_url(c, ctx)
    if node.role == "front" and lb and row.health != "down":
        # The version needs a login: through the load balancer's https, verified with the cluster CA, routed to
        # this very node by the session cookie's jvmRoute suffix (what HAProxy's stickiness reads).
        try:
            code, body, _ = net.http(lb + "/json/cmis", ("Administrator", "nx_secret_nuxeo_admin_password"),
                                     context=ctx, headers={"Cookie": f"JSESSIONID=nxstatus.{node.jvm_route}"})
            if code == 200:
                row.version = str(json.loads(body).get("default", {}).get("productVersion", ""))
            elif code == 401:
                row.detail += "; the vault's Administrator password is refused"
        except (OSError, ValueError) as exc:
            row.detail += f"; version not read through {lb}: {getattr(exc, 'reason', exc)}"
    return row


def _haproxy(c: Cluster, host: str, ctx: ssl.SSLContext | None = None, net: Net | None = None) -> list[Row]:
    net = net or LocalNet(c.settings)
    addr = c.hosts[host].address
    port = int(host_setting(c.view, c.settings, host, "haproxy_stats_port") or 8404)
    user = str(host_setting(c.view, c.settings, host, "haproxy_stats_user") or "admin")
    stats = c.derived["lb"].get("stats") or {}
    row = Row(host, "haproxy", addr, "unknown")
    rows = [row]
    if not stats.get("enabled", True):
        # no stats page to read the backends from: the frontend answering is all that can be told from outside
        up = net.tcp(addr, int(c.derived["lb"]["frontend_port"]))
        row.health, row.detail = ("ok", "frontend listening (stats page off)") if up else ("down", "frontend closed")
        return rows
    # the password goes over TLS whenever the stats page has it, verified with the cluster CA
    scheme = "https" if stats.get("tls") else "http"
    try:
        code, body, _ = net.http(f"{scheme}://{addr}:{port}/stats;csv", (user, "nx_secret_haproxy_stats_password"),
                                 context=ctx)
        if code != 200:
            row.health, row.detail = "down", f"stats answered {code}"
            return rows
        reader = csv.DictReader(io.StringIO(body.decode().lstrip("# ")))
        up = 0
        for rec in reader:
            if rec.get("pxname") == "nuxeo" and rec.get("svname") not in ("FRONTEND", "BACKEND"):
                state = (rec.get("status") or "").split()[0]
                if state == "UP" and rec.get("weight") == "0":
                    state = "DRAIN"
                row.extra.setdefault("servers", {})[rec["svname"]] = state
                up += state == "UP"
        total = len(row.extra.get("servers", {}))
        row.health = "ok" if total and up == total else ("degraded" if up else "down")
        row.detail = f"{up}/{total} Nuxeo servers UP"
    except (OSError, ValueError) as exc:
        row.health, row.detail = "down", f"unreachable: {getattr(exc, 'reason', exc)}"
    return rows


def _search(c: Cluster, host: str, ctx: ssl.SSLContext | None = None, net: Net | None = None) -> Row:
    net = net or LocalNet(c.settings)
    addr = c.hosts[host].address
    port = c.derived["search"]["http_port"]
    scheme = "https" if c.derived["search"].get("tls") else "http"
    row = Row(host, "opensearch", addr, "unknown")
    security = c.derived["search"].get("security") or {}
    # With the security plugin's users: the admin user (the role's own), over the https the plugin requires
    auth = ("admin", str(security["users"]["admin"]["secret"])) if security.get("enabled") else None
    try:
        code, body, _ = net.http(f"{scheme}://{addr}:{port}/_cluster/health", auth, context=ctx)
        if code in (401, 403):
            row.health, row.detail = "down", f"the search node refused the admin user's credentials ({code})"
            return row
        data = json.loads(body or b"{}")
        status = data.get("status", "?")
        row.health = {"green": "ok", "yellow": "degraded"}.get(status, "down")
        row.detail = f"cluster {status}, {data.get('number_of_nodes', '?')} node(s)" + (", https" if ctx else "")
        row.notice = str(data.get("notice") or "")
        _code, body, _ = net.http(f"{scheme}://{addr}:{port}/", auth, context=ctx)
        row.version = str(json.loads(body or b"{}").get("version", {}).get("number", ""))
    except (OSError, ValueError) as exc:
        row.health, row.detail = "down", f"unreachable: {getattr(exc, 'reason', exc)}"
    return row


def _tcp_row(c: Cluster, host: str, component: str, port: int, role: str = "", net: Net | None = None) -> Row:
    addr = c.hosts[host].address
    ok = (net or LocalNet(c.settings)).tcp(addr, port)
    return Row(host, component, addr, "ok" if ok else "down", detail=(role + " " if role else "")
               + (f"port {port} open" if ok else f"port {port} refused or unreachable"))


def _postgresql(c: Cluster, host: str, port: int, role: str, ctx: ssl.SSLContext | None,
                net: Net | None = None) -> Row:
    net = net or LocalNet(c.settings)
    row = _tcp_row(c, host, "postgresql", port, role, net)
    # The same check for every server, Patroni members included: any of them may serve Nuxeo after a failover.
    if row.health == "ok" and ctx is not None and c.derived["db"].get("ssl"):
        try:
            row.extra["tls"] = net.pg_tls(row.address, port, ctx)
            row.detail = f"{role} port {port} open, {row.extra['tls']} verified with the CA"
        except (OSError, ValueError) as exc:
            row.health, row.detail = "down", f"{role} TLS handshake failed: {exc}"
    return row


def _kafka(c: Cluster, host: str, port: int, role: str, ctx: ssl.SSLContext | None, net: Net | None = None) -> Row:
    net = net or LocalNet(c.settings)
    row = _tcp_row(c, host, "kafka", port, role, net)
    if row.health == "ok" and ctx is not None and c.derived["kafka"].get("tls"):
        try:
            row.detail = f"{role} SSL listener, {net.tls(row.address, port, ctx)} verified with the CA"
        except (OSError, ValueError) as exc:
            row.health, row.detail = "down", f"{role} TLS handshake failed: {exc}"
    return row


def _s3(c: Cluster, host: str, ctx: ssl.SSLContext | None = None, net: Net | None = None) -> Row:
    net = net or LocalNet(c.settings)
    addr = c.hosts[host].address
    port = int(host_setting(c.view, c.settings, host, "seaweedfs_s3_port") or 8333)
    scheme = "https" if c.derived["s3"].get("tls") else "http"
    row = Row(host, "s3 (seaweedfs)", addr, "unknown")
    try:
        code, _body, _ = net.http(f"{scheme}://{addr}:{port}/", context=ctx)
        row.health = "ok" if code < 500 else "down"
        row.detail = f"S3 API answered {code}" + (" over https" if scheme == "https" else "")
    except (OSError, ValueError) as exc:
        row.health, row.detail = "down", f"unreachable: {getattr(exc, 'reason', exc)}"
    return row


# A probe of one component on one host: (kind, host, run it through a Net). The kind chooses the host that probes it
# with --via-hosts.
Job = tuple[str, str, Callable[[Net], "Row | list[Row]"]]


def _jobs(c: Cluster, ctx: ssl.SSLContext | None) -> list[Job]:
    jobs: list[Job] = []
    for h in c.lb_hosts:
        jobs.append(("haproxy", h, lambda net, h=h: _haproxy(c, h, ctx, net)))
    for n in c.nuxeo_nodes:
        jobs.append(("nuxeo", n.host, lambda net, h=n.host: _nuxeo(c, h, ctx, net)))
    db = c.derived["db"]
    for h in c.db_hosts:
        role = "primary" if h == db.get("primary") else "replica"
        port = int(db.get("port", 5432))
        if c.database == "postgresql":
            jobs.append(("database", h, lambda net, h=h, role=role, port=port: _postgresql(c, h, port, role, ctx, net)))
        else:
            jobs.append(("database", h, lambda net, h=h, role=role, port=port:
                         _tcp_row(c, h, c.database, port, role, net)))
    for h in c.search_hosts:
        jobs.append(("search", h, lambda net, h=h: _search(c, h, ctx, net)))
    for b in c.kafka_brokers:
        jobs.append(("kafka", b.host, lambda net, b=b: _kafka(c, b.host, b.port, f"broker {b.node_id}", ctx, net)))
    if c.settings.get("s3_mode") == "seaweedfs":
        for h in c.s3_hosts:
            jobs.append(("s3", h, lambda net, h=h: _s3(c, h, ctx, net)))
    return jobs


def _flatten(results: list[Row | list[Row]]) -> list[Row]:
    rows: list[Row] = []
    for r in results:
        rows.extend(r if isinstance(r, list) else [r])
    return rows


def _lb_states(c: Cluster, rows: list[Row]) -> None:
    """Each Nuxeo node's state as the load balancers' stats pages list it (UP on any of them wins)."""
    lb_states: dict[str, str] = {}
    for r in rows:
        for server, state in r.extra.get("servers", {}).items():
            lb_states[server] = state if server not in lb_states or state == "UP" else lb_states[server]
    for r in rows:
        node = c.node(r.host)
        if node and node.role == "front":
            r.lb_state = lb_states.get(node.jvm_route, "-")


def collect(c: Cluster) -> list[Row]:
    net = LocalNet(c.settings)
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(run, net) for _kind, _host, run in _jobs(c, tls_context(c))]
        rows = _flatten([f.result() for f in futures])
    _lb_states(c, rows)
    return rows


# -- --via-hosts: the same probes, run by the cluster's own hosts (behind a bastion, the controller reaches only SSH) --


class HostCA(ssl.SSLContext):
    """Stands for the cluster CA the tls role installed on every host (nx.tls.ca_path): with --via-hosts the host
    running a probe verifies the server with it. Never used to connect from here."""


def prober(c: Cluster, kind: str, host: str) -> str:
    """The host that probes KIND on HOST: one that talks to it anyway, as the firewall model admits it
    (model/firewall.py): a load balancer asks its own stats page and the Nuxeo nodes it balances (each node
    itself without one); a Nuxeo node asks the database, search, Kafka and S3 servers it uses."""
    nuxeo_hosts = [n.host for n in c.nuxeo_nodes]
    if kind == "haproxy":
        return host
    if kind == "nuxeo":
        return c.lb_hosts[0] if c.lb_hosts else host
    # a server that is itself a Nuxeo host (single) is asked by that host, over its own address
    return host if host in nuxeo_hosts or not nuxeo_hosts else nuxeo_hosts[0]


def _call_key(call: dict[str, Any]) -> str:
    return json.dumps(call, sort_keys=True)


class PlanNet(Net):
    """Records what a probe would ask, answering as a healthy server would, so the probe walks its longest path
    (the version after runningstatus, the TLS handshake after the open port)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def http(self, url: str, auth: tuple[str, str] | None = None, context: ssl.SSLContext | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, bytes, dict]:
        self.calls.append({"kind": "http", "url": url, "auth": list(auth) if auth else None,
                           "ca": context is not None, "headers": headers or {}})
        return 200, b"{}", {}

    def tcp(self, address: str, port: int) -> bool:
        self.calls.append({"kind": "tcp", "address": address, "port": port})
        return True

    def tls(self, address: str, port: int, context: ssl.SSLContext) -> str:
        self.calls.append({"kind": "tls", "address": address, "port": port, "ca": True})
        return "TLSv1.3"

    def pg_tls(self, address: str, port: int, context: ssl.SSLContext) -> str:
        self.calls.append({"kind": "pg_tls", "address": address, "port": port, "ca": True})
        return "TLSv1.3"


class ReplayNet(Net):
    """Answers a probe from what its host saw (status_remote's answers by call). A call the host did not answer
    fails as an unreachable server would, and is remembered: the rows of that probe then say why (via_rows)."""

    def __init__(self, ids: dict[str, str], answers: dict[str, Any] | None, missing: str) -> None:
        self.ids, self.answers, self.missing = ids, answers, missing
        self.missed = False

    def _answer(self, call: dict[str, Any]) -> dict[str, Any]:
        got = (self.answers or {}).get(self.ids.get(_call_key(call), ""))
        if not isinstance(got, dict):
            self.missed = True
            raise OSError(self.missing)
        if "error" in got:
            raise (ValueError if got.get("type") == "ValueError" else OSError)(str(got["error"]))
        return got

    def http(self, url: str, auth: tuple[str, str] | None = None, context: ssl.SSLContext | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, bytes, dict]:
        got = self._answer({"kind": "http", "url": url, "auth": list(auth) if auth else None,
                            "ca": context is not None, "headers": headers or {}})
        return int(got.get("code") or 0), str(got.get("body") or "").encode(), {}

    def tcp(self, address: str, port: int) -> bool:
        try:
            return bool(self._answer({"kind": "tcp", "address": address, "port": port}).get("open"))
        except OSError:
            return False  # as the controller's own TCP probe answers; the row says why (missed)

    def tls(self, address: str, port: int, context: ssl.SSLContext) -> str:
        return str(self._answer({"kind": "tls", "address": address, "port": port, "ca": True}).get("version"))

    def pg_tls(self, address: str, port: int, context: ssl.SSLContext) -> str:
        return str(self._answer({"kind": "pg_tls", "address": address, "port": port, "ca": True}).get("version"))


@dataclass
class ViaPlan:
    """What each host probes: {host: [call with its id]}, the ids of each call by host, the secrets' names the
    calls log in with (the hosts read the values from the inventory's vault), and who probes each job."""

    probes: dict[str, list[dict[str, Any]]]
    ids: dict[str, dict[str, str]]
    secret_names: list[str]
    source: list[str]


def via_plan(c: Cluster, jobs: list[Job]) -> ViaPlan:
    plan = ViaPlan({}, {}, [], [])
    for kind, host, run in jobs:
        src = prober(c, kind, host)
        plan.source.append(src)
        rec = PlanNet()
        run(rec)
        ids = plan.ids.setdefault(src, {})
        for call in rec.calls:
            key = _call_key(call)
            if key not in ids:
                ids[key] = f"p{len(ids)}"
                plan.probes.setdefault(src, []).append(call | {"id": ids[key]})
            if call.get("auth") and call["auth"][1] not in plan.secret_names:
                plan.secret_names.append(call["auth"][1])
    return plan


def via_rows(c: Cluster, jobs: list[Job], plan: ViaPlan, found: dict[tuple[str, str], Any],
             secrets: list[str]) -> list[Row]:
    """The rows the probes make of their hosts' answers, secrets masked in every text a host sent back."""
    from nxprovision.runevents import Masker

    mask = Masker(secrets)
    rows: list[Row] = []
    for (_kind, _host, run), src in zip(jobs, plan.source, strict=True):
        raw = found.get((src, "via"))
        answers, missing = _via_answers(raw, src)
        net = ReplayNet(plan.ids.get(src, {}), answers, missing)
        got = _flatten([run(net)])
        if net.missed:
            # not seen is not seen down: the health is unknown (still unhealthy, exit 1), and the detail says why
            for r in got:
                r.health, r.detail = "unknown", net.missing
        rows.extend(got)
    for r in rows:
        r.detail, r.notice, r.version = mask(r.detail), mask(r.notice), mask(r.version)
        r.extra = mask.data(r.extra)
    _lb_states(c, rows)
    return rows


def _via_answers(raw: Any, src: str) -> tuple[dict[str, Any] | None, str]:
    """The answers a host reported (the probe task's rc, stdout, stderr) or why there are none."""
    if not isinstance(raw, dict):
        return None, f"not probed: {src} did not answer over SSH"
    try:
        answers = json.loads(str(raw.get("stdout") or "")) if isinstance(raw.get("stdout"), str) else raw["stdout"]
    except (ValueError, KeyError):
        answers = None
    if not isinstance(answers, dict):
        why = str(raw.get("stderr") or "").strip().splitlines()[-1:] or [f"rc {raw.get('rc')}"]
        return None, f"not probed: the probe failed on {src}: {why[0][-160:]}"
    return answers, f"not probed from {src}"


def collect_via_hosts(c: Cluster, inventory: Path, vault_password_file: Path | None, secrets: list[str],
                      options: Any = None, quick: bool = False) -> list[Row]:
    """`status --via-hosts`: every probe of `collect`, run by a host of the cluster (prober), in the SSH probe's
    playbook run (status_probe.yml; its own reads too unless QUICK); the same rows."""
    ctx = HostCA(ssl.PROTOCOL_TLS_CLIENT) if (c.derived.get("tls") or {}).get("enabled") else None
    jobs = _jobs(c, ctx)
    plan = via_plan(c, jobs)
    found = probe_hosts(c, inventory, vault_password_file, secrets, options, via=plan, quick=quick)
    rows = via_rows(c, jobs, plan, found, secrets)
    if not quick:
        apply_probes(c, rows, found)
    return rows


def as_json(rows: list[Row]) -> list[dict[str, Any]]:
    return [asdict(r) | {"healthy": r.healthy} for r in rows]


# -- what only the hosts themselves can tell (over SSH, through playbooks/status_probe.yml) -------------------

PROBE_TASKS = {
    "Report what this host's probes saw": "via",
    "Read the server's role and replication state": "postgresql",
    "List the under-replicated partitions this broker sees": "kafka",
    "Read the member's state in its replica set": "mongodb",
}


def probe_hosts(
    c: Cluster, inventory: Path, vault_password_file: Path | None, secrets: list[str], options: Any = None,
    via: ViaPlan | None = None, quick: bool = False,
) -> dict[tuple[str, str], Any]:
    """Run the read-only probe playbook; returns {(host, 'postgresql'|'kafka'|'mongodb'|'via'): result} for hosts
    that answered. VIA: the probes each host runs for --via-hosts (QUICK: only those)."""
    from nxprovision.runner import run_playbook

    found: dict[tuple[str, str], Any] = {}

    def collect_event(event: dict[str, Any]) -> None:
        data = event.get("event_data") or {}
        what = PROBE_TASKS.get(str(data.get("task", "")))
        if event.get("event") == "runner_on_ok" and what:
            res = data.get("res") or {}
            found[(str(data.get("host")), what)] = res.get("msg") if what == "via" else res

    from nxprovision.errors import NxError

    try:
        _probe(c, inventory, vault_password_file, secrets, collect_event, run_playbook, options, via, quick)
    except NxError as exc:
        # the outside probes still report; the hosts' own answers need trusted SSH host keys
        import sys

        sys.stderr.write(f"nxprovision: no SSH probe: {exc}\n")
    return found


def _probe(c: Cluster, inventory: Path, vault_password_file: Path | None, secrets: list[str], collect_event: Any,
           run_playbook: Any, options: Any = None, via: ViaPlan | None = None, quick: bool = False) -> None:
    import io

    from nxprovision import status_remote

    # names only: each host reads the passwords from the inventory's vault itself
    via_vars = {"status_via_plan": via.probes, "status_via_secret_names": via.secret_names,
                "status_via_script": status_remote.__file__,
                "status_via_ca_path": str((c.derived.get("tls") or {}).get("ca_path") or "")} if via else {}
    run_playbook(
        "status_probe.yml",
        inventory,
        verb="status-probe",
        vault_password_file=vault_password_file,
        secrets=secrets,
        extravars={"status_kafka_bootstrap": {b.host: f"{b.address}:{b.port}" for b in c.kafka_brokers},
                   # TLS brokers: the tools' client settings the kafka role wrote (SSL, the cluster CA)
                   "status_kafka_command_config": f"{c.settings.get('kafka_config_dir') or '/etc/kafka'}"
                                                  "/client.properties" if c.derived["kafka"].get("tls") else "",
                   "status_mongodb_port": int((c.derived.get("db") or {}).get("port") or 27017), **via_vars},
        tags="status_via" if via and quick else None,
        display=collect_event,
        out=io.StringIO(),
        # one task per host: Ansible's own strategy answers sooner than Mitogen's start, and a dead host is
        # reported after SSH's timeout rather than Mitogen's longer one (unless --mitogen asks for it)
        options=replace(options or AnsibleOptions(), mitogen=bool(options and options.mitogen)),
    )


def _mongodb_member(r: Row, res: dict[str, Any]) -> None:
    """A MongoDB server's own view (`hello`): its state in the replica set and the members it lists."""
    try:
        hello = json.loads(str(res.get("stdout") or "").strip())
    except ValueError:
        r.health, r.detail = "degraded", f"hello failed: {str(res.get('stderr') or '')[-120:]}"
        return
    r.extra["mongodb"] = hello
    r.notice = str(hello.get("notice") or "")
    if not hello.get("setName"):
        r.detail = "standalone" if not hello.get("isreplicaset") else "not in a replica set yet (not initiated)"
        if hello.get("isreplicaset"):
            r.health = "degraded"
        return
    state = "PRIMARY" if hello.get("isWritablePrimary") else "SECONDARY" if hello.get("secondary") else "OTHER"
    r.detail = (f"{state} of {hello['setName']}, {len(hello.get('hosts') or [])} member(s), "
                f"primary {hello.get('primary') or 'none'}")
    if state == "OTHER" or not hello.get("primary"):
        r.health = "degraded"


def apply_probes(c: Cluster, rows: list[Row], found: dict[tuple[str, str], Any]) -> None:
    """Fold the hosts' own answers into the rows: database roles and lag, Kafka under-replicated partitions."""
    replicas_expected = len((c.derived.get("db") or {}).get("replicas") or [])
    for r in rows:
        comp = r.component.split()[0]
        res = found.get((r.host, comp))
        if res is None or r.health == "down":
            continue
        if comp == "postgresql":
            try:
                info = json.loads(str(res.get("stdout") or "").strip())
            except ValueError:
                r.health, r.detail = "degraded", f"psql failed: {str(res.get('stderr') or '')[:120]}"
                continue
            r.extra["postgresql"] = info
            pending = info.get("pending_restart") or []
            if info.get("role") == "primary":
                r.detail = (
                    f"primary, {info['streaming_replicas']} streaming replica(s), "
                    f"max replay lag {info['max_lag_bytes']} B"
                )
                if info["streaming_replicas"] < replicas_expected and "patroni" not in (c.derived.get("db") or {}):
                    r.health = "degraded"
            else:
                r.detail = f"replica, {info.get('receiving') or 'not receiving'}, replay lag {info['replay_lag_s']} s"
                if info.get("receiving") != "streaming":
                    r.health = "degraded"
            if r.extra.get("tls"):
                r.detail += f", {r.extra['tls']} verified with the CA"
            if pending:
                r.detail += f"; pending restart: {', '.join(pending)}"
        elif comp == "mongodb":
            _mongodb_member(r, res)
        elif comp == "kafka":
            if res.get("rc") != 0:
                r.health, r.detail = "degraded", f"kafka-topics failed: {str(res.get('stderr') or '')[-120:]}"
                continue
            urp = [line for line in str(res.get("stdout") or "").splitlines() if line.strip()]
            r.extra["under_replicated_partitions"] = len(urp)
            r.detail += f", {len(urp)} under-replicated partition(s)"
            if urp:
                r.health = "degraded"
