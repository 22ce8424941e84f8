"""The MongoDB stand-in's replica-set control plane (mongod_replset), without a server: members talk through fakes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nxprovision_lab.standins.runtime import mongod_replset
from nxprovision_lab.standins.runtime.mongod_replset import PUSH, ReplSet, wrap

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


def initiated(tmp_path: Path, down: set[str] | None = None) -> dict[str, ReplSet]:
    sets = members(tmp_path, down)
    assert sets[HOSTS[0]].initiate(config()) == {"ok": 1.0}
    return sets


def without(rs: ReplSet, host: str, **changes: Any) -> dict[str, Any]:
    """The member's configuration without HOST, at the next version (what a client sends)."""
    cfg = dict(rs.config or {})
    return {**cfg, "version": cfg["version"] + 1, "members": [m for m in cfg["members"] if m["host"] != host],
            **changes}


def test_reconfig_removes_a_secondary_everywhere_and_it_goes_removed(tmp_path: Path) -> None:
    sets = initiated(tmp_path)
    primary, gone = sets[HOSTS[0]], sets[HOSTS[2]]
    d = wrap(lambda doc, ctx: {"ok": 1.0, "hello": 1}, primary)
    assert d({"replSetReconfig": without(primary, HOSTS[2])}, None) == {"ok": 1.0}
    for h in HOSTS[:2]:
        assert hello(sets[h])["hosts"] == HOSTS[:2] and hello(sets[h])["setVersion"] == 2, h
        assert sets[h].config == primary.config
    assert [m["name"] for m in primary.status()["members"]] == HOSTS[:2]
    # the member left out: REMOVED, no valid configuration, refuses writes
    h = hello(gone)
    assert "setName" not in h and h["isWritablePrimary"] is False and h["secondary"] is False, h
    assert h["info"] == "Does not have a valid replica set config"
    status = gone.status()
    assert status["code"] == 93 and status["myState"] == 10, status
    assert wrap(lambda doc, ctx: {"ok": 1.0}, gone)({"insert": "c"}, None)["code"] == 10107
    # kept in dbPath: a restarted member is where it was
    again = ReplSet("rs0", tmp_path / HOSTS[1], ["10.0.0.2"], 27017, "k")
    assert again.version() == 2 and again.hosts() == HOSTS[:2] and again.primary() == HOSTS[0]
    assert ReplSet("rs0", tmp_path / HOSTS[2], ["10.0.0.3"], 27017, "k").removed()


def test_reconfig_is_for_the_primary_only(tmp_path: Path) -> None:
    sets = initiated(tmp_path)
    secondary = sets[HOSTS[1]]
    refused = secondary.reconfig(without(secondary, HOSTS[2]))
    assert refused["code"] == 10107 and refused["codeName"] == "NotWritablePrimary", refused
    assert secondary.version() == 1 and sets[HOSTS[0]].version() == 1


@pytest.mark.parametrize("version", [1, 3, 10, "2"])
def test_reconfig_version_must_be_the_current_one_plus_one(tmp_path: Path, version: Any) -> None:
    sets = initiated(tmp_path)
    primary = sets[HOSTS[0]]
    refused = primary.reconfig(without(primary, HOSTS[2], version=version))
    assert refused["code"] == 103 and "version" in refused["errmsg"], refused
    assert all(rs.version() == 1 and len(rs.hosts()) == 3 for rs in sets.values())


def test_reconfig_keeps_the_set_name_the_ids_and_the_primary(tmp_path: Path) -> None:
    sets = initiated(tmp_path)
    primary = sets[HOSTS[0]]
    assert primary.reconfig(without(primary, HOSTS[2], _id="other"))["code"] == 103
    moved_id = without(primary, "none")
    moved_id["members"][1] = {**moved_id["members"][1], "_id": 7}
    assert "_id field is 7" in primary.reconfig(moved_id)["errmsg"]
    dup = without(primary, HOSTS[2])
    dup["members"].append(dict(dup["members"][1]))
    assert primary.reconfig(dup)["code"] == 93
    # the primary cannot take itself out: it steps down first
    assert "maps to this node" in primary.reconfig(without(primary, HOSTS[0]))["errmsg"]
    unelectable = without(primary, "none")
    unelectable["members"][0] = {**unelectable["members"][0], "votes": 0, "priority": 0}
    assert "not electable" in primary.reconfig(unelectable)["errmsg"]
    assert primary.version() == 1 and hello(sets[HOSTS[2]])["hosts"] == HOSTS


def test_reconfig_adds_or_removes_at_most_one_voter_unless_forced(tmp_path: Path) -> None:
    sets = initiated(tmp_path)
    primary = sets[HOSTS[0]]
    two_gone = without(primary, HOSTS[2])
    two_gone["members"] = two_gone["members"][:1]
    refused = primary.reconfig(two_gone)
    assert refused["code"] == 103 and "at most 1 voting member" in refused["errmsg"], refused
    # a non-voting member does not count: making one non-voting and removing another is two changes too
    quiet = without(primary, HOSTS[2])
    quiet["members"][1] = {**quiet["members"][1], "votes": 0, "priority": 0}
    assert "at most 1 voting member" in primary.reconfig(quiet)["errmsg"]
    assert primary.reconfig(two_gone, force=True) == {"ok": 1.0}
    assert primary.version() == 1 + mongod_replset.FORCE_VERSION_STEP and primary.hosts() == HOSTS[:1]


def test_reconfig_needs_a_majority_of_the_new_voters(tmp_path: Path) -> None:
    down = {HOSTS[1]}
    sets = initiated(tmp_path)
    sets = members_again(tmp_path, sets, down)
    primary = sets[HOSTS[0]]
    # without HOSTS[2], the new configuration's voters are HOSTS[0] and the dead HOSTS[1]: 1 of the 2 needed
    refused = primary.reconfig(without(primary, HOSTS[2]))
    assert refused["code"] == 74 and "required 2 but only the following 1" in refused["errmsg"], refused
    assert HOSTS[1] in refused["errmsg"]
    assert all(rs.version() == 1 for rs in sets.values())
    # taking the dead member out instead leaves two live voters of two
    assert primary.reconfig(without(primary, HOSTS[1])) == {"ok": 1.0}
    assert sets[HOSTS[2]].hosts() == [HOSTS[0], HOSTS[2]]
    assert sets[HOSTS[1]].version() == 1  # down: it keeps its old configuration


def members_again(tmp_path: Path, sets: dict[str, ReplSet], down: set[str]) -> dict[str, ReplSet]:
    """The same members (their state reloaded from dbPath) on a network where DOWN do not answer."""
    again: dict[str, ReplSet] = {}

    def push(host: str, doc: dict[str, Any]) -> dict[str, Any]:
        if host in down:
            raise OSError(f"{host}: connection refused")
        return again[host].receive(doc)

    for h in sets:
        again[h] = ReplSet("rs0", tmp_path / h, [h.split(":")[0], "127.0.0.1"], 27017, "k",
                           push=push, alive=lambda host: host not in down)
    return again


def test_a_member_takes_only_a_newer_configuration_of_its_set(tmp_path: Path) -> None:
    sets = initiated(tmp_path)
    rs = sets[HOSTS[1]]
    older = {**(rs.config or {}), "members": rs.config["members"][:2]}  # type: ignore[index]
    assert rs.receive({PUSH: 1, "config": older, "key": "k", "primary": HOSTS[0]})["code"] == 103
    assert rs.receive({PUSH: 1, "config": {**older, "_id": "x", "version": 9}, "key": "k"})["code"] == 93
    assert rs.hosts() == HOSTS


def test_step_down_is_refused_naming_the_stand_ins_limit(tmp_path: Path) -> None:
    sets = initiated(tmp_path)
    refused = wrap(lambda doc, ctx: {"ok": 1.0}, sets[HOSTS[0]])({"replSetStepDown": 60}, None)
    assert refused["code"] == 115 and "stand-in" in refused["errmsg"] and "no elections" in refused["errmsg"]
    assert hello(sets[HOSTS[0]])["isWritablePrimary"] is True  # still the primary: nothing pretended
    assert sets[HOSTS[1]].step_down()["code"] == 10107


def test_a_primary_that_is_down_is_named_by_no_member(tmp_path: Path) -> None:
    down: set[str] = set()
    sets = members(tmp_path, down)
    sets[HOSTS[0]].initiate(config())
    down.add(HOSTS[0])
    reply = hello(sets[HOSTS[1]])
    assert "primary" not in reply and reply["secondary"] is True and reply["hosts"] == HOSTS
    assert sets[HOSTS[1]].status()["members"][0]["health"] == 0.0


def test_a_state_file_of_the_earlier_format_is_read(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / mongod_replset.STATE_FILE).write_text(json.dumps({"_id": "rs0", "version": 1,
                                                                          "members": config()["members"]}))
    rs = ReplSet("rs0", tmp_path / "m", ["10.0.0.2"], 27017, "k")
    assert rs.primary() == HOSTS[0] and rs.me() == HOSTS[1] and not rs.removed()
