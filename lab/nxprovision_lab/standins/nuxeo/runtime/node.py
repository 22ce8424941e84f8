"""One stand-in Nuxeo node: its backends (database, binary store, search, stream), document
operations, the work it processes, cluster membership and the health probes."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import hashlib
import logging
import ssl
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from . import nxql
from .bulk import Bulk
from .conf import NuxeoConfig, audit_backend_key, dead_keys, lts_of, search_client_key, split_list
from .metrics import Metrics
from .repository import Doc, MongoRepository, PostgresRepository, Repository, hash_password, verify_password
from .s3 import S3Client
from .search import AUDIT_MAPPING, DOC_MAPPING, SearchClient
from .stream import WorkStream
from .truststore import client_context, describe, load_client_certificate

log = logging.getLogger("nuxeo.node")

FOLDERISH = {
    "Root",
    "Domain",
    "WorkspaceRoot",
    "SectionRoot",
    "TemplateRoot",
    "Workspace",
    "Folder",
    "OrderedFolder",
    "Section",
}
READ_ONLY = {"dc:created", "dc:creator", "dc:modified", "dc:lastContributor", "dc:contributors"}
BLOB_KEYS = ("name", "mime-type", "encoding", "digestAlgorithm", "digest", "length")
TEXT_LIMIT = 1 << 20
HEARTBEAT_S = 3.0
NODE_TTL_S = 15.0


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def is_blob(value: Any) -> bool:
    return isinstance(value, dict) and "digest" in value and "mime-type" in value


class NotFound(Exception):
    pass


class BadRequest(Exception):
    pass


class BlobStore:
    """Binaries keyed by their MD5 digest, in S3 (s3binaries template) or under nuxeo.binarystores.root."""

    def __init__(self, cfg: NuxeoConfig) -> None:
        self.s3: S3Client | None = None
        self.prefix = ""
        if cfg.has_template("s3binaries"):
            self.s3 = S3Client(
                endpoint=cfg.get("nuxeo.s3storage.endpoint"),
                bucket=cfg.get("nuxeo.s3storage.bucket"),
                access_key=cfg.get("nuxeo.aws.accessKeyId") or cfg.get("nuxeo.s3storage.awsid"),
                secret_key=cfg.get("nuxeo.aws.secretKey") or cfg.get("nuxeo.s3storage.awssecret"),
                region=cfg.get("nuxeo.aws.region") or cfg.get("nuxeo.s3storage.region") or "us-east-1",
                path_style=cfg.flag("nuxeo.s3storage.pathstyleaccess"),
                timeout=cfg.number("nuxeo.s3storage.socket.timeout", 50000) / 1000,
            )
            endpoint = cfg.get("nuxeo.s3storage.endpoint")
            if not endpoint or "://" not in endpoint or endpoint.startswith("https://"):
                # the aws template's trust store (nuxeo.aws.trustStore*), else the JVM's default CAs
                store = (cfg.get("nuxeo.aws.trustStorePath"), cfg.get("nuxeo.aws.trustStorePassword"),
                         cfg.get("nuxeo.aws.trustStoreType"))
                self.s3.context = client_context(*store)
                log.info("S3 binary store %s over TLS, verified with %s", endpoint or "(AWS)",
                         describe(store[0], store[2]))
            self.prefix = cfg.get("nuxeo.s3storage.bucket_prefix")
        self.root = cfg.path("nuxeo.binarystores.root", "nxserver/data") / "binaries" / "data"

    def _file(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:4] / digest

    def put(self, data: bytes) -> str:
        digest = hashlib.md5(data).hexdigest()
        if self.s3:
            key = self.prefix + digest
            if not self.s3.exists(key):
                self.s3.put(key, data)
        else:
            f = self._file(digest)
            if not f.exists():
                f.parent.mkdir(parents=True, exist_ok=True)
                tmp = f.with_suffix(f".tmp{uuid.uuid4().hex}")
                tmp.write_bytes(data)
                tmp.replace(f)
        return digest

    def get(self, digest: str) -> bytes:
        if self.s3:
            return self.s3.get(self.prefix + digest)
        return self._file(digest).read_bytes()

    def check(self) -> None:
        if self.s3:
            self.s3.head_bucket()
        elif not self.root.parent.exists():
            raise RuntimeError(f"{self.root.parent} missing")


class Node:
    def __init__(self, cfg: NuxeoConfig) -> None:
        self.cfg = cfg
        self.node_id = cfg.get("nuxeo.cluster.nodeid") or cfg.get("repository.clustering.id")
        if not self.node_id:
            self.node_id = uuid.uuid4().hex[:8]
            log.warning("nuxeo.cluster.nodeid is empty, using random node id %s", self.node_id)
        self.jvm_route = cfg.get("nuxeo.server.jvmRoute") or "nuxeo"
        self.version = cfg.get("org.nuxeo.ecm.product.version")
        self.context = "/" + cfg.get("org.nuxeo.ecm.contextPath", "/nuxeo").strip("/")
        self.status_key = cfg.get("server.status.key") or uuid.uuid4().hex[:8]
        self.work_processing = cfg.flag("nuxeo.work.processing.enabled", True) and not cfg.flag(
            "nuxeo.work.processing.disable"
        )
        self.started = False
        self.started_at: float | None = None
        self.stopping = False
        self.refresh_s = cfg.number("nuxeo.healthcheck.refresh.interval.seconds", 20)
        self._probe_cache: tuple[float, dict[str, bool]] | None = None
        self._probe_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.repo: Repository = self._make_repo()
        self.blobs = BlobStore(cfg)
        self.lts = lts_of(cfg)
        self.registered_file = cfg.path("nuxeo.data.dir", "nxserver/data") / "instance.clid"
        # an unregistered hotfixed LTS 2025 server stops after this many commits (Nuxeo: 100k)
        self.commit_limit = int(cfg.number("nuxeo.standin.unregistered.commit.limit", 100000))
        self.commits = 0
        self.on_commit_limit: Any = None
        if self.lts >= 2025:
            self._search_settings_2025(cfg)
        else:
            self._search_settings(cfg)
        self.bulk = Bulk()
        self.metrics = Metrics()
        self.stream: WorkStream | None = None
        if cfg.flag("kafka.enabled"):
            threads = int(cfg.number("nuxeo.work.queue.common.threads", 4))
            factor = int(cfg.number("nuxeo.stream.work.over.provisioning.factor", 3))
            self.stream = WorkStream(
                cfg.get("kafka.bootstrap.servers"),
                cfg.get("kafka.topicPrefix"),
                threads * factor,
                int(cfg.number("kafka.default.replication.factor", -1)),
                kafka_client_config(cfg),
            )
            self.metrics.stream_lag = self.stream.lag
        self._local_work = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="work")

    def _search_settings(self, cfg: NuxeoConfig) -> None:
        """Up to LTS 2023: the built-in client, elasticsearch.* and audit.elasticsearch.* keys."""
        self.search_enabled = cfg.flag("elasticsearch.enabled", True)
        self.search = self._search_client(
            split_list(cfg.get("elasticsearch.addressList")), "elasticsearch.restClient.",
            (cfg.get("elasticsearch.restClient.truststore.path"),
             cfg.get("elasticsearch.restClient.truststore.password"),
             cfg.get("elasticsearch.restClient.truststore.type")),
            cfg.flag("elasticsearch.restClient.ssl.certificate.verification", True))
        self.index_name = cfg.get("elasticsearch.indexName") or "nuxeo"
        self.replicas = int(cfg.number("elasticsearch.indexNumberOfReplicas", 1))
        self.shards = int(cfg.number("elasticsearch.indexNumberOfShards", 5))
        self.audit_enabled = cfg.flag("audit.elasticsearch.enabled")
        self.audit_index = cfg.get("audit.elasticsearch.indexName") or f"{self.index_name}-audit"

    def _search_settings_2025(self, cfg: NuxeoConfig) -> None:
        """LTS 2025: the search client and the audit store come from packages (templates <key>-search-client,
        <key>-audit) with keys of their own; elasticsearch.* and audit.elasticsearch.* have no effect."""
        for key in dead_keys(cfg):
            log.warning("%s has no effect since Nuxeo LTS 2025 (ignored)", key)
        client = search_client_key(cfg)
        self.search_enabled = bool(client)
        prefix = f"nuxeo.{client}.client."
        self.search = self._search_client(
            split_list(cfg.get(prefix + "server")) if client else [], prefix,
            (cfg.get(prefix + "trustStorePath"), cfg.get(prefix + "trustStorePassword"),
             cfg.get(prefix + "trustStoreType")),
            cfg.flag(prefix + "sslCertificateVerification", True))
        index = f"nuxeo.search.client.default.{client}."
        self.index_name = cfg.get(index + "index.name") or "nuxeo"
        self.replicas = int(cfg.number(index + "index.numberOfReplicas", 1))
        self.shards = int(cfg.number(index + "index.numberOfShards", 5))
        audit = audit_backend_key(cfg)
        self.audit_enabled = bool(audit) and audit == client
        self.audit_index = cfg.get(f"nuxeo.audit.backend.default.{audit}.index.name") or f"{self.index_name}-audit"
        if client:
            log.info("search client %s (index %s), audit store %s", client, self.index_name,
                     audit or "in memory (no audit package: testing purpose only)")
        else:
            log.warning("no search client package: only the limited repository search client runs")

    def _search_client(self, addresses: list[str], prefix: str, store: tuple[str, str, str],
                       verify: bool) -> SearchClient | None:
        if not addresses:
            return None
        search_ctx = None
        if any(a.startswith("https://") for a in addresses):
            search_ctx = client_context(*store)
            if not verify:
                search_ctx.check_hostname = False
                search_ctx.verify_mode = ssl.CERT_NONE
                log.warning("%sssl certificate verification off: search certificates are NOT verified", prefix)
            log.info("search cluster %s over TLS, verified with %s", ",".join(addresses),
                     describe(store[0], store[2]))
        return SearchClient(
            addresses,
            self.cfg.get(prefix + "username"),
            self.cfg.get(prefix + "password"),
            timeout=self.cfg.number(prefix + "socketTimeoutMs", 121000) / 1000,
            context=search_ctx,
        )

    def count_commit(self) -> None:
        """Nuxeo stops an unregistered hotfixed LTS 2025 server after its commit limit; a CLID registers it."""
        if self.lts < 2025:
            return
        self.commits += 1
        if self.commits >= self.commit_limit and not self.registered_file.is_file():
            log.error("this unregistered instance reached %d commits: register it (a CLID) to keep it running; "
                      "stopping", self.commits)
            if self.on_commit_limit:
                self.on_commit_limit()

    def _make_repo(self) -> Repository:
        c = self.cfg
        if c.get("nuxeo.db.type") == "mongodb" or c.has_template("mongodb"):
            return MongoRepository(c.get("nuxeo.mongodb.server"), c.get("nuxeo.mongodb.dbname") or "nuxeo")
        host: str = c.get("nuxeo.db.host")
        port: int | str = int(c.number("nuxeo.db.port", 5432))
        extra: dict[str, str] = {}
        url = c.get("nuxeo.db.jdbc.url")
        multi = pg_jdbc_multi_host(url)
        if multi:
            # a multi-host JDBC URL (PostgreSQL HA): libpq takes the same host list and picks the primary
            host, port, extra = multi
        # pgjdbc's TLS parameters (ssl, sslmode, sslrootcert, ...), honoured as the driver does
        extra = {**extra, **pg_jdbc_ssl(url)}
        return PostgresRepository(
            host,
            port,  # type: ignore[arg-type]
            c.get("nuxeo.db.name"),
            c.get("nuxeo.db.user"),
            c.get("nuxeo.db.password"),
            pool_size=int(c.number("nuxeo.vcs.max-pool-size", 20)),
            conn_extra=extra,
        )

    # ---- lifecycle ----
    def start_backends(self) -> None:
        self.repo.init()
        log.info("Repository 'default' initialised (%s)", type(self.repo).__name__)
        self.blobs.check()
        if self.blobs.s3:
            log.info(
                "Registering binary manager 'default' using S3BinaryManager (bucket %s)", self.blobs.s3.bucket
            )
        if self.search_enabled and self.search:
            shards = self.shards
            replicas = self.replicas
            status = self.search.health()
            if status not in ("green", "yellow"):
                raise RuntimeError(f"search cluster health is {status}")
            self.search.ensure_index(self.index_name, DOC_MAPPING, shards, replicas)
            if self.audit_enabled:
                self.search.ensure_index(self.audit_index, AUDIT_MAPPING, shards, replicas)
        if self.stream:
            self.stream.ensure_topic()
            if self.work_processing:
                c = self.cfg
                poll = {
                    "max_poll_records": int(c.number("kafka.max.poll.records", 2)),
                    "max_poll_interval_ms": int(c.number("kafka.max.poll.interval.ms", 7200000)),
                    "session_timeout_ms": int(c.number("kafka.session.timeout.ms", 50000)),
                    "heartbeat_interval_ms": int(c.number("kafka.heartbeat.interval.ms", 4000)),
                }
                self.stream.start_consumer(self.node_id, self.process_work, poll)
        self.heartbeat()
        t = threading.Thread(target=self._heartbeat_loop, name="cluster-heartbeat", daemon=True)
        t.start()
        self._threads.append(t)

    def node_info(self) -> dict[str, Any]:
        return {
            "jvmRoute": self.jvm_route,
            "workProcessing": self.work_processing,
            "httpPort": self.cfg.get("nuxeo.server.http.port"),
            "version": self.version,
            "standin": True,
        }

    def heartbeat(self) -> None:
        self.repo.heartbeat(self.node_id, self.node_info())

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self.heartbeat()
            except Exception as e:
                log.warning("cluster heartbeat failed: %s", e)

    def close(self) -> None:
        self._stop.set()
        if self.stream:
            self.stream.close()
        self._local_work.shutdown(wait=True, cancel_futures=False)
        try:
            self.repo.leave(self.node_id)
        except Exception as e:
            log.warning("could not leave the cluster table: %s", e)
        self.repo.close()

    # ---- users (the user directory in the repository's database, shared by every node) ----
    def check_password(self, username: str, password: str) -> bool:
        """Read from the database on every login: a password changed through another node holds at once."""
        return verify_password(password, self.repo.user_password(username))

    def change_password(self, username: str, old: str, new: str) -> bool:
        """Nuxeo's MeObject.changePassword: the old password must be the user's current one."""
        if not self.check_password(username, old):
            return False
        self.repo.set_user_password(username, hash_password(new))
        log.info("password of %s changed", username)
        return True

    # ---- health ----
    def probes(self, force: bool = False) -> dict[str, bool]:
        with self._probe_lock:
            if not force and self._probe_cache and time.monotonic() - self._probe_cache[0] < self.refresh_s:
                return self._probe_cache[1]
            checks: dict[str, Any] = {
                "runtimeStatus": self._check_runtime,
                "repositoryStatus": self.repo.ping,
            }
            if self.search_enabled and self.search:
                checks["elasticSearchStatus"] = self._check_search
            if self.stream:
                checks["streamStatus"] = self.stream.check
            if self.blobs.s3:
                checks["s3BinaryManagerStatus"] = self.blobs.check
            results: dict[str, bool] = {}
            with concurrent.futures.ThreadPoolExecutor(len(checks)) as pool:
                futures = {name: pool.submit(fn) for name, fn in checks.items()}
                for name, fut in futures.items():
                    try:
                        fut.result(timeout=10)
                        results[name] = True
                    except Exception as e:
                        log.warning("health probe %s failed: %s", name, e)
                        results[name] = False
            self._probe_cache = (time.monotonic(), results)
            return results

    def _check_runtime(self) -> None:
        if not self.started:
            raise RuntimeError("runtime not started")

    def _check_search(self) -> None:
        assert self.search
        status = self.search.health()
        if status not in ("green", "yellow"):
            raise RuntimeError(f"cluster health {status}")

    # ---- documents ----
    def resolve(self, ref: str, by_path: bool) -> Doc:
        doc = self.repo.get_by_path(ref) if by_path else self.repo.get(ref)
        if doc is None:
            raise NotFound(ref)
        return doc

    def resolve_any(self, ref: str) -> Doc:
        return self.resolve(ref, ref.startswith("/"))

    def render(self, doc: Doc, base_url: str) -> dict[str, Any]:
        props = dict(doc.props)
        props.setdefault("dc:title", doc.name)
        props["dc:created"] = iso(doc.created)
        props["dc:modified"] = iso(doc.modified)
        props.setdefault("dc:creator", "Administrator")
        props["dc:lastContributor"] = "Administrator"
        props.setdefault("dc:contributors", ["Administrator"])
        if doc.type in ("File", "Picture", "Video", "Audio", "Note"):
            props.setdefault("file:content", None)
        for key, value in list(props.items()):
            if is_blob(value):
                props[key] = self._render_blob(doc, key, value, base_url)
            elif isinstance(value, list):
                props[key] = [
                    {**v, "file": self._render_blob(doc, f"{key}/{i}/file", v["file"], base_url)}
                    if isinstance(v, dict) and is_blob(v.get("file"))
                    else v
                    for i, v in enumerate(value)
                ]
        facets = ["Folderish"] if doc.type in FOLDERISH else ["Versionable", "Commentable", "Downloadable"]
        return {
            "entity-type": "document",
            "repository": "default",
            "uid": doc.id,
            "path": doc.path,
            "type": doc.type,
            "state": "project",
            "parentRef": doc.parent_id,
            "isCheckedOut": True,
            "isVersion": False,
            "isProxy": False,
            "isTrashed": bool(props.get("ecm:isTrashed", False)),
            "changeToken": doc.change_token,
            "title": props.get("dc:title") or doc.name,
            "lastModified": iso(doc.modified),
            "facets": facets,
            "schemas": [],
            "properties": props,
        }

    def _render_blob(self, doc: Doc, xpath: str, blob: dict[str, Any], base_url: str) -> dict[str, Any]:
        return {
            **{k: blob.get(k) for k in BLOB_KEYS},
            "data": f"{base_url}/nxfile/default/{doc.id}/{xpath}/{blob.get('name')}",
        }

    def make_blob(self, data: bytes, name: str, mimetype: str) -> dict[str, Any]:
        digest = self.blobs.put(data)
        blob = {
            "name": name,
            "mime-type": mimetype or "application/octet-stream",
            "encoding": None,
            "digestAlgorithm": "MD5",
            "digest": digest,
            "length": str(len(data)),
        }
        if mimetype.startswith("text/") or mimetype in ("application/json", "application/xml"):
            blob["nxstandin:text"] = data[:TEXT_LIMIT].decode("utf-8", "replace")
        return blob

    def apply_properties(self, doc: Doc, incoming: dict[str, Any], batches: Any) -> list[str]:
        """Apply a REST `properties` object; returns the xpaths whose blob changed."""
        changed: list[str] = []
        for key, value in (incoming or {}).items():
            if key in READ_ONLY or key.startswith("nxstandin:"):
                continue
            if isinstance(value, dict) and "upload-batch" in value:
                doc.props[key] = batches.take_blob(
                    value["upload-batch"], str(value.get("upload-fileId", "0")), self
                )
                changed.append(key)
            elif isinstance(value, dict) and ("digest" in value or "data" in value):
                continue  # a descriptor echoed back by the client: unchanged
            elif isinstance(value, list) and any(isinstance(v, dict) and "file" in v for v in value):
                items = []
                for v in value:
                    f = v.get("file") if isinstance(v, dict) else None
                    if isinstance(f, dict) and "upload-batch" in f:
                        items.append(
                            {
                                **v,
                                "file": batches.take_blob(
                                    f["upload-batch"], str(f.get("upload-fileId", "0")), self
                                ),
                            }
                        )
                        changed.append(key)
                    elif isinstance(f, dict) and "digest" in f:
                        items.append({**v, "file": {k: f.get(k) for k in BLOB_KEYS}})
                    else:
                        items.append(v)
                doc.props[key] = items
            else:
                doc.props[key] = value
        return changed

    def create(self, parent: Doc, body: dict[str, Any], batches: Any) -> Doc:
        type_ = body.get("type") or "File"
        name = body.get("name") or (body.get("properties") or {}).get("dc:title") or type_
        doc = self.repo.create(parent, str(name).replace("/", "-"), type_, {})
        changed = self.apply_properties(doc, body.get("properties") or {}, batches)
        doc = self.repo.update(doc, None, user_change=False)
        self.metrics.document("create")
        self.after_change(doc, "documentCreated", changed)
        return doc

    def update(self, doc: Doc, body: dict[str, Any], batches: Any) -> Doc:
        expected = None
        token = body.get("changeToken")
        if isinstance(token, str) and "-" in token:
            try:
                expected = int(token.rsplit("-", 1)[1])
            except ValueError:
                expected = None
        changed = self.apply_properties(doc, body.get("properties") or {}, batches)
        doc = self.repo.update(doc, expected, user_change=True)
        self.metrics.document("update")
        self.after_change(doc, "documentModified", changed)
        return doc

    def attach(self, doc: Doc, xpath: str, blobs: list[dict[str, Any]]) -> Doc:
        if xpath == "files:files" or len(blobs) > 1:
            doc.props["files:files"] = [*(doc.props.get("files:files") or []), *({"file": b} for b in blobs)]
            changed = ["files:files"]
        else:
            doc.props[xpath] = blobs[0]
            changed = [xpath]
        doc = self.repo.update(doc, None, user_change=True)
        self.metrics.document("update")
        self.after_change(doc, "documentModified", changed)
        return doc

    def delete(self, doc: Doc) -> None:
        ids = self.repo.delete_tree(doc)
        self.metrics.document("delete")
        for uid in ids:
            if self.search_enabled and self.search:
                self.search.delete(self.index_name, uid)
        self.audit("documentRemoved", doc)

    def after_change(self, doc: Doc, event: str, changed_blobs: list[str]) -> None:
        self.count_commit()
        self.index(doc)
        self.audit(event, doc)
        for xpath in changed_blobs:
            blob = doc.props.get(xpath)
            if is_blob(blob):
                self.schedule_work(doc, xpath, blob)

    # ---- search and audit ----
    def index_source(self, doc: Doc) -> dict[str, Any]:
        src: dict[str, Any] = {
            "ecm:uuid": doc.id,
            "ecm:path": doc.path,
            "ecm:parentId": doc.parent_id,
            "ecm:name": doc.name,
            "ecm:primaryType": doc.type,
            "ecm:repository": "default",
            "ecm:changeToken": doc.change_token,
            "ecm:isTrashed": bool(doc.props.get("ecm:isTrashed", False)),
            "ecm:isVersion": False,
            "ecm:isProxy": False,
            "ecm:mixinType": ["Folderish"] if doc.type in FOLDERISH else ["Versionable"],
            "dc:created": iso(doc.created),
            "dc:modified": iso(doc.modified),
            "dc:creator": "Administrator",
        }
        texts: list[str] = []
        for key, value in doc.props.items():
            if is_blob(value):
                src[key] = {k: value.get(k) for k in ("name", "mime-type", "digest", "length")}
                texts.append(value.get("nxstandin:text", ""))
            elif isinstance(value, str | int | float | bool) or (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            ):
                src[key] = value
        src.setdefault("dc:title", doc.name)
        texts[:0] = [str(src.get("dc:title", "")), str(doc.props.get("dc:description") or "")]
        src["ecm:fulltext"] = "\n".join(t for t in texts if t)
        return src

    def index(self, doc: Doc) -> None:
        if self.search_enabled and self.search:
            self.search.index(self.index_name, doc.id, self.index_source(doc))

    @property
    def reindex_path(self) -> str:
        """The management endpoint's path: search/ since LTS 2025, elasticsearch/ before (Nuxeo's REST API
        reference: Search Endpoint, Elasticsearch Endpoint)."""
        return "/api/v1/management/search/reindex" if self.lts >= 2025 else "/api/v1/management/elasticsearch/reindex"

    def reindex(self) -> dict[str, Any]:
        """Drop the repository index, create it again with its settings and mappings, and index every document
        of the repository in the background; the bulk status it returns is followed on this node."""
        search = self.search
        if not (self.search_enabled and search):
            raise BadRequest("no search client is configured: there is no index to rebuild")

        def recreate() -> None:
            search.drop_index(self.index_name)
            search.ensure_index(self.index_name, DOC_MAPPING, self.shards, self.replicas)

        def index_chunk(ids: list[str]) -> int:
            docs = self.repo.get_many(ids)
            for doc in docs:
                search.index(self.index_name, doc.id, self.index_source(doc), refresh=False)
            return len(docs)

        return self.bulk.reindex(self.repo.all_ids, recreate, index_chunk,
                                 lambda: search.refresh(self.index_name))

    def audit(self, event: str, doc: Doc) -> None:
        if not (self.search_enabled and self.search and self.audit_enabled):
            return
        t = dt.datetime.now(dt.UTC)
        entry = {
            "entity-type": "logEntry",
            "id": time.time_ns() // 1000,
            "category": "eventDocumentCategory",
            "principalName": "Administrator",
            "eventId": event,
            "docUUID": doc.id,
            "docPath": doc.path,
            "docType": doc.type,
            "repositoryId": "default",
            "eventDate": iso(t),
            "logDate": iso(t),
            "extended": {"nodeId": self.node_id},
        }
        self.search.index(self.audit_index, uuid.uuid4().hex, entry, refresh=False)

    def audit_entries(self, doc: Doc) -> list[dict[str, Any]]:
        """The document's audit entries, newest first (the @audit adapter)."""
        if not (self.search_enabled and self.search and self.audit_enabled):
            return []
        # docUUID is mapped dynamically (text): match it, then keep the exact ids
        body = {"query": {"match": {"docUUID": doc.id}}, "size": 1000, "sort": [{"id": {"order": "desc"}}]}
        res = self.search.search(self.audit_index, body)
        return [h["_source"] for h in res["hits"]["hits"] if h["_source"].get("docUUID") == doc.id]

    def query(
        self, text: str, page_size: int, page: int, sort_by: str = "", sort_order: str = ""
    ) -> dict[str, Any]:
        if not (self.search_enabled and self.search):
            raise BadRequest("search is disabled")
        try:
            q = nxql.parse(text)
        except nxql.NXQLError as e:
            raise BadRequest(f"Failed to execute query: {text}, {e}") from e
        size = 1000 if page_size <= 0 else min(page_size, 1000)
        body: dict[str, Any] = {
            "query": q.to_search(),
            "from": page * size,
            "size": size,
            "track_total_hits": True,
            "_source": False,
        }
        sort = q.sort()
        if sort_by:
            orders = split_list(sort_order) or ["asc"]
            sort = [
                {nxql.FIELD_ALIASES.get(f, f): {"order": orders[min(i, len(orders) - 1)].lower()}}
                for i, f in enumerate(split_list(sort_by))
            ]
        if sort:
            body["sort"] = sort
        res = self.search.search(self.index_name, body)
        ids = [h["_id"] for h in res["hits"]["hits"]]
        total = (
            res["hits"]["total"]["value"] if isinstance(res["hits"]["total"], dict) else res["hits"]["total"]
        )
        docs = self.repo.get_many(ids)
        pages = (total + size - 1) // size if size else 0
        return {
            "total": total,
            "docs": docs,
            "pageSize": size,
            "currentPageIndex": page,
            "numberOfPages": pages,
        }

    # ---- work ----
    def schedule_work(self, doc: Doc, xpath: str, blob: dict[str, Any]) -> None:
        work = {
            "id": uuid.uuid4().hex,
            "queue": "common",
            "category": "standinRendition",
            "docId": doc.id,
            "xpath": xpath,
            "digest": blob["digest"],
            "mimeType": blob.get("mime-type"),
            "producer": self.node_id,
            "scheduledAt": iso(dt.datetime.now(dt.UTC)),
        }
        if self.stream:
            self.stream.produce(work)
        elif self.work_processing:
            self.metrics.work_submitted()
            self._local_work.submit(self.process_work, work)

    def process_work(self, work: dict[str, Any]) -> None:
        self.metrics.work_started()
        try:
            self._process_work(work)
        finally:
            self.metrics.work_done()

    def _process_work(self, work: dict[str, Any]) -> None:
        doc = self.repo.get(work["docId"])
        if doc is None:
            return
        data = self.blobs.get(work["digest"])
        mimetype = work.get("mimeType") or ""
        if mimetype.startswith("text/"):
            rendition = data.decode("utf-8", "replace").upper().encode()
        else:
            rendition = f"digest summary: md5={work['digest']} length={len(data)}\n".encode()
        digest = self.blobs.put(rendition)
        doc = self.repo.merge_props(
            doc.id,
            {
                "nxstandin:rendition": self.node_id,
                "nxstandin:renditionDigest": digest,
                "nxstandin:renditionSource": work["digest"],
            },
        )
        if doc is not None:
            self.index(doc)
            self.audit("renditionCompleted", doc)
        log.info("work %s for document %s processed on node %s", work["id"], work["docId"], self.node_id)


def kafka_client_config(cfg: NuxeoConfig) -> dict[str, Any]:
    """Nuxeo's kafka.ssl / kafka.truststore.* (and kafka.security.protocol) as the Kafka client's settings:
    SSL with the trust store's certificates, the broker's name checked (Kafka's default endpoint
    identification, https)."""
    protocol = cfg.get("kafka.security.protocol") or ("SSL" if cfg.flag("kafka.ssl") else "PLAINTEXT")
    if cfg.flag("kafka.sasl.enabled"):
        raise ValueError("kafka.sasl.enabled: the stand-in's Kafka client has no SASL")
    if protocol.upper() != "SSL" and not cfg.flag("kafka.ssl"):
        return {}
    store = (cfg.get("kafka.truststore.path"), cfg.get("kafka.truststore.password"), cfg.get("kafka.truststore.type"))
    ctx = client_context(*store)
    log.info("Kafka %s over TLS (security.protocol=SSL), verified with %s", cfg.get("kafka.bootstrap.servers"),
             describe(store[0], store[2]))
    if cfg.get("kafka.keystore.path"):
        # the client certificate a broker with ssl.client.auth=required asks for
        load_client_certificate(ctx, cfg.get("kafka.keystore.path"), cfg.get("kafka.keystore.password"),
                                cfg.get("kafka.keystore.type"))
        log.info("Kafka client certificate from key store %s", cfg.get("kafka.keystore.path"))
    return {"security_protocol": "SSL", "ssl_context": ctx, "ssl_check_hostname": True}


_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def pg_jdbc_ssl(url: str) -> dict[str, str]:
    """The TLS parameters of a pgjdbc URL as libpq connection parameters, with pgjdbc's semantics:
    `ssl=true` alone means verify-full; no ssl parameter means prefer (encrypt when the server offers it, no
    verification); `sslfactory=org.postgresql.ssl.NonValidatingFactory` encrypts without verifying;
    sslrootcert/sslcert/sslkey name PEM files. An unknown sslmode is refused, as pgjdbc refuses it."""
    from urllib.parse import parse_qs

    if not url or not url.startswith("jdbc:postgresql:"):
        return {}
    query = url.partition("?")[2]
    params = {k.lower(): v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    mode = params.get("sslmode", "").lower()
    ssl = params.get("ssl", "").lower()
    if mode and mode not in _SSLMODES:
        raise ValueError(f"Invalid sslmode value: {mode}")
    if not mode:
        if ssl in ("true", ""):
            mode = "verify-full" if "ssl" in params else "prefer"
        else:
            mode = "disable" if ssl == "false" else "prefer"
    if params.get("sslfactory", "").endswith("NonValidatingFactory") and mode.startswith("verify"):
        mode = "require"
    out = {"sslmode": mode}
    for key in ("sslrootcert", "sslcert", "sslkey"):
        if params.get(key):
            out[key] = params[key]
    if mode.startswith("verify") and "sslrootcert" not in out:
        # pgjdbc's default root certificate file, as libpq's
        out["sslrootcert"] = str(Path.home() / ".postgresql" / "root.crt")
    return out


# pgjdbc targetServerType -> libpq target_session_attrs
_TARGET_SERVER_TYPES = {"any": "any", "primary": "read-write", "master": "read-write", "secondary": "standby",
                        "preferprimary": "any", "prefersecondary": "prefer-standby"}


def pg_jdbc_multi_host(url: str) -> tuple[str, str, dict[str, str]] | None:
    """`jdbc:postgresql://h1:p1,h2:p2/db?targetServerType=primary` as libpq's host and port lists plus
    target_session_attrs; None for a single-host URL (nuxeo.db.host/port then apply, as before)."""
    from urllib.parse import parse_qs

    prefix = "jdbc:postgresql://"
    if not url or not url.startswith(prefix):
        return None
    rest = url[len(prefix):]
    hostpart, _, tail = rest.partition("/")
    query = tail.partition("?")[2]
    hosts = [h for h in hostpart.split(",") if h]
    if len(hosts) < 2:
        return None
    names, ports = [], []
    for h in hosts:
        name, _, port = h.rpartition(":") if h.count(":") == 1 else (h, "", "")
        names.append(name or h)
        ports.append(port or "5432")
    params = {k.lower(): v[-1] for k, v in parse_qs(query).items()}
    target = _TARGET_SERVER_TYPES.get(params.get("targetservertype", "any").lower(), "any")
    return ",".join(names), ",".join(ports), {"target_session_attrs": target}
