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
- `replSetReconfig` is checked as mongod checks it: on the primary only (else 10107 NotWritablePrimary); the same
  set name; `version` the current one + 1; distinct hosts, and a host kept keeps its `_id`; the primary itself in
  the new configuration; at most one voting member added or removed; a majority of the new configuration's voting
  members answering (else 74, nothing changed). It is then handed to every member of the old and the new
  configuration that answers and kept in dbPath. `force: true` lifts the primary, version, one-voter and quorum
  rules (the version jumps by 100000, as mongod's does by tens of thousands). A member left out of the
  configuration it receives is REMOVED: `hello` says it has no valid configuration, `replSetGetStatus` answers 93
  with myState 10, writes are refused.
What it does NOT do, said in `hello` (`notice`), in the log and in the archive's STANDIN marker: no replication
(the data lives on the primary only; a secondary refuses writes and holds none of the primary's data, users
included), no elections (the member that was primary when the set was initiated, its first, stays the primary; when
it is down the set has none), so `replSetStepDown` is refused (115, naming this limit) rather than pretended: a lab
can remove a secondary, not the primary. A member down while a new configuration is handed out keeps its old one
(mongod's heartbeats would bring it the new one).
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
          "no elections (the first member is always the primary), so no replSetStepDown")
# mongod raises a forced configuration's version by a large random amount; the stand-in by this much.
FORCE_VERSION_STEP = 100000


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
        self.config: dict[str, Any] | None = None
        # no elections: the member that was primary at replSetInitiate stays it (None: the set has none)
        self.primary_host: str | None = None
        if self.path.exists():
            state = json.loads(self.path.read_text())
            if "members" in state:  # written before the primary was kept beside the configuration
                state = {"config": state, "primary": str(state["members"][0]["host"])}
            self.config, self.primary_host = state["config"], state.get("primary")

    # -- what this member is ----------------------------------------------------------------------------------
    def hosts(self) -> list[str]:
        return [str(m["host"]) for m in (self.config or {}).get("members", [])]

    def me(self, config: dict[str, Any] | None = None) -> str | None:
        return next((h for h in [str(m["host"]) for m in (config or self.config or {}).get("members", [])]
                     if h in self.addrs), None)

    def removed(self) -> bool:
        """In state REMOVED: it has a configuration that no longer lists it."""
        return self.config is not None and self.me() is None

    def primary(self) -> str | None:
        return self.primary_host if self.primary_host in self.hosts() else None

    def is_primary(self) -> bool:
        return self.config is not None and not self.removed() and self.me() == self.primary()

    def version(self) -> int:
        return int((self.config or {}).get("version", 0))

    # -- commands ---------------------------------------------------------------------------------------------
    def check(self, config: Any, command: str = "replSetInitiate") -> dict[str, Any] | None:
        """mongod's refusals of a configuration: None when it is acceptable."""
        if not isinstance(config, dict) or not isinstance(config.get("members"), list) or not config["members"]:
            return _err(93, "InvalidReplicaSetConfig", f"{command} needs a configuration with members")
        if not all(isinstance(m, dict) and m.get("host") for m in config["members"]):
            return _err(93, "InvalidReplicaSetConfig", "every member needs a host")
        if config.get("_id") != self.name:
            return _err(93, "InvalidReplicaSetConfig",
                        f"Attempting to initiate a replica set with name {config.get('_id')}, but command line "
                        f"reports {self.name}; rejecting")
        hosts = [str(m["host"]) for m in config["members"]]
        ids = [m.get("_id") for m in config["members"]]
        if len(set(hosts)) != len(hosts) or (command != "replSetInitiate" and len(set(ids)) != len(ids)):
            return _err(93, "InvalidReplicaSetConfig", "members need distinct hosts and distinct _id values")
        if self.me(config) is None:
            return _err(93, "InvalidReplicaSetConfig",
                        f"No host described in new configuration with {{version: {config.get('version', 1)}, "
                        f"term: 1}} for replica set {self.name} maps to this node")
        return None

    def hand_over(self, config: dict[str, Any], hosts: list[str]) -> dict[str, str]:
        """Hand CONFIG to HOSTS (not this member): host -> why it did not take it, for those that did not."""
        failed = {}
        for host in hosts:
            try:
                answer = self.push(host, {PUSH: 1, "config": config, "primary": self.primary_host, "key": self.key})
            except OSError as e:
                answer = {"ok": 0, "errmsg": str(e)}
            if answer.get("ok") != 1:
                failed[host] = str(answer.get("errmsg", "refused"))
        return failed

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
        self.primary_host = str(config["members"][0]["host"])
        failed = self.hand_over(config, [str(m["host"]) for m in config["members"] if m["host"] != me])
        if failed:
            self.primary_host = None
            return _err(74, "NodeNotFound",
                        "replSetInitiate quorum check failed because not all proposed set members responded "
                        f"affirmatively: {', '.join(f'{h}: {why}' for h, why in failed.items())}")
        self.save(config)
        return {"ok": 1.0}

    def reconfig(self, config: Any, force: bool = False) -> dict[str, Any]:
        """replSetReconfig, with mongod's checks (see the module's docstring)."""
        if self.config is None:
            return _err(94, "NotYetInitialized", "no replset config has been received")
        if not force and not self.is_primary():
            state = "REMOVED" if self.removed() else "SECONDARY"
            return _err(10107, "NotWritablePrimary",
                        f"replSetReconfig should only be run on a writable PRIMARY. Current state {state};")
        if isinstance(config, dict) and config.get("_id") != self.name:
            return _err(103, "NewReplicaSetConfigurationIncompatible",
                        f"New and old configurations differ in replica set name; old was {self.name}, and new is "
                        f"{config.get('_id')}")
        refused = self.check(config, "replSetReconfig")
        if refused:
            return refused
        version = config.get("version")
        if not force and (not isinstance(version, int) or isinstance(version, bool) or version != self.version() + 1):
            return _err(103, "NewReplicaSetConfigurationIncompatible",
                        f"New replica set configuration version must be greater than old, but {version} is not "
                        f"{self.version()} + 1")
        old = {str(m["host"]): m for m in self.config["members"]}
        for m in config["members"]:
            host = str(m["host"])
            if host in old and m.get("_id") != old[host].get("_id"):
                return _err(103, "NewReplicaSetConfigurationIncompatible",
                            f"New and old configurations both have members with host of {host} but in the new "
                            f"configuration the _id field is {m.get('_id')} and in the old configuration it is "
                            f"{old[host].get('_id')} for replica set {self.name}")
        new_voters = voters(config)
        if not force and self.me(config) not in new_voters:
            return _err(103, "NewReplicaSetConfigurationIncompatible",
                        f"This node, {self.me()}, with _id {old.get(self.me() or '', {}).get('_id')} is not electable "
                        "under the new configuration with version " + str(version))
        if not force and len(set(voters(self.config)) ^ set(new_voters)) > 1:
            return _err(103, "NewReplicaSetConfigurationIncompatible",
                        "Non force replica set reconfig can only add or remove at most 1 voting member.")
        me = self.me(config)
        if not force:
            answering = [h for h in new_voters if h == me or self.alive(h)]
            need = len(new_voters) // 2 + 1
            if len(answering) < need:
                return _err(74, "NodeNotFound",
                            "Quorum check failed because not enough voting nodes responded; required "
                            f"{need} but only the following {len(answering)} voting nodes responded: "
                            f"{', '.join(answering)}; the following nodes did not respond affirmatively: "
                            + ", ".join(h for h in new_voters if h not in answering))
        config = {**config, "members": [dict(m) for m in config["members"]], "term": 1,
                  "version": self.version() + FORCE_VERSION_STEP if force else version}
        if self.primary_host not in [str(m["host"]) for m in config["members"]]:
            self.primary_host = None  # a forced configuration without the primary: no election names another
        others = [h for h in dict.fromkeys([*self.hosts(), *(str(m["host"]) for m in config["members"])])
                  if h != me and h != self.me()]
        self.save(config)
        # members that miss it keep their old configuration (mongod's heartbeats would bring them this one)
        self.hand_over(config, [h for h in others if self.alive(h)])
        return {"ok": 1.0}

    def receive(self, doc: dict[str, Any]) -> dict[str, Any]:
        """A configuration handed over by the member where replSetInitiate or replSetReconfig ran."""
        if doc.get("key") != self.key:
            return _err(18, "AuthenticationFailed", "the member's key file digest does not match this one's")
        config = doc.get("config")
        if self.config is None:
            refused = self.check(config)
            if refused:
                return refused
        elif config == self.config:
            return {"ok": 1.0}
        elif not isinstance(config, dict) or config.get("_id") != self.name:
            return _err(93, "InvalidReplicaSetConfig", f"not a configuration of replica set {self.name}")
        elif int(config.get("version", 0)) <= self.version():
            return _err(103, "NewReplicaSetConfigurationIncompatible",
                        f"already at version {self.version()}, newer than {config.get('version')}")
        primary = doc.get("primary")
        self.primary_host = str(primary) if primary else None
        self.save(config)
        return {"ok": 1.0}

    def save(self, config: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"config": config, "primary": self.primary_host}, indent=1, default=str) + "\n")
        tmp.replace(self.path)
        self.config = config

    def hello(self, reply: dict[str, Any]) -> dict[str, Any]:
        # SecantusDB answers as a one-member set: its set fields give way to the configuration's
        valid = self.config is not None and not self.removed()
        for k in ("primary", "electionId") if valid else ("setName", "setVersion", "hosts", "passives",
                                                          "arbiters", "primary", "me", "electionId", "lastWrite"):
            reply.pop(k, None)
        if not valid:
            # mongod answers alike before replSetInitiate and once REMOVED from the configuration
            reply.update(isWritablePrimary=False, ismaster=False, secondary=False, isreplicaset=True,
                         info="Does not have a valid replica set config", notice=NOTICE)
            return reply
        primary = self.is_primary()
        reply.update(setName=self.name, setVersion=self.version(), hosts=self.hosts(),
                     me=self.me(), isWritablePrimary=primary, ismaster=primary, secondary=not primary,
                     notice=NOTICE)
        # a primary that is down is no primary (mongod's members stop naming it once its heartbeats fail)
        if self.primary() and (primary or self.alive(str(self.primary()))):
            reply["primary"] = self.primary()
        if primary:
            import bson  # vendored with pymongo

            reply["electionId"] = bson.ObjectId("7fffffff0000000000000001")
        return reply

    def status(self) -> dict[str, Any]:
        if self.config is None:
            return _err(94, "NotYetInitialized", "no replset config has been received")
        if self.removed():
            return {**_err(93, "InvalidReplicaSetConfig",
                           "Our replica set config is invalid or we are not a member of it"), "myState": 10}
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

    def step_down(self) -> dict[str, Any]:
        if not self.is_primary():
            return _err(10107, "NotWritablePrimary", "not primary so can't step down")
        return _err(115, "CommandNotSupported",
                    "replSetStepDown refused by the MongoDB stand-in: it has no elections and no replication, so no "
                    "secondary could take over as primary; only a secondary can be removed in the lab")


def voters(config: dict[str, Any]) -> list[str]:
    """The hosts of CONFIG's voting members (votes defaults to 1, as in mongod)."""
    return [str(m["host"]) for m in config.get("members", []) if int(m.get("votes", 1)) > 0]


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
        if name in ("replSetInitiate", "replSetGetStatus", "replSetGetConfig", "replSetReconfig", "replSetStepDown"):
            if not authorized(ctx):
                return _err(13, "Unauthorized", f"command {name} requires authentication")
            if name == "replSetInitiate":
                return moved(ctx, rs.initiate(doc.get("replSetInitiate")))
            if name == "replSetGetStatus":
                return rs.status()
            if name == "replSetGetConfig":
                return ({"config": rs.config, "ok": 1.0} if rs.config is not None and not rs.removed()
                        else _err(94, "NotYetInitialized", "no replset config has been received"))
            if name == "replSetReconfig":
                return moved(ctx, rs.reconfig(doc.get("replSetReconfig"), bool(doc.get("force", False))))
            return rs.step_down()
        if name in WRITES and not rs.is_primary():
            return not_primary(ctx)
        return dispatch(doc, ctx)

    return dispatch_rs
