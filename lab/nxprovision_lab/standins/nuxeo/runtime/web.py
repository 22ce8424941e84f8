"""The stand-in's HTTP side: the Nuxeo REST subset the official Python client uses, the
runningstatus servlet, session cookies with the node's jvmRoute, and a server that stops gracefully
(stops accepting, finishes in-flight requests, then closes idle keep-alive connections)."""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import logging
import mimetypes
import socket
import threading
import time
import urllib.parse
import uuid
from collections import OrderedDict
from http import HTTPStatus
from pathlib import Path
from typing import Any

from .bulk import ReindexRunning
from .node import BadRequest, Node, NotFound
from .repository import Conflict

log = logging.getLogger("nuxeo.web")
SESSION_CAP = 10000


class UploadError(Exception):
    pass


class LocalKV:
    """Transient objects on this node's disk (no S3: a single node, or a shared filesystem as Nuxeo asks)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / key

    def put(self, key: str, data: bytes) -> None:
        f = self._path(key)
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_name(f".{f.name}.{uuid.uuid4().hex}")
        tmp.write_bytes(data)
        tmp.replace(f)

    def get(self, key: str) -> bytes | None:
        f = self._path(key)
        return f.read_bytes() if f.is_file() else None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3KV:
    """Transient objects in the binary store's bucket, under Nuxeo's transient prefix: every node of the
    cluster sees every batch, as with Nuxeo's KeyValueBlobTransientStore on S3 (a client whose node went
    away finishes its upload on another node)."""

    def __init__(self, s3: Any, prefix: str) -> None:
        self.s3, self.prefix = s3, prefix

    def put(self, key: str, data: bytes) -> None:
        self.s3.put(self.prefix + key, data)

    def get(self, key: str) -> bytes | None:
        from .s3 import S3Error

        try:
            return bytes(self.s3.get(self.prefix + key))
        except S3Error as e:
            if e.status == 404:
                return None
            raise

    def delete(self, key: str) -> None:
        self.s3.delete(self.prefix + key)


class Batches:
    """Batch uploads in the transient store: `<batch>/index` lists the file indexes, `<batch>/<idx>.json`
    holds a file's metadata, `<batch>/<idx>.data` its content and `<batch>/<idx>.chunk<n>` its chunks."""

    def __init__(self, kv: LocalKV | S3KV) -> None:
        self.kv = kv
        self.lock = threading.Lock()

    @staticmethod
    def _key(batch_id: str, name: str) -> str:
        if "/" in batch_id or batch_id.startswith(".") or not batch_id.startswith("batchId-"):
            raise NotFound(batch_id)
        return f"{batch_id}/{name}"

    def _index(self, batch_id: str) -> list[str] | None:
        raw = self.kv.get(self._key(batch_id, "index"))
        return None if raw is None else list(json.loads(raw))

    def new(self) -> str:
        batch_id = "batchId-" + str(uuid.uuid4())
        self.kv.put(self._key(batch_id, "index"), b"[]")
        return batch_id

    def exists(self, batch_id: str) -> bool:
        return self._index(batch_id) is not None

    def meta(self, batch_id: str, idx: str) -> dict[str, Any] | None:
        raw = self.kv.get(self._key(batch_id, f"{idx}.json"))
        return None if raw is None else dict(json.loads(raw))

    def save_meta(self, batch_id: str, idx: str, meta: dict[str, Any]) -> None:
        self.kv.put(self._key(batch_id, f"{idx}.json"), json.dumps(meta).encode())
        index = self._index(batch_id) or []
        if idx not in index:
            self.kv.put(self._key(batch_id, "index"), json.dumps([*index, idx]).encode())

    def files(self, batch_id: str) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for idx in sorted(self._index(batch_id) or [], key=lambda i: int(i) if i.isdigit() else 0):
            meta = self.meta(batch_id, idx)
            if meta and meta.get("complete"):
                out.append((idx, meta))
        return out

    def put_data(self, batch_id: str, idx: str, data: bytes) -> None:
        self.kv.put(self._key(batch_id, f"{idx}.data"), data)

    def data(self, batch_id: str, idx: str) -> bytes:
        raw = self.kv.get(self._key(batch_id, f"{idx}.data"))
        if raw is None:
            raise BadRequest(f"No file {idx} in batch {batch_id}")
        return raw

    def put_chunk(self, batch_id: str, idx: str, chunk: int, data: bytes) -> None:
        self.kv.put(self._key(batch_id, f"{idx}.chunk{chunk}"), data)

    def chunk(self, batch_id: str, idx: str, chunk: int) -> bytes:
        return self.kv.get(self._key(batch_id, f"{idx}.chunk{chunk}")) or b""

    def drop_file(self, batch_id: str, idx: str, chunks: int = 0) -> None:
        for name in (f"{idx}.json", f"{idx}.data", *(f"{idx}.chunk{i}" for i in range(chunks))):
            self.kv.delete(self._key(batch_id, name))

    def drop(self, batch_id: str) -> None:
        for idx in self._index(batch_id) or []:
            meta = self.meta(batch_id, idx) or {}
            self.drop_file(batch_id, idx, int(meta.get("chunkCount") or 0))
        self.kv.delete(self._key(batch_id, "index"))

    def take_blob(self, batch_id: str, idx: str, node: Node) -> dict[str, Any]:
        if not self.exists(batch_id):
            raise BadRequest(f"Unknown batch {batch_id}")
        meta = self.meta(batch_id, idx)
        if not meta or not meta.get("complete"):
            raise BadRequest(f"No file {idx} in batch {batch_id}")
        return node.make_blob(self.data(batch_id, idx), meta["name"], meta["mimetype"])


def error_body(status: int, message: str) -> bytes:
    return json.dumps({"entity-type": "exception", "status": status, "message": message}).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Nuxeo-standin"
    timeout = 20  # Tomcat's connectionTimeout: idle keep-alive connections are closed after it
    server: StandinHTTPServer
    user: str | None = None  # who the current request is authenticated as

    # ---- plumbing ----
    def setup(self) -> None:
        super().setup()
        # one write per response plus NODELAY: no 40 ms Nagle/delayed-ACK stalls on keep-alive
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self, busy=False)

    def finish(self) -> None:
        self.server.untrack(self)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except (TimeoutError, OSError):
            self.close_connection = True
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        self.server.track(self, busy=True)
        try:
            if not self.parse_request():
                return
            self.dispatch()
            try:
                self.wfile.flush()
            except OSError:
                self.close_connection = True
        finally:
            self.server.track(self, busy=False)

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def respond(
        self,
        status: int,
        body: bytes = b"",
        ctype: str = "application/json",
        extra: dict[str, str] | None = None,
    ) -> None:
        node = self.server.node
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        lines = [
            f"HTTP/1.1 {status} {reason}",
            f"Server: {self.server_version}",
            f"Date: {self.date_time_string()}",
            f"X-Nuxeo-Node: {node.node_id}",
        ]
        if status != 204:
            lines += [f"Content-Type: {ctype}", f"Content-Length: {len(body)}"]
        if self.new_session:
            lines.append(f"Set-Cookie: JSESSIONID={self.new_session}; Path={node.context}; HttpOnly")
        for k, v in (extra or {}).items():
            lines.append(f"{k}: {v}")
        if self.server.stopping or self.close_connection:
            lines.append("Connection: close")
            self.close_connection = True
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        self.wfile.write(head + (b"" if self.command == "HEAD" or status == 204 else body))

    def json(self, status: int, payload: Any) -> None:
        self.respond(status, json.dumps(payload).encode())

    def error(self, status: int, message: str) -> None:
        self.respond(status, error_body(status, message))

    def do_GET(self) -> None:
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

    # ---- sessions and auth ----
    def session(self) -> str | None:
        cookie = self.headers.get("Cookie") or ""
        for part in cookie.split(";"):
            k, _, v = part.strip().partition("=")
            if k == "JSESSIONID" and v:
                return v
        return None

    def authenticated(self) -> str | None:
        """The user this request is authenticated as: its session's, or Basic credentials checked against the
        user directory in the database (so a password changed through another node holds here too)."""
        sid = self.session()
        if sid:
            user = self.server.session_user(sid)
            if user:
                return user
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("Basic "):
            try:
                user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            if user and self.server.node.check_password(user, pw):
                self.server.mark_authenticated(self.new_session or sid or "", user)
                return user
        return None

    # ---- routing ----
    def dispatch(self) -> None:
        node = self.server.node
        split = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(split.path)  # keeps '+' as is, like Tomcat
        self.query_params = {k: v[-1] for k, v in urllib.parse.parse_qs(split.query, keep_blank_values=True).items()}
        sid = self.session()
        self.new_session = None
        if not sid or not self.server.session_known(sid):
            self.new_session = f"{uuid.uuid4().hex.upper()}.{node.jvm_route}"
            self.server.remember_session(self.new_session)
        self.body = self.read_body() if self.command in ("POST", "PUT", "DELETE") else b""
        if not (path == node.context or path.startswith(node.context + "/")):
            return self.error(404, path)
        rel = path[len(node.context) :] or "/"
        if rel == "/runningstatus":
            # not behind NuxeoAuthenticationFilter, so not in its request timer
            return self._serve(node, rel)
        started = time.perf_counter()
        try:
            return self._serve(node, rel)
        finally:
            node.metrics.request(started)

    def _serve(self, node: Node, rel: str) -> None:
        try:
            if rel == "/runningstatus":
                return self.running_status()
            if not node.started:
                return self.error(503, "Nuxeo is starting" if not node.stopping else "Nuxeo is stopping")
            if rel.startswith(("/api/", "/site/", "/json/", "/nxfile/")):
                self.user = self.authenticated()
                if not self.user:
                    return self.respond(
                        401,
                        error_body(401, "Unauthorized"),
                        extra={"WWW-Authenticate": 'Basic realm="Nuxeo"'},
                    )
                return self.route(rel)
            return self.static(rel)
        except NotFound as e:
            self.error(404, str(e))
        except BadRequest as e:
            self.error(400, str(e))
        except Conflict:
            self.error(409, "Document was modified by another user: change token is stale")
        except BrokenPipeError:
            self.close_connection = True
        except Exception as e:
            log.exception("error serving %s %s", self.command, self.path)
            self.error(500, f"{type(e).__name__}: {e}")

    def base_url(self) -> str:
        vhost = self.headers.get("nuxeo-virtual-host")
        if vhost:
            return vhost.rstrip("/") + self.server.node.context
        return f"http://{self.headers.get('Host', 'localhost')}{self.server.node.context}"

    def route(self, rel: str) -> None:
        node = self.server.node
        m = self.command
        if rel == "/json/cmis" and m == "GET":
            return self.json(
                200,
                {
                    "default": {
                        "repositoryId": "default",
                        "repositoryName": "default",
                        "repositoryDescription": "Default Repository",
                        "vendorName": "Nuxeo",
                        "productName": "Nuxeo Platform (nxprovision stand-in)",
                        "productVersion": node.version,
                        "cmisVersionSupported": "1.1",
                        "standin": True,
                        "rootFolderUrl": self.base_url() + "/json/cmis/default/root",
                    }
                },
            )
        if rel.startswith("/site/api/v1/"):
            rel = rel[len("/site") :]
        if rel == "/api/v1/me" and m == "GET":
            return self.json(200, self.user_entity())
        if rel == "/api/v1/me/changepassword":
            # JAX-RS answers 405 for a method the resource does not declare
            return self.change_password() if m == "PUT" else self.error(405, m)
        if rel == "/api/v1/cluster" and m == "GET":
            nodes = node.repo.live_nodes(15.0)
            return self.json(
                200, {"entity-type": "clusterNodes", "standin": True, "self": node.node_id, "entries": nodes}
            )
        if rel.startswith("/api/v1/management/"):
            return self.management(rel)
        if rel.startswith("/api/v1/upload"):
            return self.upload(rel[len("/api/v1/upload") :])
        if rel in ("/api/v1/query/NXQL", "/api/v1/search/lang/NXQL/execute") and m == "GET":
            return self.query(self.query_params.get("query", ""))
        if rel.startswith("/api/v1/query/") and m == "GET":
            return self.page_provider(rel[len("/api/v1/query/") :])
        if rel.startswith("/api/v1/repo/"):
            rest = rel[len("/api/v1/repo/") :]
            _repo, _, rest = rest.partition("/")
            return self.documents("/" + rest)
        if rel.startswith(("/api/v1/path/", "/api/v1/id/")):
            return self.documents(rel[len("/api/v1") :])
        if rel.startswith("/nxfile/") and m == "GET":
            parts = rel.split("/")  # /nxfile/default/<uid>/<xpath...>/<name>
            if len(parts) < 5:
                raise NotFound(rel)
            doc = node.resolve(parts[3], by_path=False)
            xpath = "/".join(parts[4:-1]) if len(parts) > 5 else parts[4]
            return self.send_blob(doc, xpath)
        if rel in ("/site/automation", "/api/v1/automation") and m == "GET":
            return self.json(
                200,
                {
                    "operations": [
                        {
                            "id": op,
                            "aliases": [],
                            "params": [{"name": "document", "type": "document", "required": False}],
                        }
                        for op in ("Blob.AttachOnDocument", "Document.Fetch", "Repository.Query")
                    ]
                },
            )
        if rel.startswith(("/site/automation/", "/api/v1/automation/")) and m == "POST":
            return self.automation(rel.rsplit("/", 1)[1])
        raise NotFound(rel)

    # ---- management ----
    def management(self, rel: str) -> None:
        """The Management REST API, for administrators only: the repository reindex and bulk statuses."""
        node = self.server.node
        if self.user != "Administrator":
            return self.error(403, "The Management REST API is restricted to administrators")
        if rel == node.reindex_path:
            if self.command != "POST":
                return self.error(405, self.command)
            if self.query_params.get("query"):
                raise BadRequest("the stand-in reindexes the whole repository only (no query)")
            try:
                return self.json(200, node.reindex())
            except ReindexRunning:
                return self.error(409, "A repository reindex is already in progress")
        if rel.startswith("/api/v1/management/bulk/") and self.command == "GET":
            status = node.bulk.status(rel.rsplit("/", 1)[1])
            if status is None:
                raise NotFound(rel)
            return self.json(200, status)
        raise NotFound(rel)

    # ---- documents ----
    def documents(self, rest: str) -> None:
        node = self.server.node
        adapter = ""
        if "/@" in rest:
            rest, _, adapter = rest.partition("/@")
        kind, _, ref = rest.lstrip("/").partition("/")
        if kind == "path":
            doc = node.resolve("/" + ref.strip("/") if ref.strip("/") else "/", by_path=True)
        elif kind == "id":
            doc = node.resolve(ref.strip("/"), by_path=False)
        else:
            raise NotFound(rest)
        m = self.command
        base = self.base_url()
        if adapter == "children" and m == "GET":
            kids = node.repo.children(doc.id)
            return self.json(200, self.page([node.render(d, base) for d in kids], len(kids), len(kids) or 1, 0, 1))
        if adapter.startswith("blob/") and m == "GET":
            return self.send_blob(doc, adapter[len("blob/") :])
        if adapter == "audit" and m == "GET":
            entries = node.audit_entries(doc)
            return self.json(200, {"entity-type": "logEntries", "entries": entries})
        if adapter:
            raise NotFound("@" + adapter)
        if m == "GET":
            return self.json(200, node.render(doc, base))
        if m == "POST":
            payload = self.json_body()
            child = node.create(doc, payload, self.server.batches)
            return self.json(201, node.render(child, base))
        if m == "PUT":
            payload = self.json_body()
            updated = node.update(doc, payload, self.server.batches)
            return self.json(200, node.render(updated, base))
        if m == "DELETE":
            node.delete(doc)
            return self.respond(204)
        self.error(405, m)

    def user_entity(self) -> dict[str, Any]:
        return {
            "entity-type": "user",
            "id": self.user,
            "isAdministrator": self.user == "Administrator",
            "isAnonymous": False,
            "properties": {
                "username": self.user,
                "firstName": "",
                "lastName": "",
                "email": "",
                "groups": ["administrators"] if self.user == "Administrator" else [],
                "company": "",
            },
            "extendedGroups": [{"name": "administrators", "label": "Administrators group"}]
            if self.user == "Administrator" else [],
        }

    def change_password(self) -> None:
        """PUT /api/v1/me/changepassword {"oldPassword", "newPassword"} (Nuxeo's MeObject, since 9.1): the
        authenticated user's own password; 401 with no body when oldPassword is not the current one, the user
        entity when changed. Nuxeo fails on a payload without both keys (a JSONException); the stand-in says 400,
        never a 5xx that clients retry."""
        payload = self.json_body()
        old, new = payload.get("oldPassword"), payload.get("newPassword")
        if not isinstance(old, str) or not isinstance(new, str):
            raise BadRequest("JSONObject[\"oldPassword\"] and JSONObject[\"newPassword\"] are required strings")
        assert self.user
        if not self.server.node.change_password(self.user, old, new):
            return self.respond(401, b"", "application/json")
        return self.json(200, self.user_entity())

    def json_body(self) -> dict[str, Any]:
        if not self.body:
            return {}
        try:
            payload = json.loads(self.body)
        except ValueError as e:
            raise BadRequest(f"invalid JSON: {e}") from e
        if not isinstance(payload, dict):
            raise BadRequest("a JSON object is expected")
        return payload

    def send_blob(self, doc: Any, xpath: str) -> None:
        node = self.server.node
        if xpath in ("blobholder:0", ""):
            xpath = "file:content"
        blob: Any = doc.props
        for part in xpath.split("/"):
            if isinstance(blob, dict):
                blob = blob.get(part)
            elif isinstance(blob, list) and part.isdigit() and int(part) < len(blob):
                blob = blob[int(part)]
            else:
                blob = None
        if not isinstance(blob, dict) or "digest" not in blob:
            raise NotFound(f"no blob at {xpath} on {doc.path}")
        data = node.blobs.get(blob["digest"])
        name = urllib.parse.quote(blob.get("name") or "file")
        self.respond(
            200,
            data,
            blob.get("mime-type") or "application/octet-stream",
            {"Content-Disposition": f"attachment; filename*=UTF-8''{name}", "ETag": f'"{blob["digest"]}"'},
        )

    # ---- query ----
    def page(self, entries: list[Any], total: int, size: int, index: int, pages: int) -> dict[str, Any]:
        return {
            "entity-type": "documents",
            "isPaginable": True,
            "resultsCount": total,
            "pageSize": size,
            "maxPageSize": 1000,
            "currentPageSize": len(entries),
            "currentPageIndex": index,
            "numberOfPages": pages,
            "isPreviousPageAvailable": index > 0,
            "isNextPageAvailable": index + 1 < pages,
            "isLastPageAvailable": index + 1 < pages,
            "isSortable": True,
            "hasError": False,
            "errorMessage": None,
            "totalSize": total,
            "pageIndex": index,
            "pageCount": pages,
            "entries": entries,
        }

    def query(self, nxql_text: str) -> None:
        node = self.server.node
        p = self.query_params
        try:
            size = int(p.get("pageSize", "50") or 50)
            index = int(p.get("currentPageIndex", "0") or 0)
        except ValueError as e:
            raise BadRequest(str(e)) from e
        res = node.query(nxql_text, size, index, p.get("sortBy", ""), p.get("sortOrder", ""))
        base = self.base_url()
        entries = [node.render(d, base) for d in res["docs"]]
        self.json(200, self.page(entries, res["total"], res["pageSize"], index, res["numberOfPages"]))

    def page_provider(self, name: str) -> None:
        p = self.query_params
        clauses = ["ecm:isTrashed = 0"]
        if p.get("ecm_fulltext"):
            clauses.append("ecm:fulltext = '" + p["ecm_fulltext"].replace("'", "''") + "'")
        if name not in ("default_search", "simple_search", "REST_API_SEARCH_ADAPTER"):
            raise NotFound(f"page provider {name}")
        self.query("SELECT * FROM Document WHERE " + " AND ".join(clauses))

    # ---- upload ----
    def upload(self, rest: str) -> None:
        batches = self.server.batches
        parts = [p for p in rest.split("/") if p]
        m = self.command
        if not parts:
            if m == "POST":
                return self.json(201, {"batchId": batches.new()})
            raise NotFound("upload")
        batch_id = parts[0]
        if not batches.exists(batch_id):
            raise NotFound(f"Batch {batch_id} not found")
        if len(parts) == 1:
            if m == "GET":
                files = [{"name": meta["name"], "size": meta["size"]} for _, meta in batches.files(batch_id)]
                return self.json(200, files) if files else self.respond(204)
            if m == "DELETE":
                batches.drop(batch_id)
                return self.respond(204)
            raise NotFound(rest)
        if parts[1] == "execute" and len(parts) == 3 and m == "POST":
            return self.execute_on_batch(batch_id, None, parts[2])
        idx = parts[1]
        if len(parts) == 4 and parts[2] == "execute" and m == "POST":
            return self.execute_on_batch(batch_id, idx, parts[3])
        if len(parts) != 2 or not idx.isdigit():
            raise NotFound(rest)
        if m == "GET":
            meta = batches.meta(batch_id, idx)
            if meta is None:
                raise NotFound(f"File {idx} not found in batch {batch_id}")
            return self.json(200, self.file_info(batch_id, idx, meta))
        if m == "DELETE":
            meta = batches.meta(batch_id, idx) or {}
            batches.drop_file(batch_id, idx, int(meta.get("chunkCount") or 0))
            return self.respond(204)
        if m == "POST":
            return self.upload_file(batch_id, idx)
        self.error(405, m)

    def file_info(self, batch_id: str, idx: str, meta: dict[str, Any]) -> dict[str, Any]:
        info = {
            "uploaded": "true" if meta.get("complete") else "false",
            "batchId": batch_id,
            "fileIdx": idx,
            "uploadType": meta.get("uploadType", "normal"),
            "uploadedSize": str(meta.get("size", 0)),
            "name": meta.get("name"),
            "size": meta.get("size"),
        }
        if meta.get("uploadType") == "chunked":
            info["uploadedChunkIds"] = [str(c) for c in sorted(meta.get("chunks", []))]
            info["chunkCount"] = str(meta.get("chunkCount"))
        return info

    def upload_file(self, batch_id: str, idx: str) -> None:
        batches = self.server.batches
        h = self.headers
        name = urllib.parse.unquote(h.get("X-File-Name") or f"file-{idx}")
        mimetype = h.get("X-File-Type") or h.get("Content-Type") or "application/octet-stream"
        data = self.body
        if (h.get("X-Upload-Type") or "normal").lower() != "chunked":
            batches.put_data(batch_id, idx, data)
            meta = {
                "name": name,
                "mimetype": mimetype,
                "size": len(data),
                "complete": True,
                "uploadType": "normal",
            }
            batches.save_meta(batch_id, idx, meta)
            return self.json(201, self.file_info(batch_id, idx, meta))
        try:
            chunk = int(h.get("X-Upload-Chunk-Index", "0"))
            count = int(h.get("X-Upload-Chunk-Count", "1"))
        except ValueError as e:
            raise BadRequest(str(e)) from e
        with batches.lock:
            meta = batches.meta(batch_id, idx) or {
                "name": name,
                "mimetype": mimetype,
                "uploadType": "chunked",
                "chunks": [],
                "chunkCount": count,
                "size": 0,
                "complete": False,
            }
            # the client may send a chunk twice (after 3xx answers): storing it again is harmless
            batches.put_chunk(batch_id, idx, chunk, data)
            meta["chunks"] = sorted({*meta["chunks"], chunk})
            if len(meta["chunks"]) >= count:
                whole = b"".join(batches.chunk(batch_id, idx, i) for i in range(count))
                batches.put_data(batch_id, idx, whole)
                meta["complete"] = True
                meta["size"] = len(whole)
            else:
                meta["size"] = sum(len(batches.chunk(batch_id, idx, i)) for i in meta["chunks"])
            batches.save_meta(batch_id, idx, meta)
        self.json(201 if meta["complete"] else 202, self.file_info(batch_id, idx, meta))

    def execute_on_batch(self, batch_id: str, idx: str | None, op: str) -> None:
        node = self.server.node
        batches = self.server.batches
        if op not in ("Blob.AttachOnDocument", "Blob.Attach"):
            raise NotFound(f"operation {op}")
        params = self.json_body().get("params") or {}
        ref = params.get("document")
        if not ref:
            raise BadRequest("missing parameter 'document'")
        doc = node.resolve_any(str(ref).removeprefix("doc:"))
        indexes = [idx] if idx is not None else [i for i, _ in batches.files(batch_id)]
        blobs = [batches.take_blob(batch_id, i, node) for i in indexes]
        if not blobs:
            raise BadRequest(f"batch {batch_id} holds no file")
        xpath = params.get("xpath") or ("files:files" if len(blobs) > 1 else "file:content")
        node.attach(doc, xpath, blobs)
        if (self.headers.get("X-Batch-No-Drop") or "").lower() != "true":
            batches.drop(batch_id)
        if (self.headers.get("X-NXVoidOperation") or "").lower() == "true":
            return self.respond(204)
        data = node.blobs.get(blobs[0]["digest"])
        self.respond(200, data, blobs[0]["mime-type"])

    def automation(self, op: str) -> None:
        node = self.server.node
        payload = self.json_body()
        params = payload.get("params") or {}
        if op == "Document.Fetch":
            doc = node.resolve_any(str(params.get("value", "")))
            return self.json(200, node.render(doc, self.base_url()))
        if op == "Repository.Query":
            self.query_params = {k: str(v) for k, v in params.items() if k != "query"}
            return self.query(str(params.get("query", "")))
        raise NotFound(f"operation {op}")

    # ---- runningstatus ----
    def running_status(self) -> None:
        node = self.server.node
        info = self.query_params.get("info", "")
        if info == "reload":
            if node.started and not node.stopping:
                return self.respond(200, b"reload();", "text/plain")
            return self.respond(503, b"", "text/plain")
        if info == "started":
            return self.respond(200, b"true" if node.started else b"false", "text/plain")
        if not node.started:
            return self.error(503, "Nuxeo is starting" if not node.stopping else "Nuxeo is stopping")
        if info == "summary":
            if self.query_params.get("key") != node.status_key:
                return self.error(403, "Forbidden: wrong server.status.key")
            results = node.probes()
            return self.json(
                200 if all(results.values()) else 500,
                {
                    "standin": True,
                    "nodeId": node.node_id,
                    "jvmRoute": node.jvm_route,
                    "version": node.version,
                    "workProcessing": node.work_processing,
                    "uptimeSeconds": round(time.time() - (node.started_at or 0)),
                    "probes": {k: "ok" if v else "failed" for k, v in results.items()},
                },
            )
        if info == "probe":
            key = self.query_params.get("key", "")
            results = node.probes()
            if key not in results:
                return self.error(404, f"unknown probe {key}")
            return self.json(200 if results[key] else 500, {key: "ok" if results[key] else "failed", "standin": True})
        results = node.probes()
        body = {k: "ok" if v else "failed" for k, v in results.items()}
        body["standin"] = True  # type: ignore[assignment]
        body["notice"] = NOTICE
        self.json(200 if all(results.values()) else 500, body)

    # ---- static files of nxserver/nuxeo.war (clusterinfo.html for affinity checks) ----
    def static(self, rel: str) -> None:
        war = (self.server.node.cfg.home / "nxserver" / "nuxeo.war").resolve()
        target = (war / rel.lstrip("/")).resolve()
        if target.is_dir():
            target = target / "index.html"
        if not str(target).startswith(str(war) + "/") or not target.is_file() or self.command not in ("GET", "HEAD"):
            raise NotFound(rel)
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        self.respond(200, target.read_bytes(), ctype)


# What the runningstatus answer (and so `nxprovision status`) says the stand-in does not do.
NOTICE = ("Nuxeo stand-in: a subset of the REST and Automation APIs and of NXQL over the real backends; "
          "no Nuxeo Platform code, no UI, no marketplace packages' features")


class StandinHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1000  # nuxeo.server.http.acceptCount

    def __init__(self, addr: tuple[str, int], node: Node, batches: Batches) -> None:
        self.node = node
        self.batches = batches
        self.stopping = False
        self._conns: dict[Handler, bool] = {}
        self._cond = threading.Condition()
        self._sessions: OrderedDict[str, str] = OrderedDict()
        self._session_lock = threading.Lock()
        super().__init__(addr, Handler)

    def track(self, h: Handler, busy: bool) -> None:
        with self._cond:
            self._conns[h] = busy
            self._cond.notify_all()

    def untrack(self, h: Handler) -> None:
        with self._cond:
            self._conns.pop(h, None)
            self._cond.notify_all()

    def remember_session(self, sid: str) -> None:
        with self._session_lock:
            self._sessions[sid] = ""
            while len(self._sessions) > SESSION_CAP:
                self._sessions.popitem(last=False)

    def session_known(self, sid: str) -> bool:
        with self._session_lock:
            return sid in self._sessions

    def session_user(self, sid: str) -> str:
        with self._session_lock:
            return self._sessions.get(sid, "")

    def mark_authenticated(self, sid: str, user: str) -> None:
        with self._session_lock:
            if sid in self._sessions:
                self._sessions[sid] = user

    def drain(self, timeout_s: float) -> bool:
        """Wait for in-flight requests, then cut idle keep-alive connections. True if all finished."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while any(self._conns.values()) and time.monotonic() < deadline:
                self._cond.wait(0.1)
            finished = not any(self._conns.values())
            for h, busy in list(self._conns.items()):
                if not busy:
                    with contextlib.suppress(OSError):
                        h.connection.shutdown(socket.SHUT_RDWR)
        return finished
