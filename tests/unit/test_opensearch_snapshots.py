"""The OpenSearch stand-in's snapshot API, in process: its REST front before a real osmem-server backend, snapshots
kept in an S3 bucket (a small S3 server in the test), OpenSearch's answers and refusals; and the stand-in keystore."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from nxprovision_lab.standins.runtime import opensearch_keystore, opensearch_snapshots, opensearch_standin

ACCESS, SECRET = "AKIDTEST", "s3cr3t-value"


class _S3(BaseHTTPRequestHandler):
    """Path-style S3: objects in a dict, requests refused unless signed with the expected access key."""

    protocol_version = "HTTP/1.1"
    objects: dict[str, bytes] = {}

    def log_message(self, *args):
        pass

    def _answer(self, status: int, data: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _key(self) -> str | None:
        if f"Credential={ACCESS}/" not in self.headers.get("Authorization", ""):
            self._answer(403, b"<Error><Code>InvalidAccessKeyId</Code></Error>")
            return None
        return self.path.split("?")[0]

    def do_PUT(self):
        key = self._key()
        if key is not None:
            self.objects[key] = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._answer(200)

    def do_GET(self):
        key = self._key()
        if key is not None:
            self._answer(200, self.objects[key]) if key in self.objects else self._answer(404, b"<NoSuchKey/>")

    do_HEAD = do_GET

    def do_DELETE(self):
        key = self._key()
        if key is not None:
            self.objects.pop(key, None)
            self._answer(204)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def s3():
    _S3.objects = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _S3)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"endpoint": f"127.0.0.1:{server.server_address[1]}", "objects": _S3.objects}
    server.shutdown()


def _osmem() -> tuple[subprocess.Popen, tuple[str, int]]:
    osmem_server = pytest.importorskip("osmem_server")
    port = _free_port()
    proc = subprocess.Popen([osmem_server.resolve_binary(), "-addr", f"127.0.0.1:{port}", "-no-stdin-watch",
                             "-no-ja"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, ("127.0.0.1", port)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    pytest.fail("osmem-server did not start")


class Node:
    """One stand-in node: osmem-server behind the snapshot front, its keystore and data directory."""

    def __init__(self, tmp: Path, plugin: bool = True) -> None:
        self.proc, backend = _osmem()
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.keystore = tmp / "opensearch.keystore"
        opensearch_keystore.write(self.keystore, {"keystore.seed": "x"})
        self.api = opensearch_snapshots.SnapshotApi(
            opensearch_snapshots.Backend(backend), state_file=tmp / "data" / "repos.json",
            keystore=lambda: opensearch_keystore.read(self.keystore), plugin_installed=plugin,
            node_name="search1", cluster_name="c-search", version="1.3.20")
        self.front = opensearch_snapshots.serve_front(("127.0.0.1", 0), backend, self.api)
        self.url = f"http://127.0.0.1:{self.front.server_address[1]}"

    def keys(self, access: str = ACCESS, secret: str = SECRET) -> None:
        opensearch_keystore.write(self.keystore, {"keystore.seed": "x", "s3.client.default.access_key": access,
                                                  "s3.client.default.secret_key": secret})

    def call(self, method: str, path: str, body=None, ndjson: str = "") -> tuple[int, dict]:
        data = ndjson.encode() if ndjson else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/x-ndjson" if ndjson else "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                text, status = resp.read(), resp.status
        except urllib.error.HTTPError as e:
            text, status = e.read(), e.code
        return status, (json.loads(text) if text else {})

    def close(self) -> None:
        opensearch_snapshots.close_quietly(self.front)
        self.proc.kill()
        self.proc.wait()


@pytest.fixture()
def nodes(tmp_path):
    made: list[Node] = []

    def make(name: str = "a", **kw) -> Node:
        made.append(Node(tmp_path / name, **kw))
        return made[-1]

    yield make
    for n in made:
        n.close()


def _repo(s3) -> dict:
    return {"type": "s3", "settings": {"bucket": "nuxeo-backup", "base_path": "audit-snapshots",
                                       "endpoint": s3["endpoint"], "protocol": "http", "path_style_access": True}}


def _audit(node: Node, n: int) -> None:
    status, _ = node.call("PUT", "/nuxeo-audit", {"settings": {"number_of_shards": 5, "number_of_replicas": 0},
                                                  "mappings": {"properties": {"eventDate": {"type": "date"}}}})
    assert status == 200
    bulk = "".join(json.dumps({"index": {"_index": "nuxeo-audit", "_id": f"e{i}"}}) + "\n"
                   + json.dumps({"eventId": "documentCreated", "id": i, "eventDate": "2026-01-01T00:00:00Z"}) + "\n"
                   for i in range(n))
    assert node.call("POST", "/_bulk?refresh=true", ndjson=bulk)[1]["errors"] is False


def test_cluster_calls_answered_by_the_front_over_the_backends_indices(nodes, tmp_path) -> None:
    """With a cluster view (opensearch_cluster), the front answers the cluster APIs from the backend's indices."""
    from nxprovision_lab.standins.runtime import opensearch_cluster, opensearch_standin

    node = nodes()
    live = {"search1"}
    view = opensearch_standin.cluster_view(
        {"cluster.initial_cluster_manager_nodes": ["search1", "search2"], "discovery.seed_hosts": ["127.0.0.1", "x"]},
        tmp_path, node.api.backend.address, "search1", "c-search", 9200, "1.3.20")
    view._alive = lambda host, _p: host == "x" and "search2" in live  # type: ignore[method-assign]
    opensearch_snapshots.close_quietly(node.front)
    node.front = opensearch_snapshots.serve_front(("127.0.0.1", 0), node.api.backend.address, node.api, None, view)
    node.url = f"http://127.0.0.1:{node.front.server_address[1]}"
    assert node.call("PUT", "/nuxeo", {"settings": {"number_of_shards": 2, "number_of_replicas": 1}})[0] == 200
    assert node.call("GET", "/_cluster/health")[1]["status"] == "yellow"  # alone: the replicas have no node
    live.add("search2")
    assert node.call("GET", "/_cluster/health?wait_for_status=green&timeout=5s")[1]["status"] == "green"
    assert isinstance(opensearch_cluster.Cluster, type)
    status, rows = node.call("GET", "/_cat/allocation?format=json&h=node,shards")
    assert status == 200 and {r["node"]: r["shards"] for r in rows} == {"search1": "2", "search2": "2"}
    status, rows = node.call("GET", "/_cat/indices?format=json&h=index,pri,rep,status&expand_wildcards=all")
    assert status == 200 and rows[0]["rep"] == "1", rows  # passed on to the backend


def test_other_requests_pass_through_the_front(nodes) -> None:
    node = nodes()
    status, health = node.call("GET", "/_cluster/health")
    assert status == 200 and health["status"] in ("green", "yellow")
    assert node.call("HEAD", "/nope")[0] == 404
    _audit(node, 3)
    assert node.call("GET", "/nuxeo-audit/_count")[1]["count"] == 3


def test_repository_needs_the_plugin_and_the_keystore_credentials(nodes, s3) -> None:
    without = nodes("plain", plugin=False)
    status, err = without.call("PUT", "/_snapshot/nx", _repo(s3))
    assert status == 500 and err["error"]["type"] == "repository_exception"
    assert "repository type [s3] does not exist" in err["error"]["reason"]

    node = nodes()
    status, err = node.call("PUT", "/_snapshot/nx", _repo(s3))  # no keys in the keystore yet
    assert status == 500 and "access_key" in err["error"]["reason"]
    node.keys(secret="wrong-access-key-is-checked-by-s3")
    node.keys(access="WRONG")
    assert node.call("POST", "/_nodes/reload_secure_settings")[0] == 200
    status, err = node.call("PUT", "/_snapshot/nx", _repo(s3))  # verification writes to the bucket: refused
    assert status == 500 and err["error"]["type"] == "repository_verification_exception"
    node.keys()
    assert node.call("PUT", "/_snapshot/nx", _repo(s3))[0] == 500  # the keystore is read at start and on reload
    assert node.call("POST", "/_nodes/reload_secure_settings")[1]["_nodes"]["successful"] == 1
    assert node.call("PUT", "/_snapshot/nx", _repo(s3)) == (200, {"acknowledged": True})
    assert not [k for k in s3["objects"] if "/tests-" in k]  # the verification blob is gone
    # settings come back as OpenSearch answers them: flat strings (what the role compares)
    assert node.call("GET", "/_snapshot/nx")[1] == {"nx": {"type": "s3", "settings": {
        "bucket": "nuxeo-backup", "base_path": "audit-snapshots", "endpoint": s3["endpoint"], "protocol": "http",
        "path_style_access": "true"}}}
    assert node.call("GET", "/_snapshot/other")[0] == 404
    assert node.call("POST", "/_snapshot/nx/_verify")[1] == {"nodes": {"search1": {"name": "search1"}}}
    assert node.call("GET", "/_snapshot")[1].keys() == {"nx"}
    # the registration is kept in path.data, like OpenSearch's persisted cluster state
    assert json.loads((node.tmp / "data" / "repos.json").read_text())["nx"]["type"] == "s3"


def test_snapshot_and_restore_through_a_copied_bucket(nodes, s3) -> None:
    a = nodes("a")
    a.keys()
    a.api.reload_secure_settings()
    assert a.call("PUT", "/_snapshot/nx", _repo(s3))[0] == 200
    _audit(a, 2500)  # more than one page of the stand-in's reads and writes
    assert a.call("GET", "/_snapshot/nx/_all")[1] == {"snapshots": []}
    status, taken = a.call("PUT", "/_snapshot/nx/b1?wait_for_completion=true",
                           {"indices": "nuxeo-audit", "include_global_state": False})
    assert status == 200, taken
    info = taken["snapshot"]
    assert info["state"] == "SUCCESS" and info["indices"] == ["nuxeo-audit"]
    assert info["shards"] == {"total": 5, "failed": 0, "successful": 5}
    assert a.call("PUT", "/_snapshot/nx/b1?wait_for_completion=true", {"indices": "nuxeo-audit"})[1][
        "error"]["type"] == "invalid_snapshot_name_exception"
    assert a.call("PUT", "/_snapshot/nx/B2", {"indices": "nuxeo-audit"})[0] == 400  # must be lowercase
    assert a.call("PUT", "/_snapshot/nx/b3", {"indices": "nope"})[1]["error"]["type"] == "index_not_found_exception"
    assert a.call("GET", "/_snapshot/nx/b1")[1]["snapshots"][0]["uuid"] == info["uuid"]
    assert a.call("GET", "/_snapshot/nx/zz")[1]["error"]["type"] == "snapshot_missing_exception"
    assert any(k.startswith("/nuxeo-backup/audit-snapshots/snapshots/") for k in s3["objects"])

    # another node (a fresh site) with the same bucket: the snapshot is there once the repository is registered
    b = nodes("b")
    b.keys()
    b.api.reload_secure_settings()
    assert b.call("PUT", "/_snapshot/nx", _repo(s3))[0] == 200
    assert [s["snapshot"] for s in b.call("GET", "/_snapshot/nx/_all")[1]["snapshots"]] == ["b1"]
    _audit(b, 1)  # the fresh site's own (open) audit index
    status, err = b.call("POST", "/_snapshot/nx/b1/_restore?wait_for_completion=true", {"indices": "nuxeo-audit"})
    assert status == 500 and err["error"]["type"] == "snapshot_restore_exception"
    assert "open index with same name already exists" in err["error"]["reason"]
    # renamed beside it, then over it once closed
    status, renamed = b.call("POST", "/_snapshot/nx/b1/_restore?wait_for_completion=true",
                             {"indices": "nuxeo-audit", "rename_pattern": "(.+)", "rename_replacement": "restored-$1"})
    assert status == 200 and renamed["snapshot"]["indices"] == ["restored-nuxeo-audit"]
    assert b.call("GET", "/restored-nuxeo-audit/_count")[1]["count"] == 2500
    assert b.call("POST", "/nuxeo-audit/_close")[0] == 200
    status, done = b.call("POST", "/_snapshot/nx/b1/_restore?wait_for_completion=true",
                          {"indices": "nuxeo-audit", "include_global_state": False})
    assert status == 200 and done["snapshot"]["shards"]["failed"] == 0
    assert b.call("GET", "/nuxeo-audit/_count")[1]["count"] == 2500
    assert b.call("GET", "/nuxeo-audit/_doc/e7")[1]["_source"]["id"] == 7
    mapping = b.call("GET", "/nuxeo-audit/_mapping")[1]["nuxeo-audit"]["mappings"]["properties"]
    assert mapping["eventDate"]["type"] == "date"
    # the repository's registration is forgotten, its snapshots are not
    assert b.call("DELETE", "/_snapshot/nx")[0] == 200
    assert b.call("GET", "/_snapshot/nx/_all")[0] == 404
    assert a.call("DELETE", "/_snapshot/nx/b1")[0] == 200
    assert not [k for k in s3["objects"] if "/snapshots/" in k]


def test_restore_into_a_closed_index_needs_the_same_shard_count(nodes, s3) -> None:
    node = nodes()
    node.keys()
    node.api.reload_secure_settings()
    assert node.call("PUT", "/_snapshot/nx", _repo(s3))[0] == 200
    _audit(node, 3)
    assert node.call("PUT", "/_snapshot/nx/s1?wait_for_completion=true", {"indices": "nuxeo-audit"})[0] == 200
    node.call("DELETE", "/nuxeo-audit")
    node.call("PUT", "/nuxeo-audit", {"settings": {"number_of_shards": 1}})
    node.call("POST", "/nuxeo-audit/_close")
    status, err = node.call("POST", "/_snapshot/nx/s1/_restore", {"indices": "nuxeo-audit"})
    assert status == 500 and "with [1] shards from a snapshot of index [nuxeo-audit] with [5] shards" in err[
        "error"]["reason"]
    node.call("DELETE", "/nuxeo-audit")
    assert node.call("POST", "/_snapshot/nx/s1/_restore", {"indices": "nuxeo-audit"}) == (200, {"accepted": True})
    assert node.call("GET", "/nuxeo-audit/_count")[1]["count"] == 3


def test_jvm_trust_store_options() -> None:
    opts = ["-Xms1g", "-Djavax.net.ssl.trustStore=/etc/x/ts.jks", "-Djavax.net.ssl.trustStorePassword=changeit",
            "-Djavax.net.ssl.trustStoreType=JKS"]
    assert opensearch_snapshots.jvm_trust_store(opts) == ("/etc/x/ts.jks", "changeit", "JKS")
    assert opensearch_snapshots.jvm_trust_store(["-Xms1g"]) == ("", "", "")


def test_keystore_cli(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("OPENSEARCH_PATH_CONF", str(tmp_path))
    assert opensearch_keystore.main(["list"]) == 65  # none yet
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{ACCESS}\n{SECRET}\n"))
    assert opensearch_keystore.main(["add", "--stdin", "--force", "s3.client.default.access_key",
                                     "s3.client.default.secret_key"]) == 0
    path = tmp_path / "opensearch.keystore"
    assert path.stat().st_mode & 0o777 == 0o660
    assert SECRET not in path.read_text()  # not in clear (base64), though not encrypted either
    values = opensearch_keystore.read(path)
    assert values["s3.client.default.access_key"] == ACCESS and values["s3.client.default.secret_key"] == SECRET
    assert "keystore.seed" in values
    monkeypatch.setattr("sys.stdin", io.StringIO("other\n"))
    assert opensearch_keystore.main(["add", "-x", "s3.client.default.access_key"]) == 1  # exists, no --force
    capsys.readouterr()
    assert opensearch_keystore.main(["list"]) == 0
    assert capsys.readouterr().out.split() == ["keystore.seed", "s3.client.default.access_key",
                                               "s3.client.default.secret_key"]
    assert opensearch_keystore.main(["remove", "s3.client.default.secret_key"]) == 0
    assert "s3.client.default.secret_key" not in opensearch_keystore.read(path)


def test_standin_refuses_s3_secure_settings_without_the_plugin(tmp_path, monkeypatch) -> None:
    opensearch_keystore.write(tmp_path / "opensearch.keystore", {"s3.client.default.access_key": "a"})
    monkeypatch.setattr(opensearch_standin, "repository_s3_installed", lambda: False)
    with pytest.raises(ValueError, match=r"unknown secure setting \[s3.client.default.access_key\]"):
        opensearch_standin.check_secure_settings(tmp_path)
    monkeypatch.setattr(opensearch_standin, "repository_s3_installed", lambda: True)
    opensearch_standin.check_secure_settings(tmp_path)
