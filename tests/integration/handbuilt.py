"""A Nuxeo cluster built BY HAND on a plain 3-host lab: the fixture `nxprovision adopt` is tested against.

Nothing of nxprovision's roles, playbooks or model builds it: shell steps (tests/integration/handbuilt/*.sh) run
over SSH the way an operator following the vendors' install pages would type them: Debian packages, release
archives from the lab's download mirror unpacked under /opt, configuration files written with heredocs,
systemd units of our own. Only lab facts (addresses, the mirror's URL) come from the lab.

Layout (a compact cluster, components co-located):

    host1  HAProxy :80 (/nuxeo -> both Nuxeo nodes), OpenSearch node, Kafka broker (KRaft), SeaweedFS (S3 :8333)
    host2  PostgreSQL primary, OpenSearch node, Nuxeo node nuxeo1
    host3  PostgreSQL streaming standby, OpenSearch node, Nuxeo node nuxeo2 (its nuxeo.conf differs on purpose)
"""

from __future__ import annotations

import secrets
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster_checks import create_document_with_blob, md5_hex, wait_for
from conftest import Lab

STEPS = Path(__file__).resolve().parent / "handbuilt"

NUXEO_VERSION = "2025.9"
SEARCH_VERSION = "1.3.20"
KAFKA_VERSION = "3.6.2"
SEAWEEDFS_VERSION = "4.48"
PG_MAJOR = "17"  # Debian 13's PostgreSQL
# the offline packages a Nuxeo LTS 2025 node on S3 and OpenSearch 1.x needs (the audit package: a cluster may not
# keep its audit in memory), plus the Web UI every real install has
NUXEO_PACKAGES = ("amazon-s3-online-storage", "nuxeo-search-client-opensearch1", "nuxeo-audit-opensearch1",
                  "nuxeo-web-ui")
S3_BUCKET = "nuxeo-binaries"
S3_REGION = "us-east-1"

PATHS = {
    "nuxeo_home": f"/opt/nuxeo-server-{NUXEO_VERSION}-tomcat",
    "nuxeo_conf": "/etc/nuxeo/nuxeo.conf",
    "nuxeo_data_dir": "/var/lib/nuxeo/data",
    "nuxeo_log_dir": "/var/log/nuxeo",
    "nuxeo_tmp_dir": "/var/lib/nuxeo/tmp",
    "nuxeo_pid_dir": "/run/nuxeo",
    "nuxeo_clid": "/var/lib/nuxeo/data/instance.clid",
    "nuxeo_unit": "/etc/systemd/system/nuxeo.service",
    "haproxy_cfg": "/etc/haproxy/haproxy.cfg",
    "opensearch_home": f"/opt/opensearch-{SEARCH_VERSION}",  # /opt/opensearch links to it
    "opensearch_yml": f"/opt/opensearch-{SEARCH_VERSION}/config/opensearch.yml",
    "opensearch_heap": f"/opt/opensearch-{SEARCH_VERSION}/config/jvm.options.d/heap.options",
    "opensearch_data_dir": "/var/lib/opensearch",
    "opensearch_unit": "/etc/systemd/system/opensearch.service",
    "kafka_home": f"/opt/kafka_2.13-{KAFKA_VERSION}",  # /opt/kafka links to it
    "kafka_properties": f"/opt/kafka_2.13-{KAFKA_VERSION}/config/kraft/server.properties",
    "kafka_log_dirs": "/var/lib/kafka/kraft-combined-logs",
    "kafka_unit": "/etc/systemd/system/kafka.service",
    "seaweedfs_weed": "/opt/seaweedfs/weed",
    "seaweedfs_data_dir": "/srv/seaweedfs",
    "seaweedfs_s3_config": "/etc/seaweedfs/s3.json",
    "seaweedfs_unit": "/etc/systemd/system/seaweedfs.service",
    "postgresql_conf_d": f"/etc/postgresql/{PG_MAJOR}/main/conf.d/nuxeo.conf",
    "postgresql_hba": f"/etc/postgresql/{PG_MAJOR}/main/pg_hba.conf",
    "postgresql_data_dir": f"/var/lib/postgresql/{PG_MAJOR}/main",
    "postgresql_standby_conninfo": f"/var/lib/postgresql/{PG_MAJOR}/main/postgresql.auto.conf",
}

ROLES = {
    "loadbalancer": ["host1"],
    "search": ["host1", "host2", "host3"],
    "kafka": ["host1"],
    "s3": ["host1"],
    "database_primary": ["host2"],
    "database_standby": ["host3"],
    "nuxeo": ["host2", "host3"],
}

# The deliberate difference between the two Nuxeo nodes: host3's heap, and one key host2 does not set.
HEAP = {"host2": "-Xms1g -Xmx2g", "host3": "-Xms1g -Xmx1g"}
EXTRA_KEYS = {"host3": {"nuxeo.db.max-pool-size": "40"}}
NODE_IDS = {"host2": "nuxeo1", "host3": "nuxeo2"}


@dataclass
class Document:
    uid: str
    path: str
    title: str
    blob_md5: str  # what Nuxeo reports as the blob's digest, and the S3 object's key
    content: bytes


@dataclass
class HandBuilt:
    lab: Lab
    roles: dict[str, list[str]]
    url: str  # the load balancer's Nuxeo URL
    db_password: str  # nuxeo.conf nuxeo.db.password; PostgreSQL role `nuxeo`
    replication_password: str  # PostgreSQL role `replicator`; the standby's primary_conninfo
    s3_access_key: str  # nuxeo.conf nuxeo.aws.accessKeyId; /etc/seaweedfs/s3.json
    s3_secret_key: str  # nuxeo.conf nuxeo.aws.secretKey; /etc/seaweedfs/s3.json
    admin: tuple[str, str]  # the Nuxeo admin login (the product's default, never changed by hand)
    s3_endpoint: str
    s3_bucket: str
    s3_region: str
    paths: dict[str, str]
    nuxeo_conf: dict[str, dict[str, str]]  # host -> the keys written in its nuxeo.conf, in order
    differences: dict[str, dict[str, str | None]]  # nuxeo.conf key -> {host: value or None where not set}
    documents: list[Document] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def client(self) -> Any:
        from nuxeo.client import Nuxeo

        return Nuxeo(host=self.url + "/", auth=self.admin)

    def s3_client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.s3_endpoint, region_name=self.s3_region,
                            aws_access_key_id=self.s3_access_key, aws_secret_access_key=self.s3_secret_key)


def step_script(*names: str) -> str:
    return "\n".join((STEPS / n).read_text() for n in ("common.sh", *names))


def run_step(lab: Lab, host: str, env: dict[str, str], *scripts: str, timeout: float = 600) -> str:
    """One step's scripts on a host, under bash with the given environment; the step's output, or an error with it."""
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    command = "bash -c " + shlex.quote(exports + step_script(*scripts))
    proc = lab.ssh(host, command, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{host}: {' + '.join(scripts)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")
    return proc.stdout


def in_parallel(jobs: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Each job on its own thread; every job's error is raised together once all have ended."""
    results: dict[str, Any] = {}
    errors: list[str] = []

    def run(name: str, job: Callable[[], Any]) -> None:
        try:
            results[name] = job()
        except BaseException as exc:  # collected: the other hosts' steps still finish
            errors.append(f"{name}: {exc}")

    threads = [threading.Thread(target=run, args=(n, j)) for n, j in jobs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise AssertionError("\n".join(errors))
    return results


def nuxeo_conf(lab: Lab, host: str, built: dict[str, str]) -> dict[str, str]:
    """The keys of a node's nuxeo.conf, as an operator writes them from Nuxeo's configuration pages."""
    ip = {h: lab.ip(h) for h in ("host1", "host2", "host3")}
    conf = {
        "JAVA_OPTS": f"{HEAP[host]} -Dfile.encoding=UTF-8 -Dmail.mime.decodeparameters=true "
                     "-Djava.util.Arrays.useLegacyMergeSort=true",
        "nuxeo.templates": "postgresql,s3binaries,opensearch1-search-client,opensearch1-audit",
        "nuxeo.url": f"http://{ip['host1']}/nuxeo",
        "nuxeo.bind.address": ip[host],
        "nuxeo.server.http.port": "8080",
        "nuxeo.data.dir": PATHS["nuxeo_data_dir"],
        "nuxeo.log.dir": PATHS["nuxeo_log_dir"],
        "nuxeo.tmp.dir": PATHS["nuxeo_tmp_dir"],
        "nuxeo.pid.dir": PATHS["nuxeo_pid_dir"],
        "nuxeo.db.host": ip["host2"],
        "nuxeo.db.port": "5432",
        "nuxeo.db.name": "nuxeo",
        "nuxeo.db.user": "nuxeo",
        "nuxeo.db.password": built["db_password"],
        "nuxeo.s3storage.bucket": S3_BUCKET,
        "nuxeo.s3storage.endpoint": f"http://{ip['host1']}:8333",
        "nuxeo.s3storage.pathstyleaccess": "true",
        "nuxeo.aws.region": S3_REGION,
        "nuxeo.aws.accessKeyId": built["s3_access_key"],
        "nuxeo.aws.secretKey": built["s3_secret_key"],
        "nuxeo.opensearch1.client.server": ",".join(f"http://{ip[h]}:9200" for h in ROLES["search"]),
        "nuxeo.search.client.default.opensearch1.index.name": "nuxeo",
        "nuxeo.search.client.default.opensearch1.index.numberOfReplicas": "1",
        "kafka.enabled": "true",
        "kafka.bootstrap.servers": f"{ip['host1']}:9092",
        "nuxeo.stream.work.enabled": "true",
        "nuxeo.pubsub.provider": "stream",
        "nuxeo.cluster.enabled": "true",
        "nuxeo.cluster.nodeid": NODE_IDS[host],
        **EXTRA_KEYS.get(host, {}),
    }
    return conf


def conf_text(host: str, conf: dict[str, str]) -> str:
    lines = [f"## nuxeo.conf of {NODE_IDS[host]} ({host}), written by hand", ""]
    lines += [f"{k}={v}" for k, v in conf.items()]
    return "\n".join(lines)


def differences(confs: dict[str, dict[str, str]]) -> dict[str, dict[str, str | None]]:
    keys = {k for c in confs.values() for k in c}
    ignored = {"nuxeo.bind.address", "nuxeo.cluster.nodeid"}  # per node by nature, not a deliberate difference
    out: dict[str, dict[str, str | None]] = {}
    for k in sorted(keys - ignored):
        values = {h: c.get(k) for h, c in confs.items()}
        if len(set(values.values())) > 1:
            out[k] = values
    return out


def build_by_hand(lab: Lab, documents: int = 3, log: Callable[[str], None] = print) -> HandBuilt:
    """Build the cluster on a lab booted with `nxprovision lab up --name <n> --hosts 3` (fresh hosts)."""
    ip = {h: lab.ip(h) for h in ("host1", "host2", "host3")}
    mirror = str(lab.status["mirror_url"]).rstrip("/")
    built = {
        "db_password": secrets.token_urlsafe(18),
        "replication_password": secrets.token_urlsafe(18),
        # SeaweedFS takes any string; these look like AWS keys, as operators make them
        "s3_access_key": "AK" + secrets.token_hex(9).upper(),
        "s3_secret_key": secrets.token_urlsafe(30),
    }
    timings: dict[str, float] = {}
    started = time.monotonic()

    def timed(name: str, job: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            t0 = time.monotonic()
            try:
                return job()
            finally:
                timings[name] = round(time.monotonic() - t0, 1)
        return run

    search_env = {"MIRROR": mirror, "SEARCH_VERSION": SEARCH_VERSION,
                  "SEARCH_IPS": " ".join(ip[h] for h in ROLES["search"]), "SEARCH_NAMES": " ".join(ROLES["search"])}
    pg_env = {"PG_MAJOR": PG_MAJOR, "NUXEO_IPS": f"{ip['host2']} {ip['host3']}", "REPLICA_IP": ip["host3"]}
    nuxeo_env = {"MIRROR": mirror, "NUXEO_VERSION": NUXEO_VERSION, "NUXEO_PACKAGES": " ".join(NUXEO_PACKAGES)}

    def host1() -> None:
        env = {"MIRROR": mirror, "NODE_IP": ip["host1"]}
        run_step(lab, "host1", {**env, "NUXEO_IPS": f"{ip['host2']} {ip['host3']}"}, "haproxy.sh")
        run_step(lab, "host1", {**env, "SEAWEEDFS_VERSION": SEAWEEDFS_VERSION, "S3_BUCKET": S3_BUCKET,
                                "S3_ACCESS_KEY": built["s3_access_key"], "S3_SECRET_KEY": built["s3_secret_key"]},
                 "seaweedfs.sh")
        run_step(lab, "host1", {**env, "KAFKA_VERSION": KAFKA_VERSION}, "kafka.sh")
        run_step(lab, "host1", {**search_env, "NODE_NAME": "host1", "NODE_IP": ip["host1"]}, "opensearch.sh")

    def host2() -> None:
        run_step(lab, "host2", {**pg_env, "NODE_IP": ip["host2"], "DB_PASSWORD": built["db_password"],
                                "REPLICATION_PASSWORD": built["replication_password"]},
                 "pg_settings.sh", "postgresql_primary.sh")
        run_step(lab, "host2", nuxeo_env, "nuxeo_install.sh")
        run_step(lab, "host2", {**search_env, "NODE_NAME": "host2", "NODE_IP": ip["host2"]}, "opensearch.sh")

    def host3() -> None:
        run_step(lab, "host3", nuxeo_env, "nuxeo_install.sh")
        run_step(lab, "host3", {**search_env, "NODE_NAME": "host3", "NODE_IP": ip["host3"]}, "opensearch.sh")

    log("hand build: services on host1, database and Nuxeo install on host2, Nuxeo install on host3")
    in_parallel({"host1": timed("host1", host1), "host2": timed("host2", host2), "host3": timed("host3", host3)})

    # the standby needs the primary's replication role; Nuxeo needs every service it connects to
    log("hand build: the standby from a base backup of host2")
    timed("standby", lambda: run_step(
        lab, "host3", {**pg_env, "NODE_IP": ip["host3"], "PRIMARY_IP": ip["host2"],
                       "REPLICATION_PASSWORD": built["replication_password"]},
        "pg_settings.sh", "postgresql_standby.sh"))()

    confs = {h: nuxeo_conf(lab, h, built) for h in ROLES["nuxeo"]}
    # the first node creates the repository's tables; the second joins it
    for h in ROLES["nuxeo"]:
        log(f"hand build: nuxeo.conf and the start of {NODE_IDS[h]} on {h}")
        timed(f"nuxeo {h}", lambda h=h: run_step(
            lab, h, {"NUXEO_VERSION": NUXEO_VERSION, "NODE_IP": ip[h], "NUXEO_CONF_TEXT": conf_text(h, confs[h])},
            "nuxeo_configure.sh"))()

    url = f"http://{ip['host1']}/nuxeo"
    hb = HandBuilt(
        lab=lab, roles={k: list(v) for k, v in ROLES.items()}, url=url,
        db_password=built["db_password"], replication_password=built["replication_password"],
        s3_access_key=built["s3_access_key"], s3_secret_key=built["s3_secret_key"],
        admin=("Administrator", "Administrator"),
        s3_endpoint=f"http://{ip['host1']}:8333", s3_bucket=S3_BUCKET, s3_region=S3_REGION,
        paths=dict(PATHS), nuxeo_conf=confs, differences=differences(confs), timings=timings,
    )
    wait_for(lambda: lb_backends_up(lab) == {"nuxeo1", "nuxeo2"}, 90, "HAProxy to see both Nuxeo nodes UP", 2)
    hb.documents = create_documents(hb, documents)
    timings["total"] = round(time.monotonic() - started, 1)
    log(f"hand build: done in {timings['total']} s ({timings})")
    return hb


def lb_backends_up(lab: Lab) -> set[str]:
    """The Nuxeo servers HAProxy's health check reports UP (its stats socket, on host1)."""
    # socat is not installed: Python's socket module speaks to the stats socket
    query = ("import socket; s = socket.socket(socket.AF_UNIX); s.connect('/run/haproxy/admin.sock'); "
             "s.sendall(b'show stat\\n'); print(b''.join(iter(lambda: s.recv(65536), b'')).decode())")
    out = lab.ssh("host1", "python3 -c " + shlex.quote(query)).stdout
    up = set()
    for line in out.splitlines():
        f = line.split(",")
        if len(f) > 17 and f[0] == "nuxeo" and f[1] not in ("FRONTEND", "BACKEND") and f[17].startswith("UP"):
            up.add(f[1])
    return up


def create_documents(hb: HandBuilt, count: int) -> list[Document]:
    """Documents with a text blob each, created through the load balancer with the Nuxeo client."""
    nx = hb.client()
    docs = []
    stamp = secrets.token_hex(4)
    for i in range(count):
        title = f"handbuilt {stamp} {i}"
        doc, content = create_document_with_blob(nx, title, f"hand-built cluster, document {i} ({stamp})\n" * (i + 1))
        blob = doc.properties["file:content"]
        assert blob["digest"] == md5_hex(content), (blob, md5_hex(content))
        docs.append(Document(uid=doc.uid, path=doc.path, title=title, blob_md5=md5_hex(content), content=content))
    return docs


def blob_of(nx: Any, doc: Document) -> bytes:
    """The blob of a document, downloaded through the load balancer."""
    return bytes(nx.documents.get(uid=doc.uid).fetch_blob())
