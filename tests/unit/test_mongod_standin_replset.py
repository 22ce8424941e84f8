"""The MongoDB stand-in's replica-set control plane (mongod_replset), without a server: members talk through fakes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nxprovision.lab.standins.runtime import mongod_replset
from nxprovision.lab.standins.runtime.mongod_replset import PUSH, ReplSet, wrap

HOSTS = ["10.0.0.1:27017", "10.0.0.2:27017", "10.0.0.3:27017"]


def members(tmp_path: Path, down: set[str] | None = None) -> dict[str, ReplSet]:
    """Three members on one network of fakes: a push reaches the member of that address unless it is down."""
    sets: dict[str, ReplSet] = {}
    down = set() if down is None else down

    def push(host: str, doc: dict[str, Any]) -> dict[str, Any]:
        if host in down:
            raise OSError(f"{host}: connection refused")
        return sets[host].receive(doc)

    for h in HOSTS:
        (tmp_path / h).mkdir()
        sets[h] = ReplSet("rs0", tmp_path / h, [h.split(":")[0], "127.0.0.1"], 27017, "k",
                          push=push, alive=lambda host: host not in down)
    return sets


def config(hosts: list[str] = HOSTS, name: str = "rs0") -> dict[str, Any]:
    return {"_id": name, "protocolVersion": 1, "members": [{"_id": i, "host": h} for i, h in enumerate(hosts)]}


def hello(rs: ReplSet) -> dict[str, Any]:
    return wrap(lambda doc, ctx: {"ok": 1.0, "isWritablePrimary": True, "setName": "rs0", "hosts": ["x"],
                                  "primary": "x", "electionId": 1}, rs)({"hello": 1}, None)


def test_before_initiate_no_member_is_in_a_set(tmp_path: Path) -> None:
    rs = members(tmp_path)[HOSTS[0]]
    h = hello(rs)
    assert "setName" not in h and "primary" not in h and h["isWritablePrimary"] is False and h["isreplicaset"]
    d = wrap(lambda doc, ctx: {"ok": 1.0}, rs)
    assert d({"replSetGetStatus": 1}, None)["code"] == 94
    assert d({"insert": "c"}, None)["code"] == 10107  # no primary yet


def test_initiate_reaches_every_member_and_each_lists_all(tmp_path: Path) -> None:
    sets = members(tmp_path)
    assert sets[HOSTS[0]].initiate(config()) == {"ok": 1.0}
    for h in HOSTS:
        reply = hello(sets[h])
        assert reply["hosts"] == HOSTS and reply["primary"] == HOSTS[0] and reply["me"] == h
        assert reply["isWritablePrimary"] is (h == HOSTS[0]) and reply["secondary"] is (h != HOSTS[0])
        assert ("electionId" in reply) is (h == HOSTS[0]) and "no replication" in reply["notice"]
    status = sets[HOSTS[1]].status()
    assert [(m["name"], m["stateStr"], m["self"]) for m in status["members"]] == [
        (HOSTS[0], "PRIMARY", False), (HOSTS[1], "SECONDARY", True), (HOSTS[2], "SECONDARY", False)]
    # a secondary refuses writes, reads go through
    d = wrap(lambda doc, ctx: {"ok": 1.0}, sets[HOSTS[1]])
    assert d({"insert": "c"}, None)["code"] == 10107 and d({"find": "c"}, None) == {"ok": 1.0}
    assert sets[HOSTS[0]].initiate(config())["code"] == 23  # AlreadyInitialized


def test_a_restarted_member_is_in_the_set_again(tmp_path: Path) -> None:
    sets = members(tmp_path)
    sets[HOSTS[0]].initiate(config())
    again = ReplSet("rs0", tmp_path / HOSTS[2], ["10.0.0.3"], 27017, "k")
    assert hello(again)["secondary"] is True and hello(again)["primary"] == HOSTS[0]


def test_initiate_refusals(tmp_path: Path) -> None:
    down = {HOSTS[2]}
    sets = members(tmp_path, down)
    first = sets[HOSTS[0]]
    assert first.initiate(config(name="other"))["code"] == 93
    assert first.initiate(config(HOSTS[1:]))["code"] == 93  # this node is not in the configuration
    refused = first.initiate(config())
    assert refused["code"] == 74 and HOSTS[2] in refused["errmsg"]  # a member that does not answer
    assert first.config is None and "setName" not in hello(first)
    down.clear()  # once every member answers, the same configuration goes through
    assert first.initiate(config()) == {"ok": 1.0} and hello(sets[HOSTS[2]])["primary"] == HOSTS[0]


def test_a_member_refuses_a_configuration_without_its_key(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    rs = ReplSet("rs0", tmp_path / "m", ["10.0.0.2"], 27017, "mine")
    assert rs.receive({PUSH: 1, "config": config(), "key": "other"})["code"] == 18
    assert rs.config is None
    assert rs.receive({PUSH: 1, "config": config(), "key": "mine"}) == {"ok": 1.0}


def test_key_digest_ignores_whitespace(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("abc def\n")
    (tmp_path / "b").write_text("abcdef")
    assert mongod_replset.key_digest(str(tmp_path / "a")) == mongod_replset.key_digest(str(tmp_path / "b")) != ""
    assert mongod_replset.key_digest(None) == ""


def test_replset_commands_need_a_login_when_access_control_is_on(tmp_path: Path) -> None:
    rs = members(tmp_path)[HOSTS[0]]

    class Ctx:
        require_auth = True
        connection_auth = None
        step_down_state = None

    assert wrap(lambda doc, ctx: {"ok": 1.0}, rs)({"replSetInitiate": config()}, Ctx())["code"] == 13
    assert rs.config is None
