"""The MongoDB stand-in's replica-set control plane: what the roles and drivers ask of a replica set, as mongod answers.

Each lab host runs its own SecantusDB. With `replication.replSetName` set, this module sits in front of its command
dispatch and gives the set the control plane of mongod:
- before `replSetInitiate` a member is not in a set: `hello` has no `setName` (`isreplicaset: true`, the
  info mongod gives), `replSetGetStatus` answers 94 NotYetInitialized, writes are refused (not primary);
- `replSetInitiate` (on the member the client is on) checks the configuration as mongod does (its `_id` is the set
  name, unique hosts, this node among them), hands it to every other member (each one must answer, else 74, the
  quorum check mongod makes) and keeps it in dbPath, so a restarted member is in the set again; a second one
  answers 23 AlreadyInitialized;
- then `hello` lists every member (`hosts`, `primary`, `me`, `secondary`), `replSetGetStatus` lists every member with
  its state and health (its port answering), `replSetGetConfig` the configuration.
What it does NOT do, said in `hello` (`notice`), in the log and in the archive's STANDIN marker: no replication
(the data lives on the primary only; a secondary refuses writes and holds none of the primary's data, users
included), no elections (the first member of the configuration is the primary, always; when it is down the set has
none), no `replSetReconfig`.
Members hand the configuration over with an internal command carrying a digest of the key file
(`security.keyFile`), which every member of a real set shares; a member refuses a digest that is not its own.
"""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

STATE_FILE = "nxprovision-standin-replset.json"
PUSH = "nxStandinReplSetConfig"
HELLO = frozenset({"hello", "isMaster", "ismaster"})
# Commands that change data (or users): a secondary or a member outside a set refuses them, as mongod does.
WRITES = frozenset({
    "insert", "update", "delete", "findAndModify", "findandmodify", "create", "createIndexes", "drop", "dropIndexes",
    "dropDatabase", "renameCollection", "createUser", "updateUser", "dropUser", "grantRolesToUser",
    "revokeRolesFromUser", "createRole", "updateRole", "dropRole", "collMod", "bulkWrite",
})
NOTICE = ("MongoDB stand-in: replica-set control plane only: no replication (data on the primary only), "
          "no elections (the first member is always the primary), no replSetReconfig")


def _err(code: int, name: str, msg: str) -> dict[str, Any]:
    return {"ok": 0.0, "errmsg": msg, "code": code, "codeName": name}


def key_digest(key_file: str | None) -> str:
    if not key_file:
        return ""
    # mongod ignores whitespace in the key file
    return hashlib.sha256("".join(Path(key_file).read_text().split()).encode()).hexdigest()


class ReplSet:
    def __init__(self, name: str, db_path: Path, bind_ips: list[str], port: int, key: str,
                 push: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None,
                 alive: Callable[[str], bool] | None = None) -> None:
        self.name, self.port, self.key = name, port, key
        self.path = db_path / STATE_FILE
        self.addrs = {f"{ip}:{port}" for ip in bind_ips}
        if "127.0.0.1" in bind_ips:
            self.addrs.add(f"localhost:{port}")
        self.push = push or _push
        self.alive = alive or _alive
        self.config: dict[str, Any] | None = json.loads(self.path.read_text()) if self.path.exists() else None

    # -- what this member is ----------------------------------------------------------------------------------
    def hosts(self) -> list[str]:
        return [str(m["host"]) for m in (self.config or {}).get("members", [])]

    def me(self, config: dict[str, Any] | None = None) -> str | None:
        return next((h for h in [str(m["host"]) for m in (config or self.config or {}).get("members", [])]
                     if h in self.addrs), None)

    def primary(self) -> str | None:
        hosts = self.hosts()
        return hosts[0] if hosts else None

    def is_primary(self) -> bool:
        return self.config is not None and self.me() == self.primary()

    # -- commands ---------------------------------------------------------------------------------------------
    def check(self, config: Any) -> dict[str, Any] | None:
        """mongod's refusals of a configuration: None when it is acceptable."""
        if not isinstance(config, dict) or not isinstance(config.get("members"), list) or not config["members"]:
            return _err(93, "InvalidReplicaSetConfig", "replSetInitiate needs a configuration with members")
        if config.get("_id") != self.name:
            return _err(93, "InvalidReplicaSetConfig",
                        f"Attempting to initiate a replica set with name {config.get('_id')}, but command line "
                        f"reports {self.name}; rejecting")
        hosts = [str(m.get("host", "")) for m in config["members"] if isinstance(m, dict)]
        if len(set(hosts)) != len(config["members"]):
            return _err(93, "InvalidReplicaSetConfig", "members need distinct hosts")
        if self.me(config) is None:
            return _err(93, "InvalidReplicaSetConfig",
                        f"No host described in new configuration with {{version: 1, term: 0}} for replica set "
                        f"{self.name} maps to this node")
        return None

    def initiate(self, config: Any) -> dict[str, Any]:
        if self.config is not None:
            return _err(23, "AlreadyInitialized", "already initialized")
        refused = self.check(config)
        if refused:
            return refused
        config = {"_id": self.name, "version": 1, "term": 1,
                  "members": [{"_id": int(m.get("_id", i)), "host": str(m["host"])}
                              for i, m in enumerate(config["members"])]}
        me = self.me(config)
        failed = []
        for host in [str(m["host"]) for m in config["members"] if m["host"] != me]:
            try:
                answer = self.push(host, {PUSH: 1, "config": config, "key": self.key})
            except OSError as e:
                answer = {"ok": 0, "errmsg": str(e)}
            if answer.get("ok") != 1:
                failed.append(f"{host}: {answer.get('errmsg', 'refused')}")
        if failed:
            return _err(74, "NodeNotFound",
                        "replSetInitiate quorum check failed because not all proposed set members responded "
                        f"affirmatively: {', '.join(failed)}")
        self.save(config)
        return {"ok": 1.0}

    def receive(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The configuration handed over by the member where replSetInitiate ran."""
        if doc.get("key") != self.key:
            return _err(18, "AuthenticationFailed", "the member's key file digest does not match this one's")
        config = doc.get("config")
        refused = self.check(config)
        if refused:
            return refused
        if self.config is not None and self.config != config:
            return _err(23, "AlreadyInitialized", "already initialized with another configuration")
        self.save(config)
        return {"ok": 1.0}

    def save(self, config: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, indent=1) + "\n")
        tmp.replace(self.path)
        self.config = config

    def hello(self, reply: dict[str, Any]) -> dict[str, Any]:
        # SecantusDB answers as a one-member set: its set fields give way to the configuration's
        for k in ("primary", "electionId") if self.config else ("setName", "setVersion", "hosts", "passives",
                                                                "arbiters", "primary", "me", "electionId", "lastWrite"):
            reply.pop(k, None)
        if self.config is None:
            reply.update(isWritablePrimary=False, ismaster=False, secondary=False, isreplicaset=True,
                         info="Does not have a valid replica set config", notice=NOTICE)
            return reply
        primary = self.is_primary()
        reply.update(setName=self.name, setVersion=int(self.config.get("version", 1)), hosts=self.hosts(),
                     me=self.me(), isWritablePrimary=primary, ismaster=primary, secondary=not primary,
                     notice=NOTICE)
        if self.primary():
            reply["primary"] = self.primary()
        if primary:
            import bson  # vendored with pymongo

            reply["electionId"] = bson.ObjectId("7fffffff0000000000000001")
        return reply

    def status(self) -> dict[str, Any]:
        if self.config is None:
            return _err(94, "NotYetInitialized", "no replset config has been received")
        me, primary = self.me(), self.primary()
        members = []
        for m in self.config["members"]:
            host = str(m["host"])
            up = host == me or self.alive(host)
            state = (1 if host == primary else 2) if up else 8
            members.append({"_id": m["_id"], "name": host, "health": 1.0 if up else 0.0, "state": state,
                            "stateStr": {1: "PRIMARY", 2: "SECONDARY", 8: "(not reachable/healthy)"}[state],
                            "self": host == me})
        return {"set": self.name, "myState": 1 if me == primary else 2, "term": 1, "members": members,
                "notice": NOTICE, "ok": 1.0}


def _push(host: str, doc: dict[str, Any]) -> dict[str, Any]:
    import pymongo  # vendored

    addr, port = host.rsplit(":", 1)
    client = pymongo.MongoClient(addr, int(port), directConnection=True, serverSelectionTimeoutMS=5000)
    try:
        return dict(client.admin.command(doc))
    except pymongo.errors.OperationFailure as e:
        return dict(e.details or {"ok": 0, "errmsg": str(e)})
    except pymongo.errors.PyMongoError as e:
        raise OSError(str(e)) from e
    finally:
        client.close()


def _alive(host: str) -> bool:
    addr, port = host.rsplit(":", 1)
    try:
        with socket.create_connection((addr, int(port)), timeout=1):
            return True
    except OSError:
        return False


def wrap(dispatch: Callable[[dict[str, Any], Any], dict[str, Any]], rs: ReplSet) -> Callable[..., dict[str, Any]]:
    """SecantusDB's command dispatch with the replica-set commands answered as mongod answers them."""

    def authorized(ctx: Any) -> bool:
        auth = getattr(ctx, "connection_auth", None)
        return not getattr(ctx, "require_auth", False) or bool(auth is not None and auth.is_authenticated)

    def moved(ctx: Any, reply: dict[str, Any]) -> dict[str, Any]:
        """A new configuration moves the topology: drivers' awaitable hellos answer at once (as on a stepdown)."""
        state = getattr(ctx, "step_down_state", None)
        if reply.get("ok") == 1 and state is not None:
            with state._lock:
                state._counter += 1
        return reply

    def not_primary(ctx: Any) -> dict[str, Any]:
        try:
            from secantus.commands import _HELLO_PROCESS_ID
            from secantus.stepdown import not_primary_reply
        except ImportError:  # not under SecantusDB (unit tests)
            return _err(10107, "NotWritablePrimary", "not primary")
        # with the topologyVersion mongod gives, without which a driver takes the error as news and drops the server
        return dict(not_primary_reply(getattr(ctx, "step_down_state", None), _HELLO_PROCESS_ID))

    def dispatch_rs(doc: dict[str, Any], ctx: Any) -> dict[str, Any]:
        name = next(iter(doc), "")
        if name == PUSH:
            return moved(ctx, rs.receive(doc))
        if name in HELLO:
            return rs.hello(dispatch(doc, ctx))
        if name in ("replSetInitiate", "replSetGetStatus", "replSetGetConfig", "replSetReconfig"):
            if not authorized(ctx):
                return _err(13, "Unauthorized", f"command {name} requires authentication")
            if name == "replSetInitiate":
                return moved(ctx, rs.initiate(doc.get("replSetInitiate")))
            if name == "replSetGetStatus":
                return rs.status()
            if name == "replSetGetConfig":
                return ({"config": rs.config, "ok": 1.0} if rs.config is not None
                        else _err(94, "NotYetInitialized", "no replset config has been received"))
            return _err(115, "CommandNotSupported", "replSetReconfig: " + NOTICE)
        if name in WRITES and not rs.is_primary():
            return not_primary(ctx)
        return dispatch(doc, ctx)

    return dispatch_rs
