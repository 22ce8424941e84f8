"""Document storage in the configured database: PostgreSQL (`hierarchy` + `properties` tables, like
VCS keeps the tree apart from the data) or MongoDB (collection named after the repository, `default`,
like DBS). Also the cluster membership rows (`cluster_nodes`) that nodes heartbeat into, and the user
directory: Nuxeo keeps its users in the same database (SQL directory table `users`, MongoDB collection
`userDirectory`), seeded with Administrator/Administrator when it is created, so every node of a cluster
sees a password changed through any one of them."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import os
import queue
import re
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

ROOT_LAYOUT = [  # what a fresh Nuxeo repository holds after its first start
    ("/", "default-domain", "Domain", "Domain"),
    ("/default-domain", "workspaces", "WorkspaceRoot", "Workspaces"),
    ("/default-domain", "sections", "SectionRoot", "Sections"),
    ("/default-domain", "templates", "TemplateRoot", "Templates"),
]


# users.csv of Nuxeo's default user directory: the product's default login
DEFAULT_USERS = {"Administrator": "Administrator"}


def hash_password(password: str, salt: bytes | None = None) -> str:
    """Nuxeo's PasswordHelper SSHA: {SSHA} + base64(SHA-1(password + salt) + salt), an 8-byte random salt."""
    salt = os.urandom(8) if salt is None else salt
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()


def verify_password(password: str, stored: str | None) -> bool:
    if not stored or not stored.startswith("{SSHA}"):
        return False
    try:
        raw = base64.b64decode(stored[len("{SSHA}"):])
    except ValueError:
        return False
    digest, salt = raw[:20], raw[20:]
    return hmac.compare_digest(hashlib.sha1(password.encode() + salt).digest(), digest)


class Conflict(Exception):
    """The change token sent with an update is stale."""


class NameTaken(Exception):
    pass


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Doc:
    id: str
    parent_id: str | None
    name: str
    path: str
    type: str
    props: dict[str, Any] = field(default_factory=dict)
    created: dt.datetime = field(default_factory=now)
    modified: dt.datetime = field(default_factory=now)
    sys_token: int = 0
    user_token: int = 0

    @property
    def change_token(self) -> str:
        return f"{self.sys_token}-{self.user_token}"


def child_path(parent: str, name: str) -> str:
    return ("" if parent == "/" else parent) + "/" + name


class Repository:
    """Interface shared by both backends."""

    def init(self) -> None: ...
    def ping(self) -> None: ...
    def close(self) -> None: ...
    def get(self, uid: str) -> Doc | None: ...
    def get_by_path(self, path: str) -> Doc | None: ...
    def get_many(self, uids: list[str]) -> list[Doc]: ...
    def all_ids(self) -> list[str]: ...
    def children(self, uid: str) -> list[Doc]: ...
    def insert(self, doc: Doc) -> None: ...
    def update(self, doc: Doc, expected_user_token: int | None, user_change: bool) -> Doc: ...
    def merge_props(self, uid: str, props: dict[str, Any]) -> Doc | None: ...
    def delete_tree(self, doc: Doc) -> list[str]: ...
    def heartbeat(self, node_id: str, info: dict[str, Any]) -> None: ...
    def leave(self, node_id: str) -> None: ...
    def live_nodes(self, max_age_s: float) -> list[dict[str, Any]]: ...
    def user_password(self, username: str) -> str | None: ...
    def set_user_password(self, username: str, hashed: str) -> None: ...

    def create(self, parent: Doc, name: str, type_: str, props: dict[str, Any]) -> Doc:
        base = name or type_.lower()
        for attempt in range(20):
            # Nuxeo renames a child whose name is taken instead of failing
            n = base if attempt == 0 else f"{base}.{uuid.uuid4().hex[:8]}"
            doc = Doc(str(uuid.uuid4()), parent.id, n, child_path(parent.path, n), type_, dict(props))
            try:
                self.insert(doc)
                return doc
            except NameTaken:
                continue
        raise NameTaken(base)

    def ensure_layout(self) -> None:
        if self.get_by_path("/") is None:
            with contextlib.suppress(NameTaken):
                self.insert(Doc(str(uuid.uuid4()), None, "", "/", "Root", {"dc:title": ""}))
        for parent_path, name, type_, title in ROOT_LAYOUT:
            parent = self.get_by_path(parent_path)
            if parent is not None and self.get_by_path(child_path(parent_path, name)) is None:
                with contextlib.suppress(NameTaken):
                    self.insert(
                        Doc(
                            str(uuid.uuid4()),
                            parent.id,
                            name,
                            child_path(parent_path, name),
                            type_,
                            {"dc:title": title},
                        )
                    )


class PostgresRepository(Repository):
    SCHEMA = """
    CREATE TABLE IF NOT EXISTS hierarchy (
      id varchar(36) PRIMARY KEY,
      parentid varchar(36) REFERENCES hierarchy(id) ON DELETE CASCADE,
      name varchar(255) NOT NULL,
      path text NOT NULL UNIQUE,
      primarytype varchar(64) NOT NULL,
      created timestamptz NOT NULL,
      modified timestamptz NOT NULL,
      systoken bigint NOT NULL DEFAULT 0,
      usertoken bigint NOT NULL DEFAULT 0
    );
    CREATE INDEX IF NOT EXISTS hierarchy_parentid_idx ON hierarchy (parentid);
    CREATE TABLE IF NOT EXISTS properties (
      id varchar(36) PRIMARY KEY REFERENCES hierarchy(id) ON DELETE CASCADE,
      props jsonb NOT NULL DEFAULT '{}'::jsonb
    );
    CREATE TABLE IF NOT EXISTS cluster_nodes (
      nodeid varchar(128) PRIMARY KEY,
      created timestamptz NOT NULL,
      heartbeat timestamptz NOT NULL,
      info jsonb NOT NULL DEFAULT '{}'::jsonb
    );
    CREATE TABLE IF NOT EXISTS users (
      username varchar(255) PRIMARY KEY,
      password varchar(255),
      firstname varchar(255),
      lastname varchar(255),
      company varchar(255),
      email varchar(255)
    );
    """
    COLS = ", ".join(
        f"h.{c}"
        for c in (
            "id",
            "parentid",
            "name",
            "path",
            "primarytype",
            "props",
            "created",
            "modified",
            "systoken",
            "usertoken",
        )
    ).replace("h.props", "p.props")

    def __init__(
        self, host: str, port: int, dbname: str, user: str, password: str, pool_size: int = 10,
        conn_extra: dict[str, str] | None = None,
    ) -> None:
        import psycopg  # vendored in lib/python on the lab hosts

        self._psycopg = psycopg
        self.conninfo = dict(
            host=host, port=port, dbname=dbname, user=user, password=password, connect_timeout=5,
            **(conn_extra or {}),
        )
        self._pool: queue.LifoQueue[Any] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(pool_size)
        # a multi-host URL: host -> (rank, when); see _connect
        self._host_status: dict[str, tuple[int, float]] = {}

    # pgjdbc's host status tracking (hostRecheckSeconds, 10 s by default): a host that just failed is tried after
    # the others, so that a powered-off database host does not cost a connect timeout to every new connection.
    HOST_RECHECK_S = 10.0
    _STANDBY = 1  # answered, but not a primary (or starting, or stopping): alive, not what a writer wants
    _DOWN = 2  # refused or timed out

    def _connect(self) -> Any:
        hosts = str(self.conninfo["host"]).split(",")
        if len(hosts) < 2:
            return self._psycopg.connect(**self.conninfo, autocommit=True)
        ports = str(self.conninfo["port"]).split(",")
        ports += ports[-1:] * (len(hosts) - len(ports))
        now = time.monotonic()

        def rank(h: str) -> int:
            r, when = self._host_status.get(h, (0, 0.0))
            return r if now - when < self.HOST_RECHECK_S else 0

        order = sorted(zip(hosts, ports, strict=True), key=lambda hp: rank(hp[0]))  # stable: URL order otherwise
        errors = []
        for h, port in order:
            try:
                c = self._psycopg.connect(**{**self.conninfo, "host": h, "port": port}, autocommit=True)
            except self._psycopg.OperationalError as e:
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                msg = msg.removeprefix("connection failed: ")
                alive = any(w in msg for w in ("read-only", "hot standby", "the database system is"))
                self._host_status[h] = (self._STANDBY if alive else self._DOWN, time.monotonic())
                errors.append(msg)
                continue
            self._host_status.pop(h, None)
            return c
        raise self._psycopg.OperationalError(
            "connection failed: " + "\n".join(errors) + "\nMultiple connection attempts failed."
        )

    @contextmanager
    def conn(self):  # type: ignore[no-untyped-def]
        self._slots.acquire()
        try:
            try:
                c = self._pool.get_nowait()
            except queue.Empty:
                c = self._connect()
            try:
                yield c
            except (self._psycopg.OperationalError, self._psycopg.InterfaceError):
                c.close()  # broken connection: never hand it out again
                raise
            else:
                if c.closed:
                    return
                self._pool.put(c)
        finally:
            self._slots.release()

    def close(self) -> None:
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return

    def init(self) -> None:
        with self.conn() as c, c.transaction():
            # two nodes starting together must not race on CREATE TABLE
            c.execute("SELECT pg_advisory_xact_lock(727274)")
            c.execute(self.SCHEMA)
            # the directory's CSV is loaded once, into a new table: a changed password is never reset
            for user, password in DEFAULT_USERS.items():
                c.execute("INSERT INTO users (username, password) VALUES (%s, %s) ON CONFLICT (username) DO NOTHING",
                          (user, hash_password(password)))
        self.ensure_layout()

    def ping(self) -> None:
        with self.conn() as c:
            c.execute("SELECT 1").fetchone()

    def _doc(self, row: Any) -> Doc:
        return Doc(row[0], row[1], row[2], row[3], row[4], row[5] or {}, row[6], row[7], row[8], row[9])

    def _one(self, where: str, arg: Any) -> Doc | None:
        with self.conn() as c:
            row = c.execute(
                f"SELECT {self.COLS} FROM hierarchy h LEFT JOIN properties p ON p.id = h.id WHERE {where}",
                (arg,),
            ).fetchone()
        return self._doc(row) if row else None

    def get(self, uid: str) -> Doc | None:
        return self._one("h.id = %s", uid)

    def get_by_path(self, path: str) -> Doc | None:
        return self._one("h.path = %s", path)

    def get_many(self, uids: list[str]) -> list[Doc]:
        if not uids:
            return []
        with self.conn() as c:
            rows = c.execute(
                f"SELECT {self.COLS} FROM hierarchy h LEFT JOIN properties p ON p.id = h.id "
                "WHERE h.id = ANY(%s)",
                (uids,),
            ).fetchall()
        by_id = {r[0]: self._doc(r) for r in rows}
        return [by_id[u] for u in uids if u in by_id]

    def all_ids(self) -> list[str]:
        """Every document of the repository, the root included (what a whole-repository reindex walks)."""
        with self.conn() as c:
            return [r[0] for r in c.execute("SELECT id FROM hierarchy ORDER BY created, id").fetchall()]

    def children(self, uid: str) -> list[Doc]:
        with self.conn() as c:
            rows = c.execute(
                f"SELECT {self.COLS} FROM hierarchy h LEFT JOIN properties p ON p.id = h.id "
                "WHERE h.parentid = %s ORDER BY h.created, h.name",
                (uid,),
            ).fetchall()
        return [self._doc(r) for r in rows]

    def insert(self, doc: Doc) -> None:
        try:
            with self.conn() as c, c.transaction():
                c.execute(
                    "INSERT INTO hierarchy (id, parentid, name, path, primarytype, created, modified) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (doc.id, doc.parent_id, doc.name, doc.path, doc.type, doc.created, doc.modified),
                )
                c.execute(
                    "INSERT INTO properties (id, props) VALUES (%s, %s)", (doc.id, json.dumps(doc.props))
                )
        except self._psycopg.errors.UniqueViolation as e:
            raise NameTaken(doc.path) from e

    def update(self, doc: Doc, expected_user_token: int | None, user_change: bool) -> Doc:
        with self.conn() as c, c.transaction():
            row = c.execute("SELECT usertoken FROM hierarchy WHERE id = %s FOR UPDATE", (doc.id,)).fetchone()
            if row is None:
                raise KeyError(doc.id)
            if expected_user_token is not None and expected_user_token != row[0]:
                raise Conflict(doc.id)
            bump = "usertoken = usertoken + 1," if user_change else ""
            c.execute(
                f"UPDATE hierarchy SET {bump} systoken = systoken + 1, modified = %s WHERE id = %s",
                (now(), doc.id),
            )
            c.execute("UPDATE properties SET props = %s WHERE id = %s", (json.dumps(doc.props), doc.id))
        fresh = self.get(doc.id)
        assert fresh is not None
        return fresh

    def merge_props(self, uid: str, props: dict[str, Any]) -> Doc | None:
        with self.conn() as c, c.transaction():
            c.execute(
                "UPDATE properties SET props = props || %s::jsonb WHERE id = %s", (json.dumps(props), uid)
            )
            c.execute("UPDATE hierarchy SET systoken = systoken + 1 WHERE id = %s", (uid,))
        return self.get(uid)

    def delete_tree(self, doc: Doc) -> list[str]:
        like = doc.path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
        with self.conn() as c:
            rows = c.execute(
                "DELETE FROM hierarchy WHERE id = %s OR path LIKE %s RETURNING id", (doc.id, like)
            ).fetchall()
        return [r[0] for r in rows]

    def heartbeat(self, node_id: str, info: dict[str, Any]) -> None:
        with self.conn() as c:
            c.execute(
                "INSERT INTO cluster_nodes (nodeid, created, heartbeat, info) VALUES (%s, now(), now(), %s) "
                "ON CONFLICT (nodeid) DO UPDATE SET heartbeat = now(), info = EXCLUDED.info",
                (node_id, json.dumps(info)),
            )

    def leave(self, node_id: str) -> None:
        with self.conn() as c:
            c.execute("DELETE FROM cluster_nodes WHERE nodeid = %s", (node_id,))

    def live_nodes(self, max_age_s: float) -> list[dict[str, Any]]:
        with self.conn() as c:
            rows = c.execute(
                "SELECT nodeid, created, heartbeat, info FROM cluster_nodes "
                "WHERE heartbeat > now() - make_interval(secs => %s) ORDER BY nodeid",
                (max_age_s,),
            ).fetchall()
        return [
            {"nodeId": r[0], "startedAt": r[1].isoformat(), "lastHeartbeat": r[2].isoformat(), **(r[3] or {})}
            for r in rows
        ]

    def user_password(self, username: str) -> str | None:
        with self.conn() as c:
            row = c.execute("SELECT password FROM users WHERE username = %s", (username,)).fetchone()
        return row[0] if row else None

    def set_user_password(self, username: str, hashed: str) -> None:
        with self.conn() as c:
            c.execute("UPDATE users SET password = %s WHERE username = %s", (hashed, username))


class MongoRepository(Repository):
    def __init__(self, uri: str, dbname: str, collection: str = "default") -> None:
        import pymongo  # vendored in lib/python on the lab hosts

        self._pymongo = pymongo
        self.client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000, tz_aware=True)
        self.db = self.client[dbname]
        self.coll = self.db[collection]
        self.nodes = self.db["cluster_nodes"]
        self.users = self.db["userDirectory"]

    def close(self) -> None:
        self.client.close()

    def init(self) -> None:
        self.coll.create_index("ecm:id", unique=True)
        self.coll.create_index("ecm:path", unique=True)
        self.coll.create_index("ecm:parentId")
        self.users.create_index("username", unique=True)
        for user, password in DEFAULT_USERS.items():
            # an upsert that only inserts: a changed password is never reset by a node starting
            with contextlib.suppress(self._pymongo.errors.DuplicateKeyError):
                self.users.update_one({"username": user},
                                      {"$setOnInsert": {"username": user, "password": hash_password(password)}},
                                      upsert=True)
        self.ensure_layout()

    def ping(self) -> None:
        self.client.admin.command("ping")

    @staticmethod
    def _doc(d: dict[str, Any]) -> Doc:
        return Doc(
            d["ecm:id"],
            d.get("ecm:parentId"),
            d["ecm:name"],
            d["ecm:path"],
            d["ecm:primaryType"],
            dict(d.get("props") or {}),
            d["ecm:created"],
            d["ecm:modified"],
            d.get("ecm:sysToken", 0),
            d.get("ecm:userToken", 0),
        )

    def get(self, uid: str) -> Doc | None:
        d = self.coll.find_one({"ecm:id": uid})
        return self._doc(d) if d else None

    def get_by_path(self, path: str) -> Doc | None:
        d = self.coll.find_one({"ecm:path": path})
        return self._doc(d) if d else None

    def get_many(self, uids: list[str]) -> list[Doc]:
        by_id = {d["ecm:id"]: self._doc(d) for d in self.coll.find({"ecm:id": {"$in": uids}})}
        return [by_id[u] for u in uids if u in by_id]

    def all_ids(self) -> list[str]:
        return [d["ecm:id"] for d in self.coll.find({}, {"ecm:id": 1}).sort([("ecm:created", 1)])]

    def children(self, uid: str) -> list[Doc]:
        return [self._doc(d) for d in self.coll.find({"ecm:parentId": uid}).sort([("ecm:created", 1)])]

    def insert(self, doc: Doc) -> None:
        try:
            self.coll.insert_one(
                {
                    "ecm:id": doc.id,
                    "ecm:parentId": doc.parent_id,
                    "ecm:name": doc.name,
                    "ecm:path": doc.path,
                    "ecm:primaryType": doc.type,
                    "props": doc.props,
                    "ecm:created": doc.created,
                    "ecm:modified": doc.modified,
                    "ecm:sysToken": 0,
                    "ecm:userToken": 0,
                }
            )
        except self._pymongo.errors.DuplicateKeyError as e:
            raise NameTaken(doc.path) from e

    def update(self, doc: Doc, expected_user_token: int | None, user_change: bool) -> Doc:
        flt: dict[str, Any] = {"ecm:id": doc.id}
        if expected_user_token is not None:
            flt["ecm:userToken"] = expected_user_token
        inc = {"ecm:sysToken": 1, **({"ecm:userToken": 1} if user_change else {})}
        res = self.coll.update_one(flt, {"$set": {"props": doc.props, "ecm:modified": now()}, "$inc": inc})
        if res.matched_count == 0:
            if self.get(doc.id) is None:
                raise KeyError(doc.id)
            raise Conflict(doc.id)
        fresh = self.get(doc.id)
        assert fresh is not None
        return fresh

    def merge_props(self, uid: str, props: dict[str, Any]) -> Doc | None:
        self.coll.update_one(
            {"ecm:id": uid},
            {"$set": {f"props.{k}": v for k, v in props.items()}, "$inc": {"ecm:sysToken": 1}},
        )
        return self.get(uid)

    def delete_tree(self, doc: Doc) -> list[str]:
        flt = {"$or": [{"ecm:id": doc.id}, {"ecm:path": {"$regex": "^" + re.escape(doc.path + "/")}}]}
        ids = [d["ecm:id"] for d in self.coll.find(flt, {"ecm:id": 1})]
        self.coll.delete_many({"ecm:id": {"$in": ids}})
        return ids

    def heartbeat(self, node_id: str, info: dict[str, Any]) -> None:
        t = now()
        self.nodes.update_one(
            {"_id": node_id},
            {"$set": {"heartbeat": t, "info": info}, "$setOnInsert": {"created": t}},
            upsert=True,
        )

    def leave(self, node_id: str) -> None:
        self.nodes.delete_one({"_id": node_id})

    def live_nodes(self, max_age_s: float) -> list[dict[str, Any]]:
        since = now() - dt.timedelta(seconds=max_age_s)
        return [
            {
                "nodeId": d["_id"],
                "startedAt": d["created"].isoformat(),
                "lastHeartbeat": d["heartbeat"].isoformat(),
                **(d.get("info") or {}),
            }
            for d in self.nodes.find({"heartbeat": {"$gt": since}}).sort([("_id", 1)])
        ]

    def user_password(self, username: str) -> str | None:
        d = self.users.find_one({"username": username})
        return d.get("password") if d else None

    def set_user_password(self, username: str, hashed: str) -> None:
        self.users.update_one({"username": username}, {"$set": {"password": hashed}})
