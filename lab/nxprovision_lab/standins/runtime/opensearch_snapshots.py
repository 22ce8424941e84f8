"""The OpenSearch stand-in's snapshot API (S3 repositories), in front of its in-memory backend.

osmem-server has no snapshot API. This HTTP front answers `_snapshot/...` and `_nodes/reload_secure_settings`
itself, in OpenSearch's REST shapes (repository-s3 plugin), and passes every other request to the backend as it
is. What it keeps where:
- repository registrations: a JSON file in path.data (OpenSearch keeps them in the persisted cluster state);
- snapshots: objects in the repository's bucket under base_path, in the stand-in's own layout (index.json listing
  the snapshots, then per snapshot and index its settings and mappings and its documents as NDJSON), NOT
  OpenSearch's repository format; a copy of the bucket carries them to another stand-in;
- S3 credentials: s3.client.<client>.access_key / secret_key of the keystore, read at start and again on
  `POST _nodes/reload_secure_settings`, as OpenSearch does; endpoint, protocol and path_style_access from the
  repository settings, else the node's `s3.client.<client>.*` settings; https verified with the JVM's trust store
  (`-Djavax.net.ssl.trustStore` in jvm.options, else the system's CAs).
The `s3` repository type exists only when plugins/repository-s3 is installed, as with OpenSearch. Every stand-in node
holds the cluster's documents (opensearch_replication), so a snapshot taken on any node holds the whole index; a
restore's writes are copied to the other nodes as a client's are.
"""

from __future__ import annotations

import contextlib
import fnmatch
import http.client
import json
import re
import secrets
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

if __package__:
    from ..nuxeo.runtime import s3 as s3mod
    from ..nuxeo.runtime import truststore
    from . import opensearch_cluster
else:
    import opensearch_cluster  # type: ignore[no-redef]
    import s3 as s3mod  # type: ignore[no-redef]
    import truststore  # type: ignore[no-redef]

REPOSITORY_TYPES = ("s3",)
# index settings that describe one copy of an index, not the index: never restored
_INTERNAL_SETTINGS = ("creation_date", "provided_name", "uuid", "version", "verified_before_close", "replication",
                      "resize", "routing", "history")
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "upgrade", "date",
        "server"}
PAGE = 1000


class ApiError(Exception):
    def __init__(self, status: int, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.kind, self.reason = status, kind, reason

    def body(self) -> dict[str, Any]:
        cause = {"type": self.kind, "reason": self.reason}
        return {"error": {"root_cause": [cause], **cause}, "status": self.status}


def jvm_trust_store(jvm_options: list[str]) -> tuple[str, str, str]:
    """(path, password, type) of `-Djavax.net.ssl.trustStore*` ('' path: the JVM's default CAs)."""
    props = {}
    for opt in jvm_options:
        if opt.startswith("-Djavax.net.ssl.trustStore"):
            key, _, value = opt[2:].partition("=")
            props[key] = value
    return (props.get("javax.net.ssl.trustStore", ""), props.get("javax.net.ssl.trustStorePassword", ""),
            props.get("javax.net.ssl.trustStoreType", ""))


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def _flat(doc: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Settings as OpenSearch answers them: flat names, string values."""
    out: dict[str, str] = {}
    for k, v in doc.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = str(v).lower() if isinstance(v, bool) else str(v)
    return out


def _now_ms() -> int:
    return int(time.time() * 1000)


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


class Backend:
    """JSON requests to the in-memory server behind the front."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address

    def call(self, method: str, path: str, body: Any = None, ndjson: str = "") -> tuple[int, Any]:
        conn = http.client.HTTPConnection(*self.address, timeout=60)
        try:
            data = ndjson.encode() if ndjson else (json.dumps(body).encode() if body is not None else None)
            ctype = "application/x-ndjson" if ndjson else "application/json"
            conn.request(method, path, body=data, headers={"Content-Type": ctype})
            resp = conn.getresponse()
            text = resp.read()
            return resp.status, (json.loads(text) if text else {})
        finally:
            conn.close()

    def ok(self, method: str, path: str, body: Any = None, ndjson: str = "") -> Any:
        status, payload = self.call(method, path, body, ndjson)
        if status >= 300:
            err = payload.get("error") if isinstance(payload, dict) else None
            kind = err.get("type", "exception") if isinstance(err, dict) else "exception"
            reason = err.get("reason", str(err)) if isinstance(err, dict) else str(payload)
            raise ApiError(status, kind, reason)
        return payload

    def indices(self) -> dict[str, str]:
        """Every index and its state (open | close)."""
        rows = self.ok("GET", "/_cat/indices?format=json&expand_wildcards=all")
        return {r["index"]: r.get("status", "open") for r in rows}


class SnapshotApi:
    def __init__(self, backend: Backend, *, state_file: Path, keystore: Callable[[], dict[str, str]],
                 plugin_installed: bool, node_settings: dict[str, Any] | None = None,
                 trust_store: tuple[str, str, str] = ("", "", ""), node_name: str = "node",
                 cluster_name: str = "opensearch", version: str = "1.3.0") -> None:
        self.backend = backend
        self.state_file = state_file
        self._load_keystore = keystore
        self.secure = keystore()
        self.plugin_installed = plugin_installed
        self.node_settings = node_settings or {}
        self.trust_store = trust_store
        self.node_name, self.cluster_name, self.version = node_name, cluster_name, version
        self._lock = threading.Lock()
        self.repos: dict[str, dict[str, Any]] = (
            json.loads(state_file.read_text()) if state_file.exists() else {})

    # ------------------------------------------------------------------ dispatch

    def handle(self, method: str, parts: list[str], query: dict[str, str], body: Any) -> tuple[int, Any]:
        try:
            with self._lock:  # one snapshot operation at a time, as a cluster runs them
                return 200, self._route(method, parts, query, body if isinstance(body, dict) else {})
        except ApiError as e:
            return e.status, e.body()
        except s3mod.S3Error as e:
            return 500, ApiError(500, "repository_exception", f"S3 request failed: {e}").body()
        except (OSError, ssl.SSLError) as e:
            return 500, ApiError(500, "repository_exception", f"cannot reach the S3 endpoint: {e}").body()

    def _route(self, method: str, parts: list[str], query: dict[str, str], body: dict[str, Any]) -> Any:
        if parts[0] == "_nodes":
            if method != "POST":
                raise self._no_handler(method, parts)
            return self.reload_secure_settings()
        wait = query.get("wait_for_completion", "false") == "true"
        if len(parts) == 1:
            if method == "GET":
                return self.get_repositories(["_all"])
            raise self._no_handler(method, parts)
        if len(parts) == 2:
            if method in ("PUT", "POST"):
                return self.put_repository(parts[1], body, query.get("verify", "true") != "false")
            if method == "GET":
                return self.get_repositories(_as_list(parts[1]))
            if method == "DELETE":
                return self.delete_repository(parts[1])
        if len(parts) == 3 and parts[2] == "_verify" and method == "POST":
            repo = self._repo(parts[1])
            self._verify(parts[1], repo)
            return {"nodes": {self.node_name: {"name": self.node_name}}}
        if len(parts) == 3:
            if method in ("PUT", "POST") and parts[2] != "_all":
                return self.create_snapshot(parts[1], parts[2], body, wait)
            if method == "GET":
                return self.get_snapshots(parts[1], _as_list(parts[2]))
            if method == "DELETE":
                return self.delete_snapshot(parts[1], parts[2])
        if len(parts) == 4 and parts[3] == "_restore" and method == "POST":
            return self.restore(parts[1], parts[2], body, wait)
        raise self._no_handler(method, parts)

    @staticmethod
    def _no_handler(method: str, parts: list[str]) -> ApiError:
        return ApiError(405, "illegal_argument_exception",
                        f"Incorrect HTTP method for uri [/{'/'.join(parts)}] and method [{method}]")

    # ------------------------------------------------------------------ secure settings

    def reload_secure_settings(self) -> dict[str, Any]:
        self.secure = self._load_keystore()
        return {"_nodes": {"total": 1, "successful": 1, "failed": 0}, "cluster_name": self.cluster_name,
                "nodes": {self.node_name: {"name": self.node_name}}}

    # ------------------------------------------------------------------ repositories

    def _save(self) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        tmp.write_text(json.dumps(self.repos, indent=1, sort_keys=True))
        tmp.replace(self.state_file)

    def _repo(self, name: str) -> dict[str, Any]:
        if name not in self.repos:
            raise ApiError(404, "repository_missing_exception", f"[{name}] missing")
        return self.repos[name]

    def get_repositories(self, names: list[str]) -> dict[str, Any]:
        if not names or names in (["_all"], ["*"]):
            return dict(self.repos)
        out = {}
        for n in names:
            found = {k: v for k, v in self.repos.items() if fnmatch.fnmatchcase(k, n)}
            if not found and "*" not in n:
                raise ApiError(404, "repository_missing_exception", f"[{n}] missing")
            out.update(found)
        return out

    def put_repository(self, name: str, body: dict[str, Any], verify: bool) -> dict[str, Any]:
        kind = str(body.get("type") or "")
        if kind not in REPOSITORY_TYPES or not self.plugin_installed:
            hint = "" if self.plugin_installed or kind != "s3" else " (the repository-s3 plugin is not installed)"
            raise ApiError(500, "repository_exception",
                           f"[{name}] repository type [{kind}] does not exist{hint}")
        settings = _flat(body.get("settings") or {})
        if not settings.get("bucket"):
            raise ApiError(500, "repository_exception", f"[{name}] No bucket defined for s3 repository")
        repo = {"type": kind, "settings": settings}
        if verify:
            self._verify(name, repo)
        self.repos[name] = repo
        self._save()
        return {"acknowledged": True}

    def delete_repository(self, name: str) -> dict[str, Any]:
        self._repo(name)
        del self.repos[name]  # the registration only: the snapshots stay in the bucket
        self._save()
        return {"acknowledged": True}

    def _client(self, name: str, repo: dict[str, Any]) -> tuple[s3mod.S3Client, str]:
        s = repo["settings"]
        client = s.get("client", "default")

        def setting(key: str, default: str = "") -> str:
            return str(s.get(key) or self.node_settings.get(f"s3.client.{client}.{key}") or default)

        access = self.secure.get(f"s3.client.{client}.access_key", "")
        secret = self.secure.get(f"s3.client.{client}.secret_key", "")
        if not access or not secret:
            raise ApiError(500, "repository_exception",
                           f"[{name}] Unable to load AWS credentials: no s3.client.{client}.access_key and "
                           "secret_key in the keystore (the stand-in has no instance profile)")
        protocol = setting("protocol", "https").lower()
        endpoint = setting("endpoint")
        context = None
        if protocol == "https":
            try:
                context = truststore.client_context(*self.trust_store)
            except truststore.TrustStoreError as e:
                raise ApiError(500, "repository_exception", f"[{name}] {e}") from None
        base = s.get("base_path", "").strip("/")
        return s3mod.S3Client(
            endpoint=f"{protocol}://{endpoint}" if endpoint else "", bucket=s["bucket"], access_key=access,
            secret_key=secret, region=setting("region", "us-east-1"),
            path_style=setting("path_style_access", "false").lower() == "true", context=context,
        ), (base + "/" if base else "")

    def _verify(self, name: str, repo: dict[str, Any]) -> None:
        """What OpenSearch does when a repository is registered: write a blob, read it back, delete it."""
        try:
            client, base = self._client(name, repo)
            key = f"{base}tests-{secrets.token_urlsafe(16)}/master.dat"
            seed = secrets.token_bytes(16)
            client.put(key, seed)
            if client.get(key) != seed:
                raise s3mod.S3Error(0, "read back differs")
            client.delete(key)
        except (s3mod.S3Error, OSError, ssl.SSLError) as e:
            raise ApiError(500, "repository_verification_exception",
                           f"[{name}] path [{repo['settings'].get('base_path', '')}] is not accessible on master "
                           f"node: {e}") from None

    # ------------------------------------------------------------------ snapshots

    def _listing(self, client: s3mod.S3Client, base: str) -> list[dict[str, Any]]:
        try:
            return json.loads(client.get(f"{base}index.json")).get("snapshots", [])
        except s3mod.S3Error as e:
            if e.status == 404:
                return []
            raise

    def _write_listing(self, client: s3mod.S3Client, base: str, snaps: list[dict[str, Any]]) -> None:
        client.put(f"{base}index.json", json.dumps({"snapshots": snaps}, indent=1).encode(), "application/json")

    def _resolve(self, patterns: list[str], ignore_unavailable: bool) -> list[str]:
        states = self.backend.indices()
        chosen: list[str] = []
        for p in patterns or ["*"]:
            if p in ("_all", "*") or "*" in p:
                chosen += sorted(i for i, st in states.items() if fnmatch.fnmatchcase(i, "*" if p == "_all" else p)
                                 and st == "open" and not i.startswith("."))
            elif p not in states:
                if not ignore_unavailable:
                    raise ApiError(404, "index_not_found_exception", f"no such index [{p}]")
            elif states[p] != "open":
                raise ApiError(400, "index_closed_exception", f"closed: [{p}]")
            else:
                chosen.append(p)
        return list(dict.fromkeys(chosen))

    def _dump(self, index: str) -> tuple[dict[str, Any], list[str]]:
        # OpenSearch snapshots a flushed commit: every document indexed so far, searchable yet or not.
        self.backend.ok("POST", f"/{urllib.parse.quote(index)}/_refresh")
        meta = self.backend.ok("GET", "/" + urllib.parse.quote(index))[index]
        settings = {k: v for k, v in (meta.get("settings", {}).get("index") or {}).items()
                    if k not in _INTERNAL_SETTINGS}
        lines: list[str] = []
        after: list[Any] | None = None
        while True:
            query: dict[str, Any] = {"size": PAGE, "sort": [{"_id": "asc"}], "query": {"match_all": {}}}
            if after:
                query["search_after"] = after
            hits = self.backend.ok("POST", f"/{urllib.parse.quote(index)}/_search", query)["hits"]["hits"]
            lines += [json.dumps({"_id": h["_id"], "_source": h["_source"]}) for h in hits]
            if len(hits) < PAGE:
                break
            after = hits[-1]["sort"]
        return {"settings": {"index": settings}, "mappings": meta.get("mappings", {})}, lines

    def create_snapshot(self, repo_name: str, snap: str, body: dict[str, Any], wait: bool) -> dict[str, Any]:
        repo = self._repo(repo_name)
        if snap != snap.lower() or not re.fullmatch(r"[^\\/*?\"<>| ,#]+", snap) or snap.startswith("_"):
            raise ApiError(400, "invalid_snapshot_name_exception",
                           f"[{repo_name}:{snap}] Invalid snapshot name [{snap}], must be lowercase and hold no "
                           "special character")
        client, base = self._client(repo_name, repo)
        snaps = self._listing(client, base)
        if any(s["snapshot"] == snap for s in snaps):
            raise ApiError(400, "invalid_snapshot_name_exception",
                           f"[{repo_name}:{snap}] Invalid snapshot name [{snap}], snapshot with the same name "
                           "already exists")
        indices = self._resolve(_as_list(body.get("indices")), bool(body.get("ignore_unavailable")))
        uuid = secrets.token_urlsafe(16)
        start = _now_ms()
        shards = 0
        if not snaps:
            client.put(f"{base}STANDIN", b"Snapshots written by the nxprovision lab's OpenSearch stand-in: NOT "
                                         b"OpenSearch's repository format.\n", "text/plain")
        for index in indices:
            meta, lines = self._dump(index)
            shards += int(meta["settings"]["index"].get("number_of_shards", 1))
            client.put(f"{base}snapshots/{uuid}/{index}.json", json.dumps(meta).encode(), "application/json")
            client.put(f"{base}snapshots/{uuid}/{index}.ndjson", ("\n".join(lines) + "\n").encode() if lines
                       else b"", "application/x-ndjson")
        end = _now_ms()
        info = {
            "snapshot": snap, "uuid": uuid, "version_id": 0, "version": self.version, "indices": indices,
            "data_streams": [], "include_global_state": bool(body.get("include_global_state", True)),
            "state": "SUCCESS", "start_time": _iso(start), "start_time_in_millis": start, "end_time": _iso(end),
            "end_time_in_millis": end, "duration_in_millis": end - start, "failures": [],
            "shards": {"total": shards, "failed": 0, "successful": shards},
        }
        self._write_listing(client, base, [*snaps, info])
        return {"snapshot": info} if wait else {"accepted": True}

    def get_snapshots(self, repo_name: str, names: list[str]) -> dict[str, Any]:
        client, base = self._client(repo_name, self._repo(repo_name))
        snaps = self._listing(client, base)
        if not names or names in (["_all"], ["*"]):
            return {"snapshots": snaps}
        out = []
        for n in names:
            found = [s for s in snaps if fnmatch.fnmatchcase(s["snapshot"], n)]
            if not found and "*" not in n:
                raise ApiError(404, "snapshot_missing_exception", f"[{repo_name}:{n}] is missing")
            out += [s for s in found if s not in out]
        return {"snapshots": out}

    def _snapshot(self, repo_name: str, snap: str) -> tuple[s3mod.S3Client, str, dict[str, Any], list[dict]]:
        client, base = self._client(repo_name, self._repo(repo_name))
        snaps = self._listing(client, base)
        info = next((s for s in snaps if s["snapshot"] == snap), None)
        if info is None:
            raise ApiError(404, "snapshot_missing_exception", f"[{repo_name}:{snap}] is missing")
        return client, base, info, snaps

    def delete_snapshot(self, repo_name: str, snap: str) -> dict[str, Any]:
        client, base, info, snaps = self._snapshot(repo_name, snap)
        for index in info["indices"]:
            for ext in ("json", "ndjson"):
                client.delete(f"{base}snapshots/{info['uuid']}/{index}.{ext}")
        self._write_listing(client, base, [s for s in snaps if s["snapshot"] != snap])
        return {"acknowledged": True}

    def restore(self, repo_name: str, snap: str, body: dict[str, Any], wait: bool) -> dict[str, Any]:
        client, base, info, _ = self._snapshot(repo_name, snap)
        wanted = _as_list(body.get("indices")) or ["*"]
        chosen = [i for i in info["indices"] if any(fnmatch.fnmatchcase(i, p) for p in wanted)]
        for p in wanted:
            if "*" not in p and p not in info["indices"] and not body.get("ignore_unavailable"):
                raise ApiError(404, "index_not_found_exception", f"no such index [{p}]")
        pattern, replacement = body.get("rename_pattern"), body.get("rename_replacement")
        states = self.backend.indices()
        plan: list[tuple[str, str, dict[str, Any]]] = []
        for index in chosen:
            target = index
            if pattern:
                # Java's replacement syntax ($1) in Python's
                target = re.sub(pattern, re.sub(r"\$(\d+)", r"\\g<\1>", str(replacement or "")), index)
            meta = json.loads(client.get(f"{base}snapshots/{info['uuid']}/{index}.json"))
            state = states.get(target)
            where = f"[{repo_name}:{snap}/{info['uuid']}]"
            if state == "open":
                raise ApiError(500, "snapshot_restore_exception",
                               f"{where} cannot restore index [{target}] because an open index with same name "
                               "already exists in the cluster. Either close or delete the existing index or restore "
                               "the index under a different name by providing a rename pattern and replacement name")
            if state is not None:
                have = self.backend.ok("GET", f"/{urllib.parse.quote(target)}/_settings")[target]
                have_shards = str(have["settings"]["index"].get("number_of_shards"))
                snap_shards = str(meta["settings"]["index"].get("number_of_shards"))
                if have_shards != snap_shards:
                    raise ApiError(500, "snapshot_restore_exception",
                                   f"{where} cannot restore index [{target}] with [{have_shards}] shards from a "
                                   f"snapshot of index [{index}] with [{snap_shards}] shards")
            plan.append((index, target, meta))
        shards = 0
        for index, target, meta in plan:
            if states.get(target) is not None:
                self.backend.ok("DELETE", "/" + urllib.parse.quote(target))  # the closed index is replaced
            self.backend.ok("PUT", "/" + urllib.parse.quote(target), meta)
            shards += int(meta["settings"]["index"].get("number_of_shards", 1))
            lines = [ln for ln in client.get(f"{base}snapshots/{info['uuid']}/{index}.ndjson").decode()
                     .splitlines() if ln.strip()]
            for i in range(0, len(lines), PAGE):
                bulk = ""
                for ln in lines[i:i + PAGE]:
                    doc = json.loads(ln)
                    bulk += json.dumps({"index": {"_index": target, "_id": doc["_id"]}}) + "\n"
                    bulk += json.dumps(doc["_source"]) + "\n"
                result = self.backend.ok("POST", "/_bulk", ndjson=bulk)
                if result.get("errors"):
                    raise ApiError(500, "snapshot_restore_exception",
                                   f"[{repo_name}:{snap}] restoring [{target}] failed: {json.dumps(result)[:300]}")
            self.backend.ok("POST", f"/{urllib.parse.quote(target)}/_refresh")
        if not wait:
            return {"accepted": True}
        return {"snapshot": {"snapshot": snap, "indices": [t for _i, t, _m in plan],
                             "shards": {"total": shards, "failed": 0, "successful": shards}}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _FrontServer

    def log_message(self, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, headers: list[tuple[str, str]], data: bytes, length: int | None = None) -> None:
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _handle(self) -> None:
        body = self._read_body()
        if self.server.security is not None:
            # the security plugin answers first: 401 without valid credentials, 403 outside the user's roles
            refused = self.server.security.check(self.command, self.path, self.headers, body)
            if refused is not None:
                self._send(refused[0], refused[1], refused[2])
                return
        path, _, query = self.path.partition("?")
        parts = [urllib.parse.unquote(p) for p in path.split("/") if p]
        cluster = self.server.cluster
        if cluster is not None and opensearch_cluster.is_cluster_call(parts, self.command):
            q = {k: v[-1] for k, v in urllib.parse.parse_qs(query).items()}
            try:
                payload = json.loads(body) if body.strip() else {}
            except ValueError:
                status, answer = 400, ApiError(400, "parse_exception", "request body is not JSON").body()
            else:
                status, answer = cluster.handle(self.command, parts, q, payload)
            text = json.dumps(answer, indent=2 if "pretty" in q else None).encode()
            self._send(status, [("Content-Type", "application/json; charset=UTF-8")], text)
            return
        api = parts[:1] == ["_snapshot"] or (parts[:1] == ["_nodes"] and parts[-1:] == ["reload_secure_settings"])
        if api:
            q = {k: v[-1] for k, v in urllib.parse.parse_qs(query).items()}
            try:
                payload = json.loads(body) if body.strip() else {}
            except ValueError:
                status, answer = 400, ApiError(400, "parse_exception", "request body is not JSON").body()
            else:
                status, answer = self.server.api.handle(self.command, parts, q, payload)
            text = json.dumps(answer, indent=2 if "pretty" in q else None).encode()
            self._send(status, [("Content-Type", "application/json; charset=UTF-8")], text)
            return
        self._forward(body)

    def _upstream(self) -> http.client.HTTPConnection:
        local = self.server.local
        if getattr(local, "conn", None) is None:
            local.conn = http.client.HTTPConnection(*self.server.backend, timeout=300)
        return local.conn

    def _forward(self, body: bytes) -> None:
        replicator = self.server.replicator
        if replicator is not None:
            # a write is applied here, then copied to the cluster's other live nodes before the client's answer
            status, headers, data = replicator.write(self.command, self.path, body, lambda: self._pass_on(body))
        else:
            status, headers, data = self._pass_on(body)
        cluster = self.server.cluster
        path, _, query = self.path.partition("?")
        if (cluster is not None and status == 200 and self.command == "GET"
                and [p for p in path.split("/") if p][:2] == ["_cat", "indices"]):
            data = cluster.cat_indices(data, {k: v[-1] for k, v in
                                              urllib.parse.parse_qs(query, keep_blank_values=True).items()})
        # a HEAD answer's length is the backend's (of the body it did not send)
        given = [v for k, v in headers if k.lower() == "content-length"]
        length = int(given[0] or 0) if self.command == "HEAD" and given else None
        self._send(status, [(k, v) for k, v in headers if k.lower() != "content-length"], data, length)

    def _pass_on(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP and k.lower() != "host"}
        headers["Host"] = f"{self.server.backend[0]}:{self.server.backend[1]}"
        for attempt in (1, 2):
            conn = self._upstream()
            try:
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                break
            except (http.client.HTTPException, OSError):
                conn.close()
                self.server.local.conn = None  # a kept connection the backend closed: once more on a new one
                if attempt == 2:
                    return 502, [("Content-Type", "text/plain")], b"search backend unreachable\n"
        out = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP]
        if self.command == "HEAD":
            out.append(("Content-Length", resp.getheader("Content-Length") or "0"))
        return resp.status, out, data

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _handle


class _FrontServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Nuxeo opens a connection per request: a deep backlog, as the backend and the TLS listener have
    request_queue_size = 128

    def __init__(self, listen: tuple[str, int], backend: tuple[str, int], api: SnapshotApi,
                 security: Any = None, cluster: Any = None, replicator: Any = None) -> None:
        self.backend, self.api, self.local, self.security = backend, api, threading.local(), security
        self.cluster, self.replicator = cluster, replicator
        super().__init__(listen, _Handler)


def serve_front(listen: tuple[str, int], backend: tuple[str, int], api: SnapshotApi,
                security: Any = None, cluster: Any = None, replicator: Any = None) -> _FrontServer:
    """The REST port (or the loopback port behind the TLS listener): the security plugin's checks (when given),
    the snapshot API and the cluster view (opensearch_cluster, when given) here, the rest passed on; writes
    copied to the other nodes by the replicator (opensearch_replication, when given)."""
    server = _FrontServer(listen, backend, api, security, cluster, replicator)
    threading.Thread(target=server.serve_forever, name="rest-front", daemon=True).start()
    return server


def close_quietly(server: _FrontServer | None) -> None:
    if server is not None:
        with contextlib.suppress(Exception):
            server.shutdown()
            server.server_close()
