"""The OpenSearch stand-in's nodes hold one cluster's data (opensearch_replication): stand-in nodes on loopback, each
its own osmem-server behind the REST front, joined by their transport ports (plain, or mutual TLS with node
certificates as with the security plugin)."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nxprovision_lab.standins.runtime import opensearch_replication, opensearch_security, opensearch_snapshots
from tests.unit.test_opensearch_snapshots import _free_port, _osmem
from tests.unit.test_standin_tls import _ca, _server_cert


class Node:
    """One stand-in node as bin/opensearch assembles it: transport port, recovery, then the REST front."""

    def __init__(self, tmp: Path, name: str, members: list[tuple[str, str, int]],
                 tls: tuple[ssl.SSLContext, ssl.SSLContext] | None = None, security: Any = None) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.name, self.log = name, []
        self.proc: subprocess.Popen | None = None
        self.proc, backend = _osmem()
        self.replicator = opensearch_replication.Replicator(
            node_name=name, members=members, backend=backend, client_ctx=tls[1] if tls else None,
            log=self.log.append)
        port = dict((n, p) for n, _h, p in members)[name]
        self.transport = opensearch_replication.serve_transport(
            ("127.0.0.1", port), tls[0] if tls else None, security=security, replicator=self.replicator,
            log=self.log.append)
        self.replicator.start()
        api = opensearch_snapshots.SnapshotApi(
            opensearch_replication.ReplicatingBackend(backend, self.replicator), state_file=tmp / "repos.json",
            keystore=dict, plugin_installed=True, node_name=name)
        self.front = opensearch_snapshots.serve_front(("127.0.0.1", 0), backend, api, replicator=self.replicator)
        self.url = f"http://127.0.0.1:{self.front.server_address[1]}"

    def call(self, method: str, path: str, body: Any = None, ndjson: str = "") -> tuple[int, Any]:
        data = ndjson.encode() if ndjson else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/x-ndjson" if ndjson else "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                text, status = resp.read(), resp.status
        except urllib.error.HTTPError as e:
            text, status = e.read(), e.code
        return status, (json.loads(text) if text else {})

    def ids(self, index: str) -> set[str]:
        status, answer = self.call("POST", f"/{index}/_search", {"size": 1000, "query": {"match_all": {}}})
        assert status == 200, answer
        return {h["_id"] for h in answer["hits"]["hits"]}

    def stop(self) -> None:
        opensearch_snapshots.close_quietly(self.front)
        self.transport.close()
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


Make = Callable[..., Node]


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[tuple[Make, list[tuple[str, str, int]]]]:
    members = [(f"search{i}", "127.0.0.1", _free_port()) for i in (1, 2, 3)]
    made: list[Node] = []

    def make(name: str, **kw: Any) -> Node:
        made.append(Node(tmp_path / name, name, kw.pop("members", members), **kw))
        return made[-1]

    yield make, members
    for n in made:
        n.stop()


def test_a_document_written_to_one_node_is_found_on_the_others(cluster) -> None:
    make, _ = cluster
    a, b, c = make("search1"), make("search2"), make("search3")
    assert a.call("PUT", "/nuxeo", {"settings": {"number_of_shards": 5, "number_of_replicas": 1},
                                    "mappings": {"properties": {"dc:title": {"type": "keyword"}}}})[0] == 200
    assert a.call("PUT", "/nuxeo/_doc/d1?refresh=true", {"dc:title": "first"})[0] == 201
    for node in (b, c):
        status, doc = node.call("GET", "/nuxeo/_doc/d1")
        assert status == 200 and doc["_source"] == {"dc:title": "first"}
        status, found = node.call("POST", "/nuxeo/_search", {"query": {"term": {"dc:title": "first"}}})
        assert [h["_id"] for h in found["hits"]["hits"]] == ["d1"]
        assert node.call("GET", "/nuxeo/_mapping")[1]["nuxeo"]["mappings"]["properties"]["dc:title"]["type"] == \
            "keyword"
    # written to another node, refreshed later (Nuxeo's reindex), updated, then auto id
    assert b.call("PUT", "/nuxeo/_doc/d2", {"dc:title": "second"})[0] == 201
    assert b.call("POST", "/nuxeo/_refresh")[0] == 200
    assert c.call("POST", "/nuxeo/_update/d2?refresh=true", {"doc": {"dc:description": "x"}})[0] == 200
    status, created = c.call("POST", "/nuxeo/_doc?refresh=true", {"dc:title": "auto"})
    assert status == 201
    for node in (a, b, c):
        assert node.ids("nuxeo") == {"d1", "d2", created["_id"]}
        assert node.call("GET", "/nuxeo/_doc/d2")[1]["_source"] == {"dc:title": "second", "dc:description": "x"}


def test_a_bulk_with_automatic_ids_lands_everywhere_with_the_same_ids(cluster) -> None:
    make, _ = cluster
    a, b, c = make("search1"), make("search2"), make("search3")
    bulk = "".join(json.dumps({"index": {"_index": "nuxeo-audit"}}) + "\n" + json.dumps({"id": i}) + "\n"
                   for i in range(50))
    bulk += json.dumps({"create": {"_index": "nuxeo-audit", "_id": "fixed"}}) + "\n" + json.dumps({"id": -1}) + "\n"
    status, answer = b.call("POST", "/_bulk?refresh=true", ndjson=bulk)
    assert status == 200 and answer["errors"] is False
    given = {item[next(iter(item))]["_id"] for item in answer["items"]}
    assert len(given) == 51 and "fixed" in given
    assert a.ids("nuxeo-audit") == c.ids("nuxeo-audit") == b.ids("nuxeo-audit") == given


def test_deletes_replicate(cluster) -> None:
    make, _ = cluster
    a, b = make("search1"), make("search2")
    for i in range(3):
        assert a.call("PUT", f"/nuxeo/_doc/d{i}?refresh=true", {"n": i})[0] == 201
    assert b.call("DELETE", "/nuxeo/_doc/d0?refresh=true")[0] == 200
    bulk = json.dumps({"delete": {"_index": "nuxeo", "_id": "d1"}}) + "\n"
    assert a.call("POST", "/_bulk?refresh=true", ndjson=bulk)[1]["errors"] is False
    assert a.ids("nuxeo") == b.ids("nuxeo") == {"d2"}
    assert b.call("DELETE", "/nuxeo")[0] == 200
    assert a.call("HEAD", "/nuxeo")[0] == 404


def test_aliases_and_delete_by_query_replicate(cluster) -> None:
    make, _ = cluster
    a, b = make("search1"), make("search2")
    for i in range(4):
        assert a.call("PUT", f"/nuxeo/_doc/d{i}?refresh=true", {"n": i})[0] == 201
    assert a.call("POST", "/_aliases", {"actions": [{"add": {"index": "nuxeo", "alias": "docs"}}]})[0] == 200
    assert b.call("POST", "/nuxeo/_delete_by_query?refresh=true", {"query": {"range": {"n": {"gte": 2}}}})[0] == 200
    assert a.ids("docs") == b.ids("docs") == {"d0", "d1"}


def test_a_node_started_after_the_writes_copies_them(cluster) -> None:
    make, _ = cluster
    a, b = make("search1"), make("search2")
    assert a.call("PUT", "/nuxeo", {"settings": {"number_of_shards": 3},
                                    "mappings": {"properties": {"t": {"type": "keyword"}}}})[0] == 200
    n = 2500  # more than one page of the copy
    bulk = "".join(json.dumps({"index": {"_index": "nuxeo", "_id": f"d{i}"}}) + "\n" + json.dumps({"t": f"v{i}"})
                   + "\n" for i in range(n))
    assert b.call("POST", "/_bulk?refresh=true", ndjson=bulk)[1]["errors"] is False
    assert a.call("PUT", "/nuxeo/_alias/docs")[0] == 200
    assert a.call("PUT", "/closed")[0] == 200
    assert a.call("POST", "/closed/_close")[0] == 200
    c = make("search3")
    assert any("copied 2 indices and 2500 documents" in m for m in c.log), c.log
    status, count = c.call("GET", "/docs/_count")
    assert status == 200 and count["count"] == n
    meta = c.call("GET", "/nuxeo")[1]["nuxeo"]
    assert meta["settings"]["index"]["number_of_shards"] == "3" and "docs" in meta["aliases"]
    assert meta["mappings"]["properties"]["t"]["type"] == "keyword"
    rows = {r["index"]: r["status"] for r in c.call("GET", "/_cat/indices?format=json&expand_wildcards=all")[1]}
    assert rows == {"nuxeo": "open", "closed": "close"}
    # and it takes the writes from then on, from any node
    assert c.call("PUT", "/nuxeo/_doc/late?refresh=true", {"t": "late"})[0] == 201
    assert a.call("GET", "/nuxeo/_doc/late")[0] == 200
    assert b.call("GET", "/nuxeo/_doc/late")[0] == 200


def test_a_member_that_is_down_is_skipped_and_recovers_when_it_starts(cluster) -> None:
    make, _ = cluster
    a, b = make("search1"), make("search2")
    b.stop()
    assert a.call("PUT", "/nuxeo/_doc/d1?refresh=true", {"n": 1})[0] == 201  # answered without search2
    b2 = make("search2")
    assert b2.call("GET", "/nuxeo/_doc/d1")[0] == 200
    # search1 had left search2 out: it is back (join), and takes the next write at once
    assert a.call("PUT", "/nuxeo/_doc/d2?refresh=true", {"n": 2})[0] == 201
    assert b2.ids("nuxeo") == {"d1", "d2"}


def test_the_writes_a_node_receives_while_it_copies_are_replayed_after_the_copy(cluster) -> None:
    make, members = cluster
    a = make("search1")
    assert a.call("PUT", "/nuxeo/_doc/d1?refresh=true", {"v": "old"})[0] == 201
    proc, backend = _osmem()
    try:
        replicator = opensearch_replication.Replicator(node_name="search3", members=members, backend=backend,
                                                       client_ctx=None)
        out: list[dict[str, Any]] = []

        class Out:
            def write(self, data: bytes) -> None:
                out.append(json.loads(data))

            def flush(self) -> None:
                pass

        # a write copied to it before its own copy begins: the copy holds the old version, the replay the new
        body = json.dumps({"v": "new"})
        replicator.node_request({"action": "replicate", "method": "PUT", "path": "/nuxeo/_doc/d1?refresh=true",
                                 "body": body}, Out())
        assert out == [{"ok": True, "queued": True}]
        replicator.node_request({"action": "recover"}, Out())
        assert out[-1]["busy"] is True  # a node still copying is no source for another
        replicator.start()
        got = opensearch_snapshots.Backend(backend).ok("GET", "/nuxeo/_doc/d1")
        assert got["_source"] == {"v": "new"}
        replicator.node_request({"action": "replicate", "method": "DELETE", "path": "/nuxeo/_doc/d1", "body": ""},
                                Out())
        assert out[-1] == {"ok": True, "status": 200}  # live: applied at once
    finally:
        proc.kill()
        proc.wait()


def _tls(tmp: Path, ca: Any, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    (tmp / name).mkdir(parents=True, exist_ok=True)
    cert, key, cas = _server_cert(ca, tmp / name, name=name)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    server.load_verify_locations(cafile=cas)
    server.verify_mode = ssl.CERT_REQUIRED
    return server, opensearch_replication.client_context(str(cert), str(key), str(cas), check_hostname=False)


def _security(tmp: Path) -> opensearch_security.Security:
    sec = opensearch_security.Security({"plugins.security.nodes_dn": ["CN=search1", "CN=search2"]}, tmp,
                                       tmp / "security.json", lambda _m: None)
    sec.config = {}
    return sec


def test_with_security_only_node_certificates_replicate(cluster, tmp_path) -> None:
    make, members = cluster
    members = members[:2]
    ca = _ca("cluster CA")
    a = make("search1", members=members, tls=_tls(tmp_path, ca, "search1"), security=_security(tmp_path / "s1"))
    b = make("search2", members=members, tls=_tls(tmp_path, ca, "search2"), security=_security(tmp_path / "s2"))
    assert a.call("PUT", "/nuxeo/_doc/d1?refresh=true", {"n": 1})[0] == 201
    assert b.ids("nuxeo") == {"d1"}
    port = members[1][2]
    request = json.dumps({"action": "replicate", "method": "DELETE", "path": "/nuxeo", "body": ""}).encode() + b"\n"

    def send(ctx: ssl.SSLContext | None) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            sock: Any = ctx.wrap_socket(raw, server_hostname="127.0.0.1") if ctx else raw
            sock.sendall(request)
            return sock.recv(65536)

    # a certificate of the cluster's CA that is not a node's (front1), one of another CA, none, plain TCP
    assert b"not a node of this cluster" in send(_tls(tmp_path, ca, "front1")[1])
    with pytest.raises((ssl.SSLError, OSError)):
        send(_tls(tmp_path / "other", _ca("another CA"), "search1")[1])
    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.check_hostname, anonymous.verify_mode = False, ssl.CERT_NONE
    with pytest.raises((ssl.SSLError, OSError)):
        if not send(anonymous):
            raise ConnectionResetError("closed")
    with pytest.raises((ssl.SSLError, OSError)):
        if not send(None):
            raise ConnectionResetError("closed")
    assert b.call("HEAD", "/nuxeo")[0] == 200  # nothing was deleted
    assert any("refused [replicate]" in m for m in b.log), b.log


def test_writes_are_told_apart_from_reads() -> None:
    w = opensearch_replication.is_write
    assert w("PUT", "/nuxeo") and w("DELETE", "/nuxeo") and w("POST", "/nuxeo/_doc") and w("PUT", "/n/_doc/1?x=1")
    assert w("POST", "/_bulk") and w("POST", "/n/_refresh") and w("GET", "/_refresh") and w("POST", "/n/_close")
    assert w("PUT", "/n/_mapping") and w("PUT", "/n/_settings") and w("POST", "/_aliases")
    assert not w("GET", "/n/_doc/1") and not w("POST", "/n/_search") and not w("GET", "/_cat/indices")
    assert not w("HEAD", "/n") and not w("POST", "/_search/scroll") and not w("POST", "/n/_count")
    assert not w("GET", "/n/_settings") and not w("POST", "/n/_mget")


def test_a_join_is_answered_while_a_request_to_that_member_waits(tmp_path: Path) -> None:
    """Two members starting at once each send `join` to the other while holding their lock for it: the answer to a
    join must not wait for that lock (it did: both nodes hung until the 300 s transport timeout)."""
    import io
    import threading

    members = [("search2", "127.0.0.1", 1), ("search3", "127.0.0.1", 2)]
    replicator = opensearch_replication.Replicator(node_name="search2", members=members, backend=("127.0.0.1", 9),
                                                   client_ctx=None)
    peer = replicator.peers[0]
    out = io.BytesIO()
    with peer.lock:  # this node's own `join` to search3, waiting for search3's answer
        answered = threading.Thread(target=replicator.node_request, args=({"action": "join", "node": "search3"}, out))
        answered.start()
        answered.join(timeout=5)
        assert not answered.is_alive(), "the join waited for the lock held by a request to the joining member"
    assert json.loads(out.getvalue()) == {"ok": True}
    assert peer.stale and peer.down_until == 0.0  # the kept connection is dropped by the next request
