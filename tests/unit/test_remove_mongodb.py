"""remove-node for a MongoDB replica-set member (issue 15): the refusals read from the set's state, the module's
step-down and reconfiguration run against the lab stand-in's replica-set control plane (which checks
replSetReconfig as mongod does: primary only, version + 1, one voter at a time, a majority of the new voters
answering), and the order of the hooks (step down, reconfigure and wait, only then stop)."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from nxprovision import mongodb_removal as mr
from nxprovision.daytwo import removal_plan
from nxprovision_lab.standins.runtime.mongod_replset import ReplSet, wrap

ROOT = Path(__file__).resolve().parents[2]
HOOKS = ROOT / "playbooks" / "tasks" / "remove"
sys.path.insert(0, str(ROOT / "plugins" / "modules"))
import nx_mongodb_replset as mod  # noqa: E402

A, B, C = "10.0.0.1:27017", "10.0.0.2:27017", "10.0.0.3:27017"


def member(name: str, state: str = "SECONDARY", votes: int = 1) -> dict[str, Any]:
    up = state in ("PRIMARY", "SECONDARY")
    return {"name": name, "health": 1.0 if up else 0.0, "stateStr": state, "votes": votes}


def set_state(*members: dict[str, Any], primary: str = A) -> dict[str, Any]:
    return {"set": "rs0", "primary": primary, "asked": primary or B, "members": list(members)}


# --------------------------------------------------------------------------- refusals


def test_a_healthy_set_lets_a_secondary_go() -> None:
    assert mr.refusal(set_state(member(A, "PRIMARY"), member(B), member(C)), C, False) == ""


def test_the_primary_may_go_when_the_others_can_elect_one() -> None:
    assert mr.refusal(set_state(member(A, "PRIMARY"), member(B), member(C)), A, False) == ""


def test_a_set_without_primary_is_refused() -> None:
    why = mr.refusal(set_state(member(A, "(not reachable/healthy)"), member(B), member(C), primary=""), C, False)
    assert why.startswith("rs0 has no primary (asked of 10.0.0.2:27017)") and "Fix: bring the members back" in why


def test_the_last_member_is_refused() -> None:
    why = mr.refusal(set_state(member(A, "PRIMARY")), A, False)
    assert "last member of rs0" in why and "only copy" in why


def test_a_lost_majority_is_refused_naming_the_unhealthy_members() -> None:
    # B is down: without C the set keeps A and B, 1 healthy of the 2 a primary needs
    why = mr.refusal(set_state(member(A, "PRIMARY"), member(B, "(not reachable/healthy)"), member(C)), C, False)
    assert "would keep 2 voting member(s), of which 1 healthy (10.0.0.1:27017); electing a primary needs 2" in why
    assert "Unhealthy now: 10.0.0.2:27017 ((not reachable/healthy))" in why
    # taking the dead member out instead leaves A and C, both healthy
    assert mr.refusal(set_state(member(A, "PRIMARY"), member(B, "(not reachable/healthy)"), member(C)), B, True) == ""


def test_a_recovering_member_does_not_count_as_healthy() -> None:
    why = mr.refusal(set_state(member(A, "PRIMARY"), member(B, "RECOVERING") | {"health": 1.0}, member(C)), C, False)
    assert "electing a primary needs 2" in why and "RECOVERING" in why


def test_non_voting_members_do_not_count_for_the_majority() -> None:
    # 5 members, 2 of them non-voting: the 3 voters decide
    members = [member(A, "PRIMARY"), member(B), member(C, "(not reachable/healthy)"),
               member("10.0.0.4:27017", votes=0), member("10.0.0.5:27017", votes=0)]
    assert "would keep 2 voting member(s), of which 1 healthy" in mr.refusal(set_state(*members), B, False)


def test_an_unreachable_primary_is_not_dead() -> None:
    why = mr.refusal(set_state(member(A, "PRIMARY"), member(B), member(C)), A, True)
    assert "is the primary of rs0" in why and "without --unreachable" in why


def test_a_member_already_out_of_the_configuration_is_no_refusal() -> None:
    assert mr.refusal(set_state(member(A, "PRIMARY"), member(B)), C, False) == ""


# --------------------------------------------------------------------------- the module against the stand-in


class Network:
    """Three stand-in members (mongod_replset) that the module reaches through `connect`, as over the wire."""

    def __init__(self, tmp_path: Path, down: set[str] | None = None) -> None:
        self.down: set[str] = set()
        self.sets: dict[str, ReplSet] = {}
        self.sent: list[tuple[str, str]] = []
        for h in (A, B, C):
            (tmp_path / h).mkdir()
            self.sets[h] = ReplSet("rs0", tmp_path / h, [h.split(":")[0], "127.0.0.1"], 27017, "k",
                                   push=self._push, alive=lambda host: host not in self.down)
        assert self.sets[A].initiate({"_id": "rs0", "members": [{"_id": i, "host": h} for i, h in
                                                               enumerate((A, B, C))]}) == {"ok": 1.0}
        self.down.update(down or ())  # after the set was initiated with every member up

    def _push(self, host: str, doc: dict[str, Any]) -> dict[str, Any]:
        if host in self.down:
            raise OSError(f"{host}: connection refused")
        return self.sets[host].receive(doc)

    def connect_from(self, local: str) -> mod.Connect:
        def connect(host: str, port: int, login: bool) -> Any:
            target = local if host == "127.0.0.1" else f"{host}:{port}"

            def run(doc: dict[str, Any]) -> dict[str, Any]:
                if target in self.down:
                    raise mod.Unreachable(target)
                self.sent.append((target, next(iter(doc))))
                reply = wrap(lambda d, ctx: {"ok": 1.0}, self.sets[target])(doc, None)
                if reply.get("ok") != 1:
                    raise mod.CommandError(reply)
                return reply

            return run

        return connect


def test_state_is_read_from_the_primary_with_each_members_health(tmp_path: Path) -> None:
    net = Network(tmp_path, down={C})
    st = mod.state(net.connect_from(B), 27017)
    assert st["primary"] == A and st["set"] == "rs0" and st["version"] == 1 and st["asked"] == A
    assert [(m["name"], m["stateStr"], m["health"], m["votes"]) for m in st["members"]] == [
        (A, "PRIMARY", 1.0, 1), (B, "SECONDARY", 1.0, 1), (C, "(not reachable/healthy)", 0.0, 1)]
    assert (B, "isMaster") in net.sent and (A, "replSetGetStatus") in net.sent  # asked locally, read on the primary
    # removing B now would leave A and the dead C
    assert "electing a primary needs 2" in mr.refusal(st, B, False)


def test_state_without_a_primary(tmp_path: Path) -> None:
    net = Network(tmp_path, down={A})
    st = mod.state(net.connect_from(B), 27017)
    assert st["primary"] == "" and [m["name"] for m in st["members"]] == [A, B, C]
    assert mr.refusal(st, C, False).startswith("rs0 has no primary")


def test_remove_takes_a_secondary_out_everywhere_then_a_second_run_changes_nothing(tmp_path: Path) -> None:
    net = Network(tmp_path)
    out = mod.remove(net.connect_from(B), 27017, C, timeout=5, sleep=lambda s: None)
    assert out == {"changed": True, "primary": A, "version": 2}
    assert net.sets[A].hosts() == net.sets[B].hosts() == [A, B]
    assert net.sets[C].removed()  # the stand-in, like mongod, puts the member left out in state REMOVED
    assert [m["name"] for m in mod.state(net.connect_from(A), 27017)["members"]] == [A, B]
    again = mod.remove(net.connect_from(B), 27017, C, timeout=5, sleep=lambda s: None)
    assert again["changed"] is False and net.sets[A].version() == 2


def test_remove_of_a_dead_member_goes_through_the_survivors(tmp_path: Path) -> None:
    net = Network(tmp_path, down={C})
    assert mod.remove(net.connect_from(B), 27017, C, timeout=5, sleep=lambda s: None)["changed"] is True
    assert net.sets[A].hosts() == [A, B] and not any(t == C for t, _ in net.sent)


def test_remove_refuses_the_primary_and_a_set_without_one(tmp_path: Path) -> None:
    net = Network(tmp_path)
    with pytest.raises(mod.CommandError, match="is the primary: step it down first"):
        mod.remove(net.connect_from(B), 27017, A, timeout=5)
    net.down.add(A)
    with pytest.raises(mod.CommandError, match="no primary"):
        mod.remove(net.connect_from(B), 27017, C, timeout=5)
    assert net.sets[B].version() == 1


def test_remove_when_the_set_refuses_the_configuration(tmp_path: Path) -> None:
    # B is down: the configuration without C would have 1 live voter of 2, the stand-in's quorum check refuses it
    net = Network(tmp_path, down={B})
    with pytest.raises(mod.CommandError, match="Quorum check failed"):
        mod.remove(net.connect_from(A), 27017, C, timeout=5)
    assert net.sets[A].hosts() == [A, B, C]


def test_step_down_of_a_secondary_does_nothing(tmp_path: Path) -> None:
    net = Network(tmp_path)
    assert mod.step_down(net.connect_from(B), 27017, C, timeout=5) == {"changed": False, "primary": A}
    assert not any(cmd == "replSetStepDown" for _, cmd in net.sent)


def test_step_down_refused_by_the_stand_in_fails_naming_why(tmp_path: Path) -> None:
    net = Network(tmp_path)
    with pytest.raises(mod.CommandError, match="stand-in: it has no elections"):
        mod.step_down(net.connect_from(B), 27017, A, timeout=5)
    assert net.sets[B].primary() == A


def test_step_down_waits_for_another_primary() -> None:
    """A set that elects: the step-down closes the connection (as mongod before 4.2), B is primary two polls on."""
    polls = {"n": 0}

    def connect(host: str, port: int, login: bool) -> Any:
        def run(doc: dict[str, Any]) -> dict[str, Any]:
            if "replSetStepDown" in doc:
                raise mod.Unreachable("connection closed")
            polls["n"] += 1
            return {"ok": 1.0, "primary": A if polls["n"] <= 1 else ("" if polls["n"] == 2 else B)}

        return run

    assert mod.step_down(connect, 27017, A, timeout=30, sleep=lambda s: None) == {"changed": True, "primary": B}


def test_step_down_without_a_new_primary_fails() -> None:
    clock = iter(range(0, 1000, 10))

    def connect(host: str, port: int, login: bool) -> Any:
        return lambda doc: {"ok": 1.0} if "replSetStepDown" in doc else {"ok": 1.0, "primary": A}

    with pytest.raises(mod.CommandError, match="no other member became primary within 0 s"):
        mod.step_down(connect, 27017, A, timeout=0, sleep=lambda s: None)
    assert mod.wait(lambda: False, 30, sleep=lambda s: None, clock=lambda: float(next(clock))) is False


# --------------------------------------------------------------------------- the hooks


def test_mongodb_has_its_check_removal_and_after_hooks() -> None:
    plan = removal_plan({"hosts": {"m": {"components": ["mongodb"]}}, "db": {}}, "m", HOOKS)
    assert plan == {"components": ["mongodb"], "checks": ["mongodb"], "tasks": ["mongodb.yml"],
                    "afters": ["mongodb"]}


def _tasks(path: Path) -> list[dict[str, Any]]:
    out = []
    for t in yaml.safe_load(path.read_text()):
        out.extend(t.get("block", [t]))
    return out


def test_removal_steps_down_then_reconfigures_then_stops() -> None:
    tasks = _tasks(HOOKS / "mongodb.yml")
    names = [t["name"] for t in tasks]
    actions = [t.get("nx_mongodb_replset", {}).get("action") for t in tasks]
    assert actions.index("step_down") < actions.index("remove") < names.index("Stop and disable mongod")
    for t in tasks:
        if "nx_mongodb_replset" in t:
            assert t["no_log"] is True and "login_password" in t["nx_mongodb_replset"], t["name"]
            assert t["delegate_to"] == "{{ nx_remove_mongodb_peer }}"  # a survivor, never the leaving host
            # its failure is shown by the assert right after it (no_log hides a module's message)
            following = tasks[tasks.index(t) + 1]
            assert "ansible.builtin.assert" in following and t["register"] in str(following["ansible.builtin.assert"])
    stop = tasks[names.index("Stop and disable mongod")]
    assert stop["delegate_to"] == "{{ nx_remove_host }}" and stop["when"] == "not nx_remove_unreachable | bool"
    step = next(t for t in tasks if t.get("nx_mongodb_replset", {}).get("action") == "step_down")
    assert step["when"] == "not nx_remove_unreachable | bool"  # a dead member is never contacted


def test_check_reads_the_set_through_a_survivor_and_refuses_before_anything_changes() -> None:
    tasks = _tasks(HOOKS / "check" / "mongodb.yml")
    text = (HOOKS / "check" / "mongodb.yml").read_text()
    assert "reject('equalto', nx_remove_host)" in text
    read = next(t for t in tasks if "nx_mongodb_replset" in t)
    assert read["nx_mongodb_replset"]["action"] == "state" and read["no_log"] is True
    assert read["delegate_to"] == "{{ nx_remove_mongodb_peer }}"
    decide = next(t for t in tasks if "nx_mongodb_removal" in t)
    assert decide["nx_mongodb_removal"]["unreachable"] == "{{ nx_remove_unreachable | bool }}"
    last = tasks[-1]["ansible.builtin.assert"]
    assert last["that"] == "__nx_remove_mongodb_decision.refusal == ''"
    assert "--force does not lift this" in last["fail_msg"]
    # read-only: no task of the check changes the set or a service
    assert not any(t.get("nx_mongodb_replset", {}).get("action") in ("step_down", "remove") for t in tasks)
    assert "systemd" not in text


def test_after_rewrites_the_survivors_fact_and_rolls_the_nuxeo_nodes() -> None:
    tasks = yaml.safe_load((HOOKS / "after" / "mongodb.yml").read_text())
    fact = tasks[0]
    assert fact["ansible.builtin.include_role"] == {"name": "mongodb", "tasks_from": "fact.yml"}
    assert fact["when"] == "inventory_hostname in nx.db.hosts"
    assert tasks[1]["block"][-1]["ansible.builtin.include_role"] == {"name": "nuxeo"}
    fact_tasks = yaml.safe_load((ROOT / "roles" / "mongodb" / "tasks" / "fact.yml").read_text())
    assert any("nx.db.members" in str(t) for t in fact_tasks)


def test_the_role_keeps_a_reduced_set_deployable() -> None:
    """remove-node leaves 2 members of 3: the next deploy must neither refuse the even set nor reconfigure it."""
    pre = {t["name"]: t for t in yaml.safe_load((ROOT / "roles" / "mongodb" / "tasks" / "preflight.yml").read_text())}
    that = pre["Assert a new replica set has an odd number of members"]["ansible.builtin.assert"]["that"]
    assert "ansible_local.mongodb.replica_set" in that[0]
    svc = {t["name"]: t for t in yaml.safe_load((ROOT / "roles" / "mongodb" / "tasks" / "service.yml").read_text())}
    init = svc["Initiate the replica set"]["community.mongodb.mongodb_replicaset"]
    assert init["validate"] is False and "reconfigure" not in init


def test_the_survivors_etc_hosts_lose_the_host_in_the_removal_not_at_the_next_deploy() -> None:
    """The common role writes every host into /etc/hosts: without this play, the first deploy after a removal would
    change every survivor."""
    plays = yaml.safe_load((ROOT / "playbooks" / "remove_node.yml").read_text())
    rebuilt = next(i for i, p in enumerate(plays) if any("nx_cluster" in t for t in p.get("tasks", [])))
    hosts_play = next(i for i, p in enumerate(plays) if any(
        t.get("ansible.builtin.include_role") == {"name": "common", "tasks_from": "etc_hosts.yml"}
        for t in p.get("tasks", [])))
    assert hosts_play > rebuilt  # rendered from the model without the host
    configure = yaml.safe_load((ROOT / "roles" / "common" / "tasks" / "configure.yml").read_text())
    assert {"name": "Write the cluster hosts into /etc/hosts", "ansible.builtin.import_tasks": "etc_hosts.yml"} \
        in configure


# --------------------------------------------------------------------------- the plan's refusals (before any host)


def test_the_plan_lets_a_member_of_three_go_then_needs_force_then_refuses_the_last() -> None:
    from nxprovision.daytwo import check_removal, view_without
    from nxprovision.errors import NxError
    from nxprovision.inventory import load_inventory
    from nxprovision.model.cluster import build_cluster

    three = build_cluster(load_inventory(ROOT / "inventories" / "compact-mongodb"))
    assert three.derived["db"]["hosts"] == ["mongo1", "mongo2", "mongo3"]
    assert check_removal(three, "mongo3") == []  # 2 members left: the compact architecture's minimum
    two = build_cluster(view_without(three.view, "mongo3"))
    with pytest.raises(NxError, match="needs at least 2") as exc:
        check_removal(two, "mongo2")
    assert "--force" in exc.value.fix
    one = build_cluster(view_without(two.view, "mongo2"))
    with pytest.raises(NxError) as exc:
        check_removal(one, "mongo1", force=True)
    assert "last mongodb host" in exc.value.message and "does not lift" in exc.value.fix


def _run_module(tmp_path: Path, args: dict[str, Any]) -> dict[str, Any]:
    import subprocess

    (tmp_path / "args.json").write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    out = subprocess.run([sys.executable, str(ROOT / "plugins" / "modules" / "nx_mongodb_replset.py"),
                          str(tmp_path / "args.json")], capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout)


def test_a_failure_carries_its_error_past_failed_when(tmp_path: Path) -> None:
    """The hooks run the module under no_log with failed_when: false (which resets `failed`): the assert after it
    reads `error`, so a failure must carry it, and a success an empty one."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    out = _run_module(tmp_path, {"action": "state", "port": port, "login_user": "admin", "login_password": "s3cr3t",
                                 "timeout": 1})
    assert out["failed"] is True and out["error"].startswith("state: a member did not answer"), out
    assert "s3cr3t" not in json.dumps(out)
    tasks = _tasks(HOOKS / "mongodb.yml") + _tasks(HOOKS / "check" / "mongodb.yml")
    for t in tasks:
        if "nx_mongodb_replset" in t:
            assert t["failed_when"] is False, t["name"]
            check = tasks[tasks.index(t) + 1]["ansible.builtin.assert"]
            assert f"{t['register']}.error" in str(check["that"]) and f"{t['register']}.error" in check["fail_msg"]
