"""The configuration parsing of the stand-in programs shipped in the lab mirror's archives."""

from __future__ import annotations

from pathlib import Path

import pytest

from nxprovision_lab.standins.runtime import confparse, javaprops, kafka_standin

# --- Java properties -------------------------------------------------------------------------------


def test_properties_separators_comments_and_blank_lines() -> None:
    text = "# comment\n! also a comment\n\na=1\nb : 2\nc 3\n  d=  spaced value  \ne=\n"
    assert javaprops.parse_properties(text) == {"a": "1", "b": "2", "c": "3", "d": "spaced value  ", "e": ""}


def test_properties_continuation_and_escapes() -> None:
    text = "listeners=PLAINTEXT://:9092,\\\n    CONTROLLER://:9093\nkey\\ with\\=sep=v\\tx\\u0041\npath=C:\\\\dir\n"
    props = javaprops.parse_properties(text)
    assert props["listeners"] == "PLAINTEXT://:9092,CONTROLLER://:9093"
    assert props["key with=sep"] == "v\txA"
    assert props["path"] == "C:\\dir"


def test_properties_last_definition_wins_and_round_trip() -> None:
    props = javaprops.parse_properties("a=1\na=2\n")
    assert props == {"a": "2"}
    assert javaprops.parse_properties(javaprops.format_properties({"x": "1", "y": "z"}, "hdr")) == {
        "x": "1",
        "y": "z",
    }


def test_listeners() -> None:
    got = javaprops.parse_listeners("PLAINTEXT://:9092, controller://10.0.0.1:9093,EXT://[::1]:9094")
    assert got == [
        javaprops.Listener("PLAINTEXT", "", 9092),
        javaprops.Listener("CONTROLLER", "10.0.0.1", 9093),
        javaprops.Listener("EXT", "::1", 9094),
    ]
    with pytest.raises(ValueError, match="NAME://HOST:PORT"):
        javaprops.parse_listeners("localhost:9092")
    with pytest.raises(ValueError, match="different name"):
        javaprops.parse_listeners("PLAINTEXT://:9092,PLAINTEXT://:9093")


def test_voters_and_protocol_map() -> None:
    assert javaprops.parse_voters("1@k1:9093,2@k2:9093") == {1: ("k1", 9093), 2: ("k2", 9093)}
    with pytest.raises(ValueError, match="ID@HOST:PORT"):
        javaprops.parse_voters("k1:9093")
    assert javaprops.parse_protocol_map("")["SSL"] == "SSL"
    assert javaprops.parse_protocol_map("CONTROLLER:PLAINTEXT,EXT:SASL_SSL") == {
        "CONTROLLER": "PLAINTEXT",
        "EXT": "SASL_SSL",
    }


def test_log_dirs_precedence() -> None:
    assert javaprops.log_dirs({}) == ["/tmp/kafka-logs"]
    assert javaprops.log_dirs({"log.dir": "/a"}) == ["/a"]
    assert javaprops.log_dirs({"log.dir": "/a", "log.dirs": "/b, /c"}) == ["/b", "/c"]


# --- Kafka start-up rules --------------------------------------------------------------------------


def _kraft(tmp_path, **extra: str) -> dict[str, str]:
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": "1@k1:9093",
        "controller.listener.names": "CONTROLLER",
        "listeners": "PLAINTEXT://:9092,CONTROLLER://:9093",
        "log.dirs": str(tmp_path / "d1"),
    }
    props.update(extra)
    return props


def test_cluster_id_must_be_a_base64_uuid() -> None:
    for _ in range(20):
        cid = kafka_standin.random_uuid()
        assert len(cid) == 22 and not cid.startswith("-")
        kafka_standin.check_cluster_id(cid)
    with pytest.raises(ValueError, match="expected 16 bytes"):
        kafka_standin.check_cluster_id("not-a-uuid")


def test_kraft_start_needs_formatted_log_dirs(tmp_path) -> None:
    props = _kraft(tmp_path)
    with pytest.raises(kafka_standin.StartError, match=r"No `meta\.properties` found"):
        kafka_standin.check_kraft(props)
    (tmp_path / "d1").mkdir()
    (tmp_path / "d1" / "meta.properties").write_text("node.id=2\nversion=1\ncluster.id=abc\n")
    with pytest.raises(kafka_standin.StartError, match="Stored node id 2 doesn't match"):
        kafka_standin.check_kraft(props)
    (tmp_path / "d1" / "meta.properties").write_text("node.id=1\nversion=1\ncluster.id=abc\n")
    assert kafka_standin.check_kraft(props) == "abc"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"node.id": ""}, "node.id"),
        ({"controller.quorum.voters": "2@k2:9093"}, "must be included in the set of voters"),
        ({"process.roles": "broker"}, "must not be included"),
        ({"controller.listener.names": ""}, "controller.listener.names"),
        ({"process.roles": "broker,zookeeper"}, "process.roles"),
    ],
)
def test_kraft_config_errors(tmp_path, change: dict[str, str], message: str) -> None:
    with pytest.raises(kafka_standin.StartError, match=message):
        kafka_standin.check_kraft(_kraft(tmp_path, **change))


def test_listener_plan(tmp_path) -> None:
    props = _kraft(
        tmp_path,
        listeners="INTERNAL://10.0.0.5:9092,CONTROLLER://10.0.0.5:9093,EXTERNAL://:19092",
        **{
            "advertised.listeners": "INTERNAL://k1.lab:9092,EXTERNAL://k1.example:19092",
            "inter.broker.listener.name": "INTERNAL",
            "listener.security.protocol.map": "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
        },
    )
    main, adv, others, controllers = kafka_standin.plan_listeners(props)
    assert (main.name, main.host, main.port) == ("INTERNAL", "10.0.0.5", 9092)
    assert (adv.host, adv.port) == ("k1.lab", 9092)
    assert [o.name for o in others] == ["EXTERNAL"]
    assert [c.port for c in controllers] == [9093]


def test_listener_plan_refuses_sasl(tmp_path) -> None:
    # SSL listeners are served (TLS in front of the broker); SASL is not
    props = _kraft(tmp_path, **{"listener.security.protocol.map": "PLAINTEXT:SASL_SSL,CONTROLLER:PLAINTEXT"})
    with pytest.raises(kafka_standin.StartError, match="PLAINTEXT and SSL only"):
        kafka_standin.plan_listeners(props)


# --- OpenSearch settings ---------------------------------------------------------------------------


def test_flatten_nested_and_dotted_yaml_keys() -> None:
    doc = {
        "network": {"host": "0.0.0.0"},
        "path.data": "/d",
        "cluster": {"routing": {"allocation": {"x": 1}}},
    }
    assert confparse.flatten(doc) == {
        "network.host": "0.0.0.0",
        "path.data": "/d",
        "cluster.routing.allocation.x": 1,
    }


def test_env_placeholders() -> None:
    assert confparse.substitute_env("${HOST}-x", {"HOST": "n1"}) == "n1-x"
    assert confparse.substitute_env(["${A}", 3], {"A": "a"}) == ["a", 3]
    with pytest.raises(ValueError, match="Could not resolve placeholder 'NOPE'"):
        confparse.substitute_env("${NOPE}", {})


def test_jvm_options_version_ranges_and_heap() -> None:
    text = "## c\n-Xms1g\n-Xmx1g\n8-10:-XX:+UseConcMarkSweepGC\n11-:-XX:+UseG1GC\n8:-Xmx9g\n11:-Xmx2g\n"
    lines = confparse.jvm_options_lines(text, 11)
    assert "-XX:+UseG1GC" in lines and "-XX:+UseConcMarkSweepGC" not in lines
    assert confparse.heap_sizes(lines) == (1024**3, 2 * 1024**3)
    assert confparse.heap_sizes([*lines, "-Xms512m"]) == (512 * 1024**2, 2 * 1024**3)
    with pytest.raises(ValueError):
        confparse.jvm_options_lines("Xmx1g\n", 11)


def test_bootstrap_checks() -> None:
    ok = {"discovery.seed_hosts": ["a", "b"]}
    assert confparse.opensearch_bootstrap_checks(ok, 2**30, 2**30) == []
    fails = confparse.opensearch_bootstrap_checks({}, 2**29, 2**30)
    assert any("initial heap size [536870912] not equal to maximum heap size [1073741824]" in f for f in fails)
    assert any("default discovery settings are unsuitable" in f for f in fails)
    assert confparse.opensearch_bootstrap_checks({"discovery.type": "single-node"}, None, None) == []
    assert confparse.first_port("9200-9300", 1) == 9200 and confparse.first_port(None, 9200) == 9200


# --- mongod settings --------------------------------------------------------------------------------


def test_mongod_settings_defaults_and_values() -> None:
    d = confparse.mongod_settings({})
    assert (d["bind_ips"], d["port"], d["db_path"], d["fork"], d["repl_set"]) == (
        ["localhost"],
        27017,
        "/data/db",
        False,
        None,
    )
    doc = {
        "net": {"bindIp": "127.0.0.1,10.0.0.7", "port": 27018},
        "storage": {"dbPath": "/var/lib/mongo", "wiredTiger": {"engineConfig": {"cacheSizeGB": 0.5}}},
        "systemLog": {"destination": "file", "path": "/var/log/mongod.log", "logAppend": True},
        "processManagement": {"fork": True, "pidFilePath": "/run/mongod.pid"},
        "replication": {"replSetName": "rs0"},
        "security": {"authorization": "enabled"},
    }
    s = confparse.mongod_settings(doc)
    assert s["bind_ips"] == ["127.0.0.1", "10.0.0.7"]
    assert (s["port"], s["db_path"], s["log_path"], s["pid_file"]) == (
        27018,
        "/var/lib/mongo",
        "/var/log/mongod.log",
        "/run/mongod.pid",
    )
    assert s["fork"] and s["log_append"] and s["auth"] and s["repl_set"] == "rs0" and s["cache_gb"] == 0.5
    assert confparse.mongod_settings({"net": {"bindIpAll": True}})["bind_ips"] == ["0.0.0.0"]


def test_mongod_rejects_unknown_sections() -> None:
    with pytest.raises(ValueError, match=r"Unrecognized option: nett\.port"):
        confparse.mongod_settings({"nett": {"port": 1}})


def test_kafka_scripts_refuse_to_run_without_a_jvm(tmp_path: Path) -> None:
    """Like kafka-run-class.sh: JAVA_HOME/bin/java when JAVA_HOME is set, else java on PATH; exit 127 otherwise,
    so a Kafka host the roles left without Java fails in the lab as it would in production."""
    jdk = tmp_path / "jdk"
    (jdk / "bin").mkdir(parents=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert kafka_standin.java_missing({"JAVA_HOME": str(jdk), "PATH": "/usr/bin"}) == \
        f"kafka-run-class.sh: line 346: exec: {jdk}/bin/java: not found"
    assert kafka_standin.java_missing({"PATH": str(empty)}) == "kafka-run-class.sh: line 346: exec: java: not found"
    (jdk / "bin" / "java").write_text("#!/bin/sh\n")
    (jdk / "bin" / "java").chmod(0o755)
    assert kafka_standin.java_missing({"JAVA_HOME": str(jdk), "PATH": str(empty)}) is None
    assert kafka_standin.java_missing({"PATH": f"{empty}:{jdk / 'bin'}"}) is None
