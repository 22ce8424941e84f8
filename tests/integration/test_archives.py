"""The lab mirror's vendor-layout archives, unpacked and run the way the roles run them.

Each program starts from its unpacked archive with the machine's system python3 (no virtualenv, no
PYTHONPATH), reads a configuration file written as a role writes it, listens on loopback ports, and is
then used by real clients: kafka-python, HTTP, pymongo and boto3.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from nxprovision.model.artifacts import archive_root_dir
from nxprovision_lab.standins import build_mirror
from nxprovision_lab.standins.spec import mirror_path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "modules"))
from nx_unpack import install

pytestmark = pytest.mark.lab

SYSTEM_PYTHON = Path("/usr/bin/python3")
KAFKA_V, OPENSEARCH_V, MONGODB_V, SEAWEEDFS_V = "3.6.2", "1.3.20", "7.0.14", "4.48"


def system_env(tmp: Path) -> dict[str, str]:
    """A lab host's environment: the system tool paths only, so no virtualenv python can leak in."""
    return {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(tmp),
        "LANG": "C.UTF-8",
        "STANDIN_ALLOW_ROOT": "1",
    }


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing answered on 127.0.0.1:{port} within {timeout}s")


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


class Processes:
    """Processes a test started, ended by PID at teardown (TERM, then KILL after a grace period)."""

    def __init__(self) -> None:
        self.pids: list[int] = []
        self.popens: list[subprocess.Popen] = []

    def start(self, argv: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> subprocess.Popen:
        fh = open(log, "ab")  # noqa: SIM115 - lives as long as the process
        p = subprocess.Popen(argv, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=cwd, stdin=subprocess.DEVNULL)
        fh.close()
        self.popens.append(p)
        return p

    def track(self, pid: int) -> None:
        self.pids.append(pid)

    def stop(self, pid: int, grace: float = 10) -> bool:
        """True when the process ended on SIGTERM alone."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            for p in self.popens:
                if p.pid == pid:
                    p.poll()
            if not pid_alive(pid):
                return True
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return False

    def close(self) -> None:
        for pid in [*self.pids, *(p.pid for p in self.popens)]:
            if pid_alive(pid):
                self.stop(pid, grace=5)
        for p in self.popens:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)


@pytest.fixture
def procs() -> Iterator[Processes]:
    p = Processes()
    try:
        yield p
    finally:
        p.close()


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SYSTEM_PYTHON.exists():
        pytest.skip("the stand-ins run with the system python3, which this machine lacks")
    root = tmp_path_factory.mktemp("mirror")
    build_mirror(root)
    return root


def unpack(mirror: Path, product: str, version: str, dest: Path) -> Path:
    """Unpack with nx_unpack, as the roles do, and return the installation's folder."""
    top = archive_root_dir(product, version)
    home = dest / (top or f"{product}-{version}")
    install(str(mirror / mirror_path(product, version)), str(home), top)
    return home


def run(argv: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)


# --- the mirror itself ------------------------------------------------------------------------------


def test_mirror_layout_checksums_and_markers(mirror: Path) -> None:
    expected = {
        ("kafka", KAFKA_V): True,
        ("opensearch", OPENSEARCH_V): True,
        ("mongodb", MONGODB_V): True,
        ("seaweedfs", SEAWEEDFS_V): False,
    }
    index = (mirror / "INDEX.txt").read_text()
    for (product, version), standin in expected.items():
        rel = mirror_path(product, version)
        archive = mirror / rel
        assert f"{rel}\t" in index
        subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=archive.parent, check=True, capture_output=True)
        subprocess.run(
            ["sha512sum", "-c", archive.name + ".sha512"], cwd=archive.parent, check=True, capture_output=True
        )
        with tarfile.open(archive) as tf:
            names = tf.getnames()
        top = archive_root_dir(product, version)
        assert all(n == top or n.startswith(f"{top}/") for n in names) if top else True
        marker = f"{top}/STANDIN" if top else "STANDIN"
        assert (marker in names) is standin, f"{rel}: STANDIN marker presence should be {standin}"
    with tarfile.open(mirror / mirror_path("seaweedfs", SEAWEEDFS_V)) as tf:
        assert tf.getnames() == ["weed"]


def test_mirror_publishes_the_checksum_every_download_is_checked_against(mirror: Path) -> None:
    """Each archive URL the model gives the roles has its get_url checksum, and the lab's mirror serves the file
    that checksum names, in a layout get_url's own parser reads, holding the archive's true sha512."""
    import hashlib

    from ansible.modules.get_url import parse_digest_lines

    from nxprovision.model.artifacts import archive_checksum
    from nxprovision_lab.standins.mirror import all_specs

    base = "http://10.213.0.1:8090"
    specs = all_specs()
    assert {s.product for s in specs} >= {"kafka", "opensearch", "mongodb", "seaweedfs"}
    for spec in specs:
        url = f"{base}/{spec.mirror_path}"
        algorithm, checksum_url = archive_checksum(url).split(":", 1)
        assert algorithm == "sha512" and checksum_url.startswith(base + "/")
        published = mirror / checksum_url[len(base) + 1:]
        archive = mirror / spec.mirror_path
        digests = [d for d, f in parse_digest_lines(archive.name, published.read_text().splitlines())
                   if f == archive.name]
        assert digests == [hashlib.sha512(archive.read_bytes()).hexdigest()], spec.mirror_path


def test_nuxeo_archives_when_the_standin_exists(mirror: Path) -> None:
    zips = sorted((mirror / "nuxeo").glob("nuxeo-server-*-tomcat.zip")) if (mirror / "nuxeo").exists() else []
    if not zips:
        pytest.skip("the Nuxeo stand-in layout module is not available")
    for v in ("2023.34", "2023.35"):
        z = mirror / mirror_path("nuxeo", v)
        with zipfile.ZipFile(z) as zf:
            infos = {i.filename: i for i in zf.infolist()}
        top = archive_root_dir("nuxeo", v)
        assert all(n.startswith(f"{top}/") for n in infos)
        assert (infos[f"{top}/bin/nuxeoctl"].external_attr >> 16) & 0o111, "nuxeoctl must stay executable"
        assert f"{top}/STANDIN" in infos
        assert any(n.startswith(f"{top}/lib/python/") for n in infos), "PYTHON_DEPS are vendored"
        for name in ("nuxeo-web-ui", "amazon-s3-online-storage"):
            assert (mirror / mirror_path("nuxeo_package", v, name)).is_file()


# --- Kafka ------------------------------------------------------------------------------------------


def test_kafka_kraft_broker_with_real_clients(mirror: Path, tmp_path: Path, procs: Processes) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    home = unpack(mirror, "kafka", KAFKA_V, tmp_path / "opt")
    env = system_env(tmp_path)
    port, cport = free_ports(2)
    conf = tmp_path / "server.properties"
    conf.write_text(
        "# written as the kafka role writes it (KRaft, combined broker and controller)\n"
        "process.roles=broker,controller\nnode.id=1\n"
        f"controller.quorum.voters=1@127.0.0.1:{cport}\n"
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}\n"
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n"
        "controller.listener.names=CONTROLLER\ninter.broker.listener.name=PLAINTEXT\n"
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n"
        f"log.dirs={tmp_path / 'kraft-logs'}\nnum.partitions=1\n"
    )
    start = [str(home / "bin" / "kafka-server-start.sh"), str(conf)]

    # like Kafka, the broker refuses log dirs that kafka-storage.sh has not formatted
    refused = run(start, env)
    assert refused.returncode != 0 and "No `meta.properties` found" in refused.stderr

    cluster_id = run([str(home / "bin" / "kafka-storage.sh"), "random-uuid"], env).stdout.strip()
    fmt = run([str(home / "bin" / "kafka-storage.sh"), "format", "-t", cluster_id, "-c", str(conf)], env)
    assert fmt.returncode == 0, fmt.stderr
    meta = (tmp_path / "kraft-logs" / "meta.properties").read_text()
    assert f"cluster.id={cluster_id}" in meta and "node.id=1" in meta
    again = run([str(home / "bin" / "kafka-storage.sh"), "format", "-t", cluster_id, "-c", str(conf)], env)
    assert again.returncode == 1 and "already formatted" in again.stderr

    log = tmp_path / "kafka.log"
    broker = procs.start(start, env, log)
    wait_port(port)
    assert "[STAND-IN]" in log.read_text() and "Tansu" in log.read_text()

    topics = [str(home / "bin" / "kafka-topics.sh"), "--bootstrap-server", f"127.0.0.1:{port}"]
    created = run(
        [
            *topics,
            "--create",
            "--topic",
            "nuxeo-audit-audit",
            "--partitions",
            "2",
            "--replication-factor",
            "1",
        ],
        env,
    )
    assert created.returncode == 0 and "Created topic nuxeo-audit-audit." in created.stdout, created.stderr
    dup = run([*topics, "--create", "--topic", "nuxeo-audit-audit"], env)
    assert dup.returncode == 1 and "already exists" in dup.stderr
    assert "nuxeo-audit-audit" in run([*topics, "--list"], env).stdout.split()
    described = run([*topics, "--describe", "--topic", "nuxeo-audit-audit"], env).stdout
    assert "PartitionCount: 2" in described and "\tPartition: 1\t" in described
    assert run([*topics, "--describe", "--under-replicated-partitions"], env).stdout.strip() == ""

    producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{port}")
    for i in range(5):
        producer.send("nuxeo-audit-audit", key=b"k", value=f"event-{i}".encode()).get(timeout=10)
    producer.close()
    # a consumer group, as Nuxeo's computations use; Tansu completes a group's first join after about
    # half of session.timeout.ms, hence the short session timeout
    consumer = KafkaConsumer(
        "nuxeo-audit-audit",
        bootstrap_servers=f"127.0.0.1:{port}",
        group_id="nuxeo-audit",
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        consumer_timeout_ms=20000,
    )
    got = []
    for msg in consumer:
        got.append(msg.value)
        if len(got) == 5:
            break
    consumer.commit()
    consumer.close()
    assert sorted(got) == [f"event-{i}".encode() for i in range(5)]

    deleted = run([*topics, "--delete", "--topic", "nuxeo-audit-audit"], env)
    assert deleted.returncode == 0, deleted.stderr
    assert "nuxeo-audit-audit" not in run([*topics, "--list"], env).stdout.split()

    stop = run([str(home / "bin" / "kafka-server-stop.sh")], env)
    assert stop.returncode == 0
    assert broker.wait(timeout=15) == 0
    assert run([str(home / "bin" / "kafka-server-stop.sh")], env).stdout.strip() == "No kafka server to stop"


def test_kafka_daemon_mode_reports_start_failures(mirror: Path, tmp_path: Path) -> None:
    home = unpack(mirror, "kafka", KAFKA_V, tmp_path / "opt")
    env = system_env(tmp_path)
    (port,) = free_ports(1)
    conf = tmp_path / "server.properties"
    conf.write_text(f"broker.id=0\nlisteners=SSL://127.0.0.1:{port}\nzookeeper.connect=127.0.0.1:2181\n")
    res = run([str(home / "bin" / "kafka-server-start.sh"), "-daemon", str(conf)], env)
    # an SSL listener with Kafka's default key store type (JKS): the stand-in serves TLS from PEM stores only
    assert res.returncode == 1 and "PEM key stores only" in res.stderr


# --- OpenSearch -------------------------------------------------------------------------------------


def http(method: str, url: str, body: object | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"{}")


def test_opensearch_daemon_serves_rest_api(mirror: Path, tmp_path: Path, procs: Processes) -> None:
    home = unpack(mirror, "opensearch", OPENSEARCH_V, tmp_path / "opt")
    env = system_env(tmp_path)
    (port,) = free_ports(1)
    plain = (
        "cluster.name: nuxeo-search\nnode.name: search1\nnetwork.host: 127.0.0.1\n"
        f"http.port: {port}\npath:\n  data: {tmp_path / 'data'}\n  logs: {tmp_path / 'logs'}\n"
        'discovery.seed_hosts: ["127.0.0.1"]\ncluster.initial_cluster_manager_nodes: [search1]\n'
    )
    # the archive ships the security plugin: left enabled without its TLS settings, the node refuses to start
    (home / "config" / "opensearch.yml").write_text(plain)
    refused = run([str(home / "bin" / "opensearch"), "-d", "-p", str(tmp_path / "refused.pid")], env)
    assert refused.returncode != 0 and "plugins.security" in refused.stderr, refused.stderr
    (home / "config" / "opensearch.yml").write_text(plain + "plugins.security.disabled: true\n")
    (home / "config" / "jvm.options").write_text("-Xms256m\n-Xmx256m\n11-:-XX:+UseG1GC\n")
    pidfile = tmp_path / "opensearch.pid"

    as_root = run(
        [str(home / "bin" / "opensearch"), "-d", "-p", str(pidfile)],
        {k: v for k, v in env.items() if k != "STANDIN_ALLOW_ROOT"},
    )
    if os.geteuid() == 0:
        assert as_root.returncode != 0 and "can not run opensearch as root" in as_root.stderr

    started = run([str(home / "bin" / "opensearch"), "-d", "-p", str(pidfile)], env)
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    procs.track(pid)
    log = (tmp_path / "logs" / "nuxeo-search.log").read_text()
    assert "[STAND-IN]" in log and "-Xms=268435456 -Xmx=268435456" in log

    base = f"http://127.0.0.1:{port}"
    assert http("GET", f"{base}/_cluster/health")["status"] in ("green", "yellow")
    http("PUT", f"{base}/nuxeo", {"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
    http("PUT", f"{base}/nuxeo/_doc/doc1?refresh=true", {"ecm:title": "Quarterly report", "dc:creator": "bob"})
    hits = http("POST", f"{base}/nuxeo/_search", {"query": {"match": {"ecm:title": "quarterly"}}})["hits"]
    assert hits["total"]["value"] == 1 and hits["hits"][0]["_id"] == "doc1"
    assert http("GET", f"{base}/_cluster/health?wait_for_status=green&timeout=5s")["status"] == "green"

    assert procs.stop(pid), "opensearch did not stop on SIGTERM"
    assert not pidfile.exists(), "the pid file is removed on shutdown"


def _certs(tmp: Path, *names: str) -> dict[str, tuple[Path, Path]]:
    """A CA (tmp/ca.crt) and one certificate per name (CN=name, 127.0.0.1), PKCS#8 keys."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    (tmp / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out = {}
    for name in names:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(name),
                                                            x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH]), False)
                .sign(ca_key, hashes.SHA256()))
        paths = tmp / f"{name}.crt", tmp / f"{name}.key"
        paths[0].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[1].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        out[name] = paths
    return out


def _https(url: str, ca: Path, auth: tuple[str, str] | None = None, method: str = "GET") -> int:
    import base64
    import ssl
    import urllib.error

    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    req = urllib.request.Request(url, method=method, headers=headers, data=b"{}" if method == "PUT" else None)
    try:
        with urllib.request.urlopen(req, timeout=10, context=ssl.create_default_context(cafile=str(ca))) as r:
            return r.status
    except urllib.error.HTTPError as e:
        assert e.code != 401 or e.headers.get("WWW-Authenticate") == 'Basic realm="OpenSearch Security"'
        return e.code


def test_opensearch_security_plugin_users_and_securityadmin(mirror: Path, tmp_path: Path, procs: Processes) -> None:
    """The archive's security plugin: the shipped demo configuration loads at the first start, securityadmin.sh
    (plugins/opensearch-security/tools) replaces it with an admin_dn certificate only, and users then get 401/403
    as the plugin answers."""
    import importlib.util
    import shutil

    home = unpack(mirror, "opensearch", OPENSEARCH_V, tmp_path / "opt")
    env = system_env(tmp_path)
    tls = home / "config" / "tls"
    tls.mkdir()
    certs = _certs(tls, "search1", "nuxeo-search-admin", "stranger")
    http_port, transport = free_ports(2)
    (home / "config" / "opensearch.yml").write_text(
        f"cluster.name: nuxeo-search\nnode.name: search1\nnetwork.host: 127.0.0.1\nhttp.port: {http_port}\n"
        f"transport.port: {transport}\npath:\n  data: {tmp_path / 'data'}\n  logs: {tmp_path / 'logs'}\n"
        "discovery.type: single-node\nplugins.security.disabled: false\n"
        + "".join(f"plugins.security.ssl.{layer}.{k}: tls/{v}\n" for layer in ("transport", "http")
                  for k, v in (("pemcert_filepath", "search1.crt"), ("pemkey_filepath", "search1.key"),
                               ("pemtrustedcas_filepath", "ca.crt")))
        + "plugins.security.ssl.http.enabled: true\nplugins.security.nodes_dn: [\"CN=search1\"]\n"
        "plugins.security.authcz.admin_dn: [\"CN=nuxeo-search-admin\"]\n"
        "plugins.security.allow_default_init_securityindex: true\n")
    (home / "config" / "jvm.options").write_text("-Xms256m\n-Xmx256m\n11-:-XX:+UseG1GC\n")
    pidfile = tmp_path / "opensearch.pid"
    started = run([str(home / "bin" / "opensearch"), "-d", "-p", str(pidfile)], env)
    assert started.returncode == 0, started.stderr
    procs.track(int(pidfile.read_text()))
    base, ca = f"https://127.0.0.1:{http_port}", tls / "ca.crt"
    assert _https(f"{base}/_cluster/health", ca) == 401
    assert _https(f"{base}/_cluster/health", ca, ("admin", "admin")) == 200  # the tarball's demo user

    # the role's configuration: its templates and its module's bcrypt hashes
    conf = home / "plugins" / "opensearch-security" / "securityconfig"
    spec = importlib.util.spec_from_file_location("users", Path(__file__).resolve().parents[2] / "plugins"
                                                  / "modules" / "nx_opensearch_users.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader
    spec.loader.exec_module(mod)
    users = {"admin": "adm-pw", "nuxeo": "nx-pw", "backup": "bk-pw"}
    (conf / "internal_users.yml").write_text(mod.render({u: {} for u in users},
                                                        {u: mod._hash(p, 4) for u, p in users.items()}))
    (conf / "roles.yml").write_text(
        '_meta: {type: "roles", config_version: 2}\nnxprovision_nuxeo:\n  cluster_permissions: [cluster_monitor]\n'
        '  index_permissions:\n  - {index_patterns: ["nuxeo*"], allowed_actions: [indices_all]}\n')
    (conf / "roles_mapping.yml").write_text(
        '_meta: {type: "rolesmapping", config_version: 2}\nall_access: {users: [admin]}\n'
        'nxprovision_nuxeo: {users: [nuxeo]}\n')
    tool = home / "plugins" / "opensearch-security" / "tools" / "securityadmin.sh"

    def admin(name: str) -> subprocess.CompletedProcess[str]:
        cert, key = certs[name]
        return run([str(tool), "-cd", str(conf), "-icl", "-nhnv", "-cacert", str(ca), "-cert", str(cert), "-key",
                    str(key), "-h", "127.0.0.1", "-p", str(transport)], env)

    node = admin("search1")
    assert node.returncode != 0 and "node certificate" in node.stdout, node.stdout
    stranger = admin("stranger")
    assert stranger.returncode != 0 and "not registered as admin_dn" in stranger.stdout, stranger.stdout
    assert _https(f"{base}/_cluster/health", ca, ("admin", "admin")) == 200  # nothing applied yet
    applied = admin("nuxeo-search-admin")
    assert applied.returncode == 0 and "Done with success" in applied.stdout, applied.stdout + applied.stderr
    assert _https(f"{base}/_cluster/health", ca, ("admin", "admin")) == 401
    assert _https(f"{base}/_cluster/health", ca, ("nuxeo", "nx-pw")) == 200
    assert _https(f"{base}/nuxeo", ca, ("nuxeo", "nx-pw"), "PUT") == 200
    assert _https(f"{base}/other", ca, ("nuxeo", "nx-pw"), "PUT") == 403
    assert _https(f"{base}/_snapshot/_all", ca, ("nuxeo", "nx-pw")) == 403
    assert _https(f"{base}/_cluster/settings", ca, ("nuxeo", "nx-pw"), "PUT") == 403
    # the admin passes the plugin (the empty settings body is then the backend's to refuse, with a 400)
    assert _https(f"{base}/_cluster/settings", ca, ("admin", "adm-pw"), "PUT") not in (401, 403)

    # the security index outlives a restart, as the real one does
    pid = int(pidfile.read_text())
    assert procs.stop(pid)
    shutil.copy(conf / "internal_users.yml", tmp_path / "kept.yml")
    started = run([str(home / "bin" / "opensearch"), "-d", "-p", str(pidfile)], env)
    assert started.returncode == 0, started.stderr
    procs.track(int(pidfile.read_text()))
    assert _https(f"{base}/_cluster/health", ca, ("nuxeo", "nx-pw")) == 200
    assert procs.stop(int(pidfile.read_text()))


def test_kafka_ssl_listener_requires_client_certificates(mirror: Path, tmp_path: Path, procs: Processes) -> None:
    """ssl.client.auth=required: kafka-topics.sh and a real client with only the CA are refused; with a client
    certificate from the CA they get the metadata."""
    import ssl

    from kafka import KafkaAdminClient

    home = unpack(mirror, "kafka", KAFKA_V, tmp_path / "opt")
    env = system_env(tmp_path)
    certs = _certs(tmp_path, "kafka1", "front1")
    keystore = tmp_path / "keystore.pem"
    keystore.write_text(certs["kafka1"][1].read_text() + certs["kafka1"][0].read_text())
    port, cport = free_ports(2)
    conf = tmp_path / "server.properties"
    conf.write_text(
        "process.roles=broker,controller\nnode.id=1\n"
        f"controller.quorum.voters=1@127.0.0.1:{cport}\n"
        f"listeners=SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}\n"
        f"advertised.listeners=SSL://127.0.0.1:{port}\n"
        "controller.listener.names=CONTROLLER\ninter.broker.listener.name=SSL\n"
        "listener.security.protocol.map=CONTROLLER:SSL,SSL:SSL\n"
        f"ssl.keystore.type=PEM\nssl.keystore.location={keystore}\nssl.truststore.type=PEM\n"
        f"ssl.truststore.location={tmp_path / 'ca.crt'}\nssl.client.auth=required\n"
        f"log.dirs={tmp_path / 'kraft-logs'}\nnum.partitions=1\n")
    fmt = run([str(home / "bin" / "kafka-storage.sh"), "format", "-t", "q1Sh-9_ISia_zwGINzRvyQ", "-c", str(conf)], env)
    assert fmt.returncode == 0, fmt.stderr
    broker = procs.start([str(home / "bin" / "kafka-server-start.sh"), str(conf)], env, tmp_path / "kafka.log")
    wait_port(port)

    only_ca = tmp_path / "only-ca.properties"
    only_ca.write_text("security.protocol=SSL\nssl.truststore.type=PEM\n"
                       f"ssl.truststore.location={tmp_path / 'ca.crt'}\n")
    with_cert = tmp_path / "client.properties"
    with_cert.write_text(only_ca.read_text() + f"ssl.keystore.type=PEM\nssl.keystore.location={keystore}\n")
    topics = [str(home / "bin" / "kafka-topics.sh"), "--bootstrap-server", f"127.0.0.1:{port}"]
    refused = run([*topics, "--command-config", str(only_ca), "--list"], env, timeout=120)
    assert refused.returncode != 0, refused.stdout + refused.stderr
    created = run([*topics, "--command-config", str(with_cert), "--create", "--topic", "t1"], env, timeout=120)
    assert created.returncode == 0 and "Created topic t1." in created.stdout, created.stderr

    ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    with pytest.raises(Exception):  # noqa: B017 - NoBrokersAvailable or a connection error
        KafkaAdminClient(bootstrap_servers=[f"127.0.0.1:{port}"], security_protocol="SSL", ssl_context=ctx,
                         request_timeout_ms=8000, api_version_auto_timeout_ms=8000).close()
    ctx.load_cert_chain(str(certs["front1"][0]), str(certs["front1"][1]))
    client = KafkaAdminClient(bootstrap_servers=[f"127.0.0.1:{port}"], security_protocol="SSL", ssl_context=ctx,
                              request_timeout_ms=30000)
    assert "t1" in client.list_topics() and client.describe_cluster()["brokers"]
    client.close()
    assert "refused a connection without a TLS handshake" in (tmp_path / "kafka.log").read_text()
    assert run([str(home / "bin" / "kafka-server-stop.sh")], env).returncode == 0
    assert broker.wait(timeout=15) == 0


def test_opensearch_refuses_bad_yaml_placeholders(mirror: Path, tmp_path: Path) -> None:
    home = unpack(mirror, "opensearch", OPENSEARCH_V, tmp_path / "opt")
    (home / "config" / "opensearch.yml").write_text("node.name: ${NO_SUCH_VARIABLE}\n")
    res = run([str(home / "bin" / "opensearch")], system_env(tmp_path))
    assert res.returncode == 1 and "Could not resolve placeholder 'NO_SUCH_VARIABLE'" in res.stderr


# --- MongoDB ----------------------------------------------------------------------------------------


# The system python3 of each lab release: Debian 12's (this machine's /usr/bin/python3) and Debian 13's 3.13 (a
# CPython 3.13 of this machine's, as a Debian 13 host has it). The stand-in's SecantusDB is compiled per interpreter.
_PY313 = [p for p in (shutil.which("python3.13"), "/root/.pyenv/versions/3.13.0/bin/python3.13")
          if p and Path(p).is_file() and "shims" not in p]


@pytest.mark.parametrize("python", ["/usr/bin/python3", "3.13"], ids=["debian12-python3.11", "debian13-python3.13"])
def test_mongod_forks_serves_and_keeps_data(mirror: Path, tmp_path: Path, procs: Processes, python: str) -> None:
    import pymongo

    home = unpack(mirror, "mongodb", MONGODB_V, tmp_path / "opt")
    env = system_env(tmp_path)
    if python == "3.13":
        if not _PY313:
            pytest.skip("no CPython 3.13 on this machine to stand for a Debian 13 host's python3")
        python = _PY313[0]
    env["STANDIN_PYTHON"] = python
    (port,) = free_ports(1)
    db, pidfile, logfile = tmp_path / "db", tmp_path / "mongod.pid", tmp_path / "log" / "mongod.log"
    conf = tmp_path / "mongod.conf"
    conf.write_text(
        f"net:\n  bindIp: 127.0.0.1\n  port: {port}\nstorage:\n  dbPath: {db}\n"
        f"systemLog:\n  destination: file\n  path: {logfile}\n  logAppend: true\n"
        f"processManagement:\n  fork: true\n  pidFilePath: {pidfile}\n"
        "replication:\n  replSetName: rs0\n"
    )
    mongod = [str(home / "bin" / "mongod"), "--config", str(conf)]
    missing = run(mongod, env)
    assert missing.returncode == 100 and "Data directory" in missing.stderr
    db.mkdir()

    doc_id = uuid.uuid4().hex
    for round_ in range(2):
        res = run(mongod, env)
        assert res.returncode == 0 and "child process started successfully" in res.stdout, res.stderr
        pid = int(pidfile.read_text())
        procs.track(pid)
        if round_ == 0:
            # a fresh member is in no set until replSetInitiate (RSGhost to a driver), as with mongod
            direct = pymongo.MongoClient(f"mongodb://127.0.0.1:{port}/?directConnection=true",
                                         serverSelectionTimeoutMS=10000)
            assert "setName" not in direct.admin.command("hello")
            members = [{"_id": 0, "host": f"127.0.0.1:{port}"}]
            direct.admin.command("replSetInitiate", {"_id": "rs0", "members": members})
            direct.close()
        client = pymongo.MongoClient(f"mongodb://127.0.0.1:{port}/?replicaSet=rs0", serverSelectionTimeoutMS=10000)
        docs = client["nuxeo"]["default"]
        if round_ == 0:
            docs.insert_one({"_id": doc_id, "ecm:primaryType": "File"})
        # the second round proves the documents and the set's configuration survived a restart (both in dbPath)
        assert docs.find_one({"_id": doc_id})["ecm:primaryType"] == "File"
        assert client.admin.command("hello")["setName"] == "rs0"
        client.close()
        down = run([*mongod, "--shutdown"], env)
        assert down.returncode == 0, down.stderr
        assert not pid_alive(pid)
    log = logfile.read_text()
    assert "[STAND-IN]" in log and "no replication" in log and "no elections" in log


# --- SeaweedFS (the real weed binary) -----------------------------------------------------------------

ACCESS_KEY, SECRET_KEY = "NUXEOACCESS", "nuxeo-secret-key"


def start_weed(mirror: Path, tmp_path: Path, procs: Processes) -> tuple[int, subprocess.Popen]:
    """`weed server -s3` from the mirror's tarball with one S3 identity; returns (S3 port, process)."""
    weed = unpack(mirror, "seaweedfs", SEAWEEDFS_V, tmp_path / "weed-opt") / "weed"
    assert os.access(weed, os.X_OK)
    ident = tmp_path / "s3.json"
    identity = {
        "name": "nuxeo",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    ident.write_text(json.dumps({"identities": [identity]}))
    (data := tmp_path / "weed-data").mkdir()
    p = free_ports(8)
    ports = dict(
        zip(
            ["master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc"],
            p,
            strict=True,
        )
    )
    argv = [str(weed), "server", "-s3", "-ip", "127.0.0.1", "-ip.bind", "127.0.0.1", "-dir", str(data)]
    for name, port in ports.items():
        argv += [f"-{name.replace('.grpc', '.port.grpc')}" if ".grpc" in name else f"-{name}.port", str(port)]
    argv += ["-s3.port.iceberg", "0", "-s3.port.lance", "0", "-s3.config", str(ident)]
    argv += ["-master.volumeSizeLimitMB", "64", "-volume.max", "4"]
    server = procs.start(argv, system_env(tmp_path), tmp_path / "weed.log")
    wait_port(ports["s3"], timeout=60)
    return ports["s3"], server


def s3_client(port: int, secret: str = SECRET_KEY):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def create_bucket(port: int, bucket: str, server: subprocess.Popen) -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError

    client = s3_client(port)
    deadline = time.monotonic() + 60
    while True:  # the filer and volume servers register with the master a few seconds after start
        try:
            client.create_bucket(Bucket=bucket)
            client.put_object(Bucket=bucket, Key="probe", Body=b"probe")
            return
        except (ClientError, EndpointConnectionError):
            if time.monotonic() > deadline or server.poll() is not None:
                raise
            time.sleep(1)


def test_seaweedfs_s3_with_identities(mirror: Path, tmp_path: Path, procs: Processes) -> None:
    from botocore.exceptions import ClientError

    port, server = start_weed(mirror, tmp_path, procs)
    create_bucket(port, "nuxeo-binaries", server)
    client = s3_client(port)
    client.put_object(Bucket="nuxeo-binaries", Key="blobs/abc", Body=b"binary content")
    assert client.get_object(Bucket="nuxeo-binaries", Key="blobs/abc")["Body"].read() == b"binary content"
    with pytest.raises(ClientError) as denied:
        s3_client(port, "wrong-secret").get_object(Bucket="nuxeo-binaries", Key="blobs/abc")
    assert denied.value.response["Error"]["Code"] in (
        "SignatureDoesNotMatch",
        "AccessDenied",
        "InvalidAccessKeyId",
    )
    procs.stop(server.pid, grace=5)  # weed may ignore SIGTERM: stop() falls back to SIGKILL
    server.wait(timeout=10)


def test_kafka_brokers_sharing_s3_storage(mirror: Path, tmp_path: Path, procs: Processes) -> None:
    """Two stand-in brokers on one S3 bucket (the stand-in-only standin.tansu.* keys) share topics."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    s3_port, weed = start_weed(mirror, tmp_path, procs)
    create_bucket(s3_port, "kafka", weed)
    home = unpack(mirror, "kafka", KAFKA_V, tmp_path / "opt")
    env = system_env(tmp_path)
    ports = free_ports(4)
    voters = f"1@127.0.0.1:{ports[1]},2@127.0.0.1:{ports[3]}"
    cluster_id = run([str(home / "bin" / "kafka-storage.sh"), "random-uuid"], env).stdout.strip()
    for n in (1, 2):
        port, cport = ports[2 * n - 2], ports[2 * n - 1]
        conf = tmp_path / f"server{n}.properties"
        conf.write_text(
            f"process.roles=broker,controller\nnode.id={n}\ncontroller.quorum.voters={voters}\n"
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}\n"
            "controller.listener.names=CONTROLLER\n"
            f"log.dirs={tmp_path / f'logs{n}'}\n"
            "standin.tansu.storage.engine=s3://kafka/\n"
            f"standin.tansu.s3.endpoint=http://127.0.0.1:{s3_port}\n"
            f"standin.tansu.s3.access.key={ACCESS_KEY}\nstandin.tansu.s3.secret.key={SECRET_KEY}\n"
            "standin.tansu.s3.region=us-east-1\n"
        )
        fmt = run([str(home / "bin" / "kafka-storage.sh"), "format", "-t", cluster_id, "-c", str(conf)], env)
        assert fmt.returncode == 0, fmt.stderr
        procs.start([str(home / "bin" / "kafka-server-start.sh"), str(conf)], env, tmp_path / f"kafka{n}.log")
        wait_port(port)
    b1, b2 = f"127.0.0.1:{ports[0]}", f"127.0.0.1:{ports[2]}"
    topics = [str(home / "bin" / "kafka-topics.sh")]
    created = run([*topics, "--bootstrap-server", b1, "--create", "--topic", "shared", "--partitions", "1"], env)
    assert created.returncode == 0, created.stderr
    assert "shared" in run([*topics, "--bootstrap-server", b2, "--list"], env).stdout.split()
    producer = KafkaProducer(bootstrap_servers=b1)
    for i in range(3):
        producer.send("shared", f"m{i}".encode()).get(timeout=10)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=b2, auto_offset_reset="earliest", consumer_timeout_ms=10000)
    consumer.assign([TopicPartition("shared", 0)])
    consumer.seek_to_beginning()
    got = [m.value for m in consumer]
    consumer.close()
    assert got == [b"m0", b"m1", b"m2"]
