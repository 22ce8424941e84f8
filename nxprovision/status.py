"""`nxprovision status`: a live health table of every component, probed from where the operator runs it.

Probes speak each component's own protocol over the network (Nuxeo's runningstatus, HAProxy's stats
CSV, the search cluster's health API, TCP for the database and Kafka, HTTP for S3), in parallel. The links the
cluster runs over TLS (PostgreSQL, search, Kafka, S3) are probed with TLS, verified with the cluster CA of the
inventory. No credential is sent in clear: a Nuxeo node's own port is plain http, so it is asked only the
unauthenticated runningstatus; its version (a login) is asked through the load balancer's https.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import socket
import ssl
import struct
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nxprovision.model.cluster import Cluster, host_setting

TIMEOUT = 5.0


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


def _http(url: str, auth: tuple[str, str] | None = None, timeout: float = TIMEOUT,
          context: ssl.SSLContext | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict]:
    req = urllib.request.Request(url, headers=headers or {})
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context if url.startswith("https:") else None) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers or {})


def _tcp(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=TIMEOUT):
            return True
    except OSError:
        return False


def lb_https_url(c: Cluster, ctx: ssl.SSLContext | None) -> str:
    """The public URL when it is the cluster's own HAProxy serving https with a certificate of the cluster CA
    (and that CA is on this machine); empty otherwise: nothing authenticated is asked then."""
    url = str(c.settings.get("nx_public_url") or "").rstrip("/")
    if ctx is None or not url.startswith("https://") or not (c.derived.get("tls") or {}).get("lb"):
        return ""
    return url


def _nuxeo(c: Cluster, host: str, ctx: ssl.SSLContext | None = None) -> Row:
    node = c.node(host)
    assert node is not None
    # The node's own port is plain http: only runningstatus, which needs no credentials.
    base = f"http://{node.address}:{node.port}/nuxeo"
    row = Row(host, f"nuxeo ({node.role})", node.address, "unknown")
    try:
        code, body, _ = _http(base + "/runningstatus")
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
            code, body, _ = _http(lb + "/json/cmis",
                                  ("Administrator", str(c.settings.get("nx_secret_nuxeo_admin_password", ""))),
                                  context=ctx, headers={"Cookie": f"JSESSIONID=nxstatus.{node.jvm_route}"})
            if code == 200:
                row.version = str(json.loads(body).get("default", {}).get("productVersion", ""))
            elif code == 401:
                row.detail += "; the vault's Administrator password is refused"
        except (OSError, ValueError) as exc:
            row.detail += f"; version not read through {lb}: {getattr(exc, 'reason', exc)}"
    return row


def _haproxy(c: Cluster, host: str, ctx: ssl.SSLContext | None = None) -> list[Row]:
    addr = c.hosts[host].address
    port = int(host_setting(c.view, c.settings, host, "haproxy_stats_port") or 8404)
    user = str(host_setting(c.view, c.settings, host, "haproxy_stats_user") or "admin")
    stats = c.derived["lb"].get("stats") or {}
    row = Row(host, "haproxy", addr, "unknown")
    rows = [row]
    if not stats.get("enabled", True):
        # no stats page to read the backends from: the frontend answering is all that can be told from outside
        up = _tcp(addr, int(c.derived["lb"]["frontend_port"]))
        row.health, row.detail = ("ok", "frontend listening (stats page off)") if up else ("down", "frontend closed")
        return rows
    # the password goes over TLS whenever the stats page has it, verified with the cluster CA
    scheme = "https" if stats.get("tls") else "http"
    try:
        code, body, _ = _http(f"{scheme}://{addr}:{port}/stats;csv",
                              (user, str(c.settings.get("nx_secret_haproxy_stats_password", ""))), context=ctx)
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


def _search(c: Cluster, host: str, ctx: ssl.SSLContext | None = None) -> Row:
    addr = c.hosts[host].address
    port = c.derived["search"]["http_port"]
    scheme = "https" if c.derived["search"].get("tls") else "http"
    row = Row(host, "opensearch", addr, "unknown")
    security = c.derived["search"].get("security") or {}
    # With the security plugin's users: the admin user (the role's own), over the https the plugin requires
    auth = (("admin", str(c.settings.get(security["users"]["admin"]["secret"], "")))
            if security.get("enabled") else None)
    try:
        code, body, _ = _http(f"{scheme}://{addr}:{port}/_cluster/health", auth, context=ctx)
        if code in (401, 403):
            row.health, row.detail = "down", f"the search node refused the admin user's credentials ({code})"
            return row
        data = json.loads(body or b"{}")
        status = data.get("status", "?")
        row.health = {"green": "ok", "yellow": "degraded"}.get(status, "down")
        row.detail = f"cluster {status}, {data.get('number_of_nodes', '?')} node(s)" + (", https" if ctx else "")
        row.notice = str(data.get("notice") or "")
        _code, body, _ = _http(f"{scheme}://{addr}:{port}/", auth, context=ctx)
        row.version = str(json.loads(body or b"{}").get("version", {}).get("number", ""))
    except (OSError, ValueError) as exc:
        row.health, row.detail = "down", f"unreachable: {getattr(exc, 'reason', exc)}"
    return row


def _tcp_row(c: Cluster, host: str, component: str, port: int, role: str = "") -> Row:
    addr = c.hosts[host].address
    ok = _tcp(addr, port)
    return Row(host, component, addr, "ok" if ok else "down", detail=(role + " " if role else "")
               + (f"port {port} open" if ok else f"port {port} refused or unreachable"))


def _tls_handshake(addr: str, port: int, ctx: ssl.SSLContext) -> str:
    """The TLS version a server negotiates with a client that verifies it against the cluster CA."""
    with socket.create_connection((addr, port), timeout=TIMEOUT) as raw, \
            ctx.wrap_socket(raw, server_hostname=addr) as tls:
        return str(tls.version())


# PostgreSQL's SSLRequest: the client asks for TLS before the startup packet; the server answers one byte, S or N.
_PG_SSL_REQUEST = struct.pack("!ii", 8, 80877103)


def _pg_tls_handshake(addr: str, port: int, ctx: ssl.SSLContext) -> str:
    """The TLS version PostgreSQL negotiates with a client that verifies it against the cluster CA (the server
    logs nothing for a client that leaves before its startup packet)."""
    with socket.create_connection((addr, port), timeout=TIMEOUT) as raw:
        raw.sendall(_PG_SSL_REQUEST)
        answer = raw.recv(1)
        if answer != b"S":
            raise ValueError(f"the server refused TLS (answered {answer!r})")
        with ctx.wrap_socket(raw, server_hostname=addr) as tls:
            return str(tls.version())


def _postgresql(c: Cluster, host: str, port: int, role: str, ctx: ssl.SSLContext | None) -> Row:
    row = _tcp_row(c, host, "postgresql", port, role)
    # The same check for every server, Patroni members included: any of them may serve Nuxeo after a failover.
    if row.health == "ok" and ctx is not None and c.derived["db"].get("ssl"):
        try:
            row.extra["tls"] = _pg_tls_handshake(row.address, port, ctx)
            row.detail = f"{role} port {port} open, {row.extra['tls']} verified with the CA"
        except (OSError, ValueError) as exc:
            row.health, row.detail = "down", f"{role} TLS handshake failed: {exc}"
    return row


def _kafka(c: Cluster, host: str, port: int, role: str, ctx: ssl.SSLContext | None) -> Row:
    row = _tcp_row(c, host, "kafka", port, role)
    if row.health == "ok" and ctx is not None and c.derived["kafka"].get("tls"):
        try:
            row.detail = f"{role} SSL listener, {_tls_handshake(row.address, port, ctx)} verified with the CA"
        except (OSError, ValueError) as exc:
            row.health, row.detail = "down", f"{role} TLS handshake failed: {exc}"
    return row


def _s3(c: Cluster, host: str, ctx: ssl.SSLContext | None = None) -> Row:
    addr = c.hosts[host].address
    port = int(host_setting(c.view, c.settings, host, "seaweedfs_s3_port") or 8333)
    scheme = "https" if c.derived["s3"].get("tls") else "http"
    row = Row(host, "s3 (seaweedfs)", addr, "unknown")
    try:
        code, _body, _ = _http(f"{scheme}://{addr}:{port}/", context=ctx)
        row.health = "ok" if code < 500 else "down"
        row.detail = f"S3 API answered {code}" + (" over https" if scheme == "https" else "")
    except (OSError, ValueError) as exc:
        row.health, row.detail = "down", f"unreachable: {getattr(exc, 'reason', exc)}"
    return row


def collect(c: Cluster) -> list[Row]:
    jobs: list[Any] = []
    ctx = tls_context(c)
    with ThreadPoolExecutor(max_workers=16) as pool:
        ctx = tls_context(c)
        for h in c.lb_hosts:
            jobs.append(pool.submit(_haproxy, c, h, ctx))
        for n in c.nuxeo_nodes:
            jobs.append(pool.submit(_nuxeo, c, n.host, ctx))
        db = c.derived["db"]
        for h in c.db_hosts:
            role = "primary" if h == db.get("primary") else "replica"
            if c.database == "postgresql":
                jobs.append(pool.submit(_postgresql, c, h, int(db.get("port", 5432)), role, ctx))
            else:
                jobs.append(pool.submit(_tcp_row, c, h, c.database, int(db.get("port", 5432)), role))
        for h in c.search_hosts:
            jobs.append(pool.submit(_search, c, h, ctx))
        for b in c.kafka_brokers:
            jobs.append(pool.submit(_kafka, c, b.host, b.port, f"broker {b.node_id}", ctx))
        if c.settings.get("s3_mode") == "seaweedfs":
            for h in c.s3_hosts:
                jobs.append(pool.submit(_s3, c, h, ctx))
        rows: list[Row] = []
        for j in jobs:
            r = j.result()
            rows.extend(r if isinstance(r, list) else [r])
    lb_states: dict[str, str] = {}
    for r in rows:
        for server, state in r.extra.get("servers", {}).items():
            lb_states[server] = state if server not in lb_states or state == "UP" else lb_states[server]
    for r in rows:
        node = c.node(r.host)
        if node and node.role == "front":
            r.lb_state = lb_states.get(node.jvm_route, "-")
    return rows


def as_json(rows: list[Row]) -> list[dict[str, Any]]:
    return [asdict(r) | {"healthy": r.healthy} for r in rows]


# -- what only the hosts themselves can tell (over SSH, through playbooks/status_probe.yml) -------------------

PROBE_TASKS = {
    "Read the server's role and replication state": "postgresql",
    "List the under-replicated partitions this broker sees": "kafka",
    "Read the member's state in its replica set": "mongodb",
}


def probe_hosts(
    c: Cluster, inventory: Path, vault_password_file: Path | None, secrets: list[str], options: Any = None
) -> dict[tuple[str, str], Any]:
    """Run the read-only probe playbook; returns {(host, 'postgresql'|'kafka'): result} for hosts that answered."""
    from nxprovision.runner import run_playbook

    found: dict[tuple[str, str], Any] = {}

    def collect_event(event: dict[str, Any]) -> None:
        data = event.get("event_data") or {}
        what = PROBE_TASKS.get(str(data.get("task", "")))
        if event.get("event") == "runner_on_ok" and what:
            found[(str(data.get("host")), what)] = data.get("res") or {}

    from nxprovision.errors import NxError

    try:
        _probe(c, inventory, vault_password_file, secrets, collect_event, run_playbook, options)
    except NxError as exc:
        # the outside probes still report; the hosts' own answers need trusted SSH host keys
        import sys

        sys.stderr.write(f"nxprovision: no SSH probe: {exc}\n")
    return found


def _probe(c: Cluster, inventory: Path, vault_password_file: Path | None, secrets: list[str], collect_event: Any,
           run_playbook: Any, options: Any = None) -> None:
    import io

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
                   "status_mongodb_port": int((c.derived.get("db") or {}).get("port") or 27017)},
        display=collect_event,
        out=io.StringIO(),
        options=options,
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
