"""The OpenSearch stand-in's node-to-node traffic on the transport port: writes copied to every live member, and
a full copy of the data when a node starts.

Each stand-in node runs its own in-memory osmem-server; this module makes the nodes of one cluster hold the same
data, in the spirit of OpenSearch's replicated writes (wait_for_active_shards=all) and peer recovery, without its
shard routing (every node holds every document):
- a write a node accepted from a client (index create/delete, mappings, settings, aliases, open/close, documents,
  `_update`, `_bulk`, `_refresh`, `_delete_by_query`, `_update_by_query`, templates, a snapshot restore's writes)
  is applied locally, then sent to every other live member before the client gets its answer. A write that gave
  an automatic id is sent with that id (`POST <index>/_doc` as `PUT <index>/_doc/<id>`, bulk actions without
  `_id` completed from the response's items), so the copies agree. Writes accepted by one node are copied in the
  order that node applied them; two nodes writing one document at the same instant may leave it in different
  versions (no sequence numbers, no primary);
- a member whose transport port does not answer is skipped (and left alone for a few seconds): it copies
  everything when it starts again. A starting node first tells the others it is back (`join`), then copies the
  indices (settings, mappings, aliases, open or closed) and every document of one live member; the writes it
  receives meanwhile are queued and replayed after the copy (the replicated forms are idempotent), before the
  node reports itself started;
- the transport port speaks JSON lines, the protocol the stand-in's securityadmin already uses there. With the
  security plugin on it is mutual TLS and only a certificate whose DN is in `plugins.security.nodes_dn` may send
  node requests (securityadmin's admin certificate only its own); in `ssl_only` mode any certificate of the
  trusted CAs; with the plugin disabled the port is plain TCP.
Still in memory: a cluster whose every node stops loses its data, as before. Not copied: the snapshot
repositories' registrations and the cluster settings (each node keeps what it received).
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

if __package__:
    from . import opensearch_security, opensearch_snapshots
else:
    import opensearch_security  # type: ignore[no-redef]
    import opensearch_snapshots  # type: ignore[no-redef]

# (status, response headers, response body) of a request applied to the local backend
Result = tuple[int, list[tuple[str, str]], bytes]
Log = Callable[[str], None]
# index settings that describe one copy, not the index (the same list the snapshots leave out)
_INTERNAL_SETTINGS = opensearch_snapshots._INTERNAL_SETTINGS
PAGE = 1000
CONNECT_TIMEOUT = 2.0
APPLY_TIMEOUT = 300.0
# how long a member whose port did not answer is left out (a node that starts again says so at once: `join`)
DOWN_FOR_S = 10.0
_TEMPLATES = ("_template", "_index_template", "_component_template")


def _parts(path: str) -> list[str]:
    return [urllib.parse.unquote(p) for p in path.partition("?")[0].split("/") if p]


def is_write(method: str, path: str) -> bool:
    """The requests that change what a node holds (the ones every member must apply)."""
    m, parts = method.upper(), _parts(path)
    if not parts or (m in ("GET", "HEAD") and parts[-1:] != ["_refresh"]):
        return False
    head = parts[0]
    if head in ("_bulk", "_refresh", "_aliases", "_reindex"):
        return True
    if head in ("_mapping", "_mappings", "_settings") and m in ("PUT", "POST"):
        return True
    if head in _TEMPLATES:
        return len(parts) == 2 and m in ("PUT", "POST", "DELETE")
    if head.startswith("_"):
        return False
    if len(parts) == 1:
        return m in ("PUT", "DELETE")
    op = parts[1]
    if op in ("_doc", "_create"):
        return m in ("PUT", "POST", "DELETE")
    if op in ("_update", "_bulk", "_refresh", "_close", "_open", "_delete_by_query", "_update_by_query"):
        return m in ("POST", "PUT", "GET") if op == "_refresh" else m in ("POST", "PUT")
    if op in ("_mapping", "_mappings", "_settings"):
        return m in ("PUT", "POST")
    if op in ("_alias", "_aliases"):
        return m in ("PUT", "POST", "DELETE")
    return False


def _bulk_lines(body: bytes) -> list[str]:
    return [ln for ln in body.decode("utf-8").split("\n") if ln.strip()]


def replicated_form(method: str, path: str, body: bytes, answer: bytes) -> tuple[str, str, bytes]:
    """The request a member applies to hold what this node holds after applying (method, path, body): automatic
    ids replaced by the ones this node gave."""
    parts = _parts(path)
    _, sep, query = path.partition("?")
    if method.upper() == "POST" and len(parts) == 2 and parts[1] == "_doc":
        doc_id = json.loads(answer)["_id"]
        return "PUT", f"/{urllib.parse.quote(parts[0])}/_doc/{urllib.parse.quote(doc_id, safe='')}{sep}{query}", body
    if parts[-1:] == ["_bulk"]:
        items = json.loads(answer).get("items") or []
        out: list[str] = []
        lines = _bulk_lines(body)
        i = item = 0
        while i < len(lines):
            meta = json.loads(lines[i])
            op, args = next(iter(meta.items()))
            if op in ("index", "create") and isinstance(args, dict) and not args.get("_id") and item < len(items):
                given = (items[item].get(op) or {}).get("_id")
                if given:
                    meta = {op: {**args, "_id": given}}
            out.append(json.dumps(meta))
            i += 1
            if op in ("index", "create", "update") and i < len(lines):
                out.append(lines[i])
                i += 1
            item += 1
        return method, path, ("\n".join(out) + "\n").encode()
    return method, path, body


def _local(address: tuple[str, int], method: str, path: str, body: bytes) -> Result:
    """One request to this node's own backend (behind the front: no security check, not copied again)."""
    import http.client

    conn = http.client.HTTPConnection(*address, timeout=APPLY_TIMEOUT)
    try:
        ctype = "application/x-ndjson" if _parts(path)[-1:] == ["_bulk"] else "application/json"
        conn.request(method, path, body=body or None, headers={"Content-Type": ctype})
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read()
    finally:
        conn.close()


class _Peer:
    def __init__(self, name: str, host: str, port: int) -> None:
        self.name, self.host, self.port = name, host, port
        self.conn: tuple[Any, Any] | None = None  # (socket, file)
        self.down_until = 0.0
        self.lock = threading.Lock()
        # set by the member's `join` (a new process: the kept connection is to the old one), honoured by the next
        # request; never waited for under `lock`, which a request to that member may hold meanwhile
        self.stale = False


class Replicator:
    """This node's side of the cluster's data: copies its writes to the members, and their writes to itself."""

    def __init__(self, *, node_name: str, members: list[tuple[str, str, int]], backend: tuple[str, int],
                 client_ctx: ssl.SSLContext | None, log: Log = lambda _m: None) -> None:
        self.node_name, self.backend, self.log = node_name, backend, log
        self.client_ctx = client_ctx
        self.peers = [_Peer(n, h, p) for n, h, p in members if n != node_name]
        # writes accepted by this node are applied and copied one at a time: the members see them in this order
        self._write_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[tuple[str, str, bytes]] | None = []  # None once the node is live
        self.api = opensearch_snapshots.Backend(backend)

    # ------------------------------------------------------------------ writes accepted from clients

    def write(self, method: str, path: str, body: bytes, apply: Callable[[], Result]) -> Result:
        if not is_write(method, path):
            return apply()
        with self._write_lock:
            result = apply()
            if 200 <= result[0] < 300:
                try:
                    op = replicated_form(method, path, body, result[2])
                except (ValueError, KeyError, StopIteration, AttributeError) as e:
                    self.log(f"replication: cannot copy {method} {path} to the members ({e})")
                else:
                    self._send_all({"action": "replicate", "method": op[0], "path": op[1],
                                    "body": op[2].decode("utf-8")})
            return result

    def _send_all(self, request: dict[str, Any]) -> None:
        for peer in self.peers:
            if peer.down_until > time.monotonic():
                continue
            try:
                answer = self._ask(peer, request)
            except (OSError, ssl.SSLError, ValueError) as e:
                self.log(f"replication: member {peer.name} ({peer.host}:{peer.port}) did not answer ({e}); "
                         "left out until it starts again")
                peer.down_until = time.monotonic() + DOWN_FOR_S
                continue
            if not answer.get("ok"):
                self.log(f"replication: member {peer.name} refused {request.get('method')} {request.get('path')}: "
                         f"{answer.get('error') or answer}")

    def _connect(self, peer: _Peer) -> tuple[Any, Any]:
        raw = socket.create_connection((peer.host, peer.port), timeout=CONNECT_TIMEOUT)
        raw.settimeout(APPLY_TIMEOUT)
        sock: Any = raw
        if self.client_ctx is not None:
            try:
                sock = self.client_ctx.wrap_socket(raw, server_hostname=peer.host)
            except (OSError, ssl.SSLError):
                raw.close()
                raise
        return sock, sock.makefile("rwb")

    def _ask(self, peer: _Peer, request: dict[str, Any]) -> dict[str, Any]:
        """One request on the member's kept connection (a new one when the kept one was closed meanwhile)."""
        line = json.dumps(request).encode() + b"\n"
        with peer.lock:
            if peer.stale:
                peer.stale = False
                if peer.conn is not None:
                    with contextlib.suppress(OSError):
                        peer.conn[0].close()
                    peer.conn = None
            for attempt in (1, 2):
                fresh = peer.conn is None
                if fresh:
                    peer.conn = self._connect(peer)
                sock, f = peer.conn
                try:
                    f.write(line)
                    f.flush()
                    reply = f.readline()
                    if not reply:
                        raise ConnectionResetError("connection closed by the member")
                    return dict(json.loads(reply))
                except (OSError, ssl.SSLError, ValueError):
                    with contextlib.suppress(OSError):
                        sock.close()
                    peer.conn = None
                    if fresh or attempt == 2:
                        raise
        raise ConnectionError("unreachable")

    # ------------------------------------------------------------------ start: join, copy, replay

    def start(self) -> None:
        """Join the members, copy one live member's data, replay the writes received meanwhile: then live."""
        for peer in self.peers:
            with contextlib.suppress(OSError, ssl.SSLError, ValueError):
                self._ask(peer, {"action": "join", "node": self.node_name})
        source = None
        for peer in self.peers:
            try:
                indices, docs = self._recover_from(peer)
            except _Busy:
                continue
            except (OSError, ssl.SSLError, ValueError, opensearch_snapshots.ApiError) as e:
                self.log(f"recovery: member {peer.name} ({peer.host}:{peer.port}) gave no copy: {e}")
                continue
            source = peer.name
            self.log(f"recovery: copied {indices} indices and {docs} documents from {peer.name}")
            break
        if source is None and self.peers:
            self.log("recovery: no live member holds data to copy (starting empty, as the first node of a cluster)")
        while True:
            with self._queue_lock:
                pending = self._queue or []
                if not pending:
                    self._queue = None
                    break
                self._queue = []
            for method, path, body in pending:
                self._apply_replicated(method, path, body)
            self.log(f"recovery: replayed {len(pending)} writes received during the copy")

    def _recover_from(self, peer: _Peer) -> tuple[int, int]:
        # its own connection: a copy can take minutes, and the kept one carries the writes meanwhile
        _sock, f = self._connect(peer)
        indices = docs = 0
        index = ""
        closed: list[str] = []
        try:
            f.write(json.dumps({"action": "recover", "node": self.node_name}).encode() + b"\n")
            f.flush()
            while True:
                line = f.readline()
                if not line:
                    raise ConnectionResetError("the member closed the connection before the end of the copy")
                msg = json.loads(line)
                if msg.get("busy"):
                    raise _Busy()
                if "error" in msg or msg.get("ok") is False:
                    raise ValueError(str(msg.get("error") or msg))
                if "index" in msg:
                    meta = msg["index"]
                    index = meta["name"]
                    quoted = "/" + urllib.parse.quote(index)
                    if self.api.call("HEAD", quoted)[0] == 200:
                        self.api.ok("DELETE", quoted)
                    self.api.ok("PUT", quoted, {"settings": {"index": meta["settings"]}, "mappings": meta["mappings"],
                                                "aliases": meta["aliases"]})
                    if meta.get("state") == "close":
                        closed.append(index)
                    indices += 1
                elif "docs" in msg:
                    bulk = "".join(json.dumps({"index": {"_index": index, "_id": d}}) + "\n" + json.dumps(s) + "\n"
                                   for d, s in msg["docs"])
                    answer = self.api.ok("POST", "/_bulk", ndjson=bulk)
                    if answer.get("errors"):
                        raise ValueError(f"copying [{index}] failed: {json.dumps(answer)[:300]}")
                    docs += len(msg["docs"])
                elif msg.get("end"):
                    break
        finally:
            with contextlib.suppress(OSError):
                _sock.close()
        self.api.ok("POST", "/_refresh")
        for index in closed:
            self.api.ok("POST", f"/{urllib.parse.quote(index)}/_close")
        return indices, docs

    # ------------------------------------------------------------------ requests from the members

    def _apply_replicated(self, method: str, path: str, body: bytes) -> dict[str, Any]:
        status, _h, data = _local(self.backend, method, path, body)
        if status >= 300:
            return {"ok": False, "status": status, "error": data[:300].decode("utf-8", "replace")}
        return {"ok": True, "status": status}

    def node_request(self, request: dict[str, Any], out: Any) -> None:
        """A member's request; the answer (one line, or the copy's lines) written to `out`."""
        action = request.get("action")
        if action == "replicate":
            op = (str(request["method"]), str(request["path"]), str(request.get("body") or "").encode())
            with self._queue_lock:
                queued = self._queue is not None
                if self._queue is not None:
                    self._queue.append(op)  # applied after the copy, which may hold an older version
            _send(out, {"ok": True, "queued": True} if queued else self._apply_replicated(*op))
        elif action == "join":
            for peer in self.peers:
                if peer.name == request.get("node"):
                    # not under peer.lock: two members starting together each hold their lock for the other while
                    # waiting for its answer to their own `join` (both waited out APPLY_TIMEOUT, 300 s)
                    peer.down_until = 0.0
                    peer.stale = True
            self.log(f"member {request.get('node')} joined")
            _send(out, {"ok": True})
        elif action == "recover":
            if self._queue is not None:
                _send(out, {"ok": False, "busy": True, "error": "this node is recovering itself"})
                return
            for line in self._copy():
                _send(out, line)
        else:
            _send(out, {"ok": False, "error": f"unknown transport action [{action}]"})

    def _copy(self) -> Iterator[dict[str, Any]]:
        """Every index of this node (settings, mappings, aliases, state) and its documents, a page at a time."""
        try:
            rows = self.api.ok("GET", "/_cat/indices?format=json&expand_wildcards=all")
            for row in sorted(rows, key=lambda r: str(r["index"])):
                name = str(row["index"])
                quoted = urllib.parse.quote(name)
                meta = self.api.ok("GET", f"/{quoted}")[name]
                settings = {k: v for k, v in (meta.get("settings", {}).get("index") or {}).items()
                            if k not in _INTERNAL_SETTINGS}
                state = str(row.get("status") or "open")
                yield {"index": {"name": name, "settings": settings, "mappings": meta.get("mappings") or {},
                                 "aliases": meta.get("aliases") or {}, "state": state}}
                if state != "open":
                    continue  # a closed index's documents cannot be read (it is copied closed and empty)
                self.api.ok("POST", f"/{quoted}/_refresh")
                after: list[Any] | None = None
                while True:
                    # sorted by _id and paged with search_after: no result window limit, no scroll context
                    query: dict[str, Any] = {"size": PAGE, "sort": [{"_id": "asc"}], "query": {"match_all": {}}}
                    if after:
                        query["search_after"] = after
                    hits = self.api.ok("POST", f"/{quoted}/_search", query)["hits"]["hits"]
                    if hits:
                        yield {"docs": [[h["_id"], h["_source"]] for h in hits]}
                    if len(hits) < PAGE:
                        break
                    after = hits[-1]["sort"]
            yield {"end": True}
        except (opensearch_snapshots.ApiError, OSError, ValueError, KeyError) as e:
            yield {"ok": False, "error": f"copy failed: {e}"}


class _Busy(Exception):
    pass


def _send(out: Any, answer: dict[str, Any]) -> None:
    out.write(json.dumps(answer).encode() + b"\n")
    out.flush()


class ReplicatingBackend(opensearch_snapshots.Backend):
    """The backend as the snapshot API writes to it (a restore): its writes copied to the members too."""

    def __init__(self, address: tuple[str, int], replicator: Replicator) -> None:
        super().__init__(address)
        self.replicator = replicator

    def call(self, method: str, path: str, body: Any = None, ndjson: str = "") -> tuple[int, Any]:
        data = ndjson.encode() if ndjson else (json.dumps(body).encode() if body is not None else b"")
        status, _h, text = self.replicator.write(method, path, data,
                                                 lambda: _local(self.address, method, path, data))
        return status, (json.loads(text) if text else {})


def node_authorized(security: Any, ssl_on: bool, dn: str | None) -> bool:
    """May this peer send node requests? With the security plugin: a node certificate (plugins.security.nodes_dn);
    in ssl_only mode: any certificate of the trusted CAs (the handshake checked it); plain: anyone reaching the
    port (a cluster without TLS is kept on a private network)."""
    if security is not None:
        return dn is not None and dn in security.nodes_dn
    return dn is not None if ssl_on else True


def serve_transport(listen: tuple[str, int], ctx: ssl.SSLContext | None, *, security: Any,
                    replicator: Replicator | None, log: Log) -> socket.socket:
    """The transport port: securityadmin's requests and the members' (mutual TLS when `ctx` is given)."""
    sock = socket.socket(socket.AF_INET6 if ":" in listen[0] else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(listen)
    sock.listen(64)

    def serve(conn: socket.socket, peer: str) -> None:
        conn.settimeout(APPLY_TIMEOUT)
        stream: Any = conn
        dn: str | None = None
        if ctx is not None:
            try:
                stream = ctx.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError) as e:
                log(f"transport {listen[0]}:{listen[1]}: refused a connection from {peer}: {e}")
                with contextlib.suppress(OSError):
                    conn.close()
                return
            dn = opensearch_security.norm_dn(opensearch_security.peer_dn(stream.getpeercert() or {}))
        with stream:
            f = stream.makefile("rwb")
            try:
                while True:
                    line = f.readline()
                    if not line:
                        return
                    request = json.loads(line)
                    action = request.get("action")
                    if action in ("upload", "whoami"):
                        if ctx is None:
                            _send(f, {"ok": False, "error": "securityadmin needs TLS on the transport port"})
                        else:
                            _send(f, opensearch_security.admin_answer(security, dn or "", request, peer, log))
                    elif replicator is None:
                        _send(f, {"ok": False, "error": "this node takes no node requests"})
                    elif not node_authorized(security, ctx is not None, dn):
                        log(f"transport: refused [{action}] from {peer} ({dn or 'no certificate'}): not a node "
                            "certificate of plugins.security.nodes_dn")
                        _send(f, {"ok": False, "error": f"[{dn}] is not a node of this cluster"})
                        return
                    else:
                        replicator.node_request(request, f)
            except (OSError, ssl.SSLError, ValueError, KeyError):
                return

    def loop() -> None:
        while True:
            try:
                conn, addr = sock.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn, str(addr[0])), daemon=True).start()

    threading.Thread(target=loop, name="transport", daemon=True).start()
    return sock


def client_context(cert: str, key: str, cas: str, check_hostname: bool) -> ssl.SSLContext:
    """The node's side of a node-to-node connection: its transport certificate, the peer checked by the CAs (and
    its name, with plugins.security.ssl.transport.enforce_hostname_verification, true unless set otherwise)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(cafile=cas)
    ctx.check_hostname = check_hostname
    return ctx
