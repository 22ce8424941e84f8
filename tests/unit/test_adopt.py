"""`nxprovision adopt`'s mapping (issue 18): from what hand-built hosts run to the inventory and the report. The
hosts' reads are written as nx_adopt_read returns them; the lab test (tests/integration/test_adopt.py) reads real
hand-built hosts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nxprovision.adoption import report
from nxprovision.adoption.found import load_found, parse_haproxy, pg_settings, properties
from nxprovision.adoption.mapping import adopt
from nxprovision.inventory import InventoryView
from nxprovision.model.cluster import build_cluster
from nxprovision.rules import run_rules

IPS = {"host1": "10.9.0.11", "host2": "10.9.0.12", "host3": "10.9.0.13"}
DB_PASSWORD = "db-Pa55-word-from-nuxeo-conf"
REPL_PASSWORD = "repl-Pa55-from-conninfo"
S3_ACCESS, S3_SECRET = "HANDACCESSKEY01", "hand-secret-key-0123456789"

HAPROXY = f"""global
    log /dev/log local0
defaults
    mode http
    timeout connect 5s
frontend www
    bind {IPS['host1']}:80
    default_backend nuxeo
backend nuxeo
    cookie SRV insert indirect nocache
    option httpchk GET /nuxeo/runningstatus
    server nx1 {IPS['host2']}:8080 cookie nx1 check
    server nx2 {IPS['host3']}:8080 cookie nx2 check
"""


def nuxeo_conf(host: str, heap: str, extra: str = "") -> str:
    return f"""JAVA_OPTS=-Xms512m -Xmx{heap} -XX:+UseG1GC
nuxeo.templates=default,postgresql,s3binaries
nuxeo.url=http://{IPS['host1']}/nuxeo
nuxeo.bind.address=0.0.0.0
nuxeo.db.host={IPS['host2']}
nuxeo.db.port=5432
nuxeo.db.name=nuxeodb
nuxeo.db.user=nuxeoapp
nuxeo.db.password={DB_PASSWORD}
nuxeo.s3storage.bucket=handbucket
nuxeo.s3storage.endpoint=http://{IPS['host1']}:8333
nuxeo.aws.region=eu-west-1
nuxeo.aws.accessKeyId={S3_ACCESS}
nuxeo.aws.secretKey={S3_SECRET}
elasticsearch.addressList=http://{IPS['host1']}:9200
kafka.enabled=true
kafka.bootstrap.servers={IPS['host1']}:9092
nuxeo.cluster.enabled=true
nuxeo.cluster.nodeid={host}-hand
mail.transport.host=smtp.internal
{extra}"""


def service(component: str, argv: list[str], env: dict[str, str] | None = None, name: str = "") -> dict[str, Any]:
    return {"component": component, "argv": argv, "environment": env or {}, "user": "", "unit_file": "",
            "active": "active", "enabled": "enabled", "unit_text": "", "working_dir": ""}


def host_read(host: str) -> dict[str, Any]:
    components: dict[str, Any] = {
        "opensearch": {"home": "/opt/opensearch-1.3.20", "conf_path": "/opt/opensearch-1.3.20/config/opensearch.yml",
                       "conf_text": "cluster.name: hand-search\npath.data: /srv/search\n", "version": "1.3.20",
                       "service": "opensearch-hand"},
    }
    services = {"opensearch-hand": service("opensearch", ["/opt/opensearch-1.3.20/bin/opensearch"])}
    if host == "host1":
        components["haproxy"] = {"conf_path": "/etc/haproxy/haproxy.cfg", "conf_text": HAPROXY, "service": "haproxy"}
        components["kafka"] = {"home": "/opt/kafka_2.13-3.6.2", "conf_path": "/etc/kafka-hand/server.properties",
                               "conf_text": "process.roles=broker,controller\nlog.dirs=/srv/kafka\n",
                               "version": "3.6.2", "service": "kafka"}
        components["seaweedfs"] = {"argv": ["/usr/local/bin/weed", "server", "-dir=/srv/seaweedfs", "-s3",
                                            "-volume.port=8081", "-master.volumeSizeLimitMB", "512"],
                                   "flags": {"dir": "/srv/seaweedfs", "s3": "true", "volume.port": "8081",
                                             "master.volumeSizeLimitMB": "512"},
                                   "s3_config_path": "/etc/weed/s3.json",
                                   "s3_config_text": json.dumps({"identities": [
                                       {"name": "nuxeo", "credentials": [{"accessKey": S3_ACCESS,
                                                                          "secretKey": S3_SECRET}],
                                        "actions": ["Admin", "Read", "Write"]}]}),
                                   "service": "weed"}
        services.update({"haproxy": service("haproxy", ["/usr/sbin/haproxy", "-Ws", "-f", "/etc/haproxy/haproxy.cfg"]),
                         "kafka": service("kafka", ["/opt/kafka_2.13-3.6.2/bin/kafka-server-start.sh"]),
                         "weed": service("seaweedfs", ["/usr/local/bin/weed", "server"])})
    else:
        heap, extra = ("2g", "") if host == "host2" else \
            ("1g", "nuxeo.vcs.fulltext.search.enabled=false\nnuxeo.db.max-pool-size=40\nnuxeo.data.dir=nxserver/data\n")
        components["nuxeo"] = {"home": "/opt/nuxeo-server-2025.9-tomcat", "conf_path": "/etc/nuxeo/nuxeo.conf",
                               "conf_text": nuxeo_conf(host, heap, extra), "version": "2025.9",
                               "packages": ["amazon-s3-online-storage-2025.9", "nuxeo-web-ui-2025.9"],
                               "service": "nuxeo"}
        services["nuxeo"] = service("nuxeo", ["/opt/nuxeo-server-2025.9-tomcat/bin/nuxeoctl", "console"],
                                    {"NUXEO_CONF": "/etc/nuxeo/nuxeo.conf"})
        standby = host == "host3"
        auto = (f"primary_conninfo = 'user=replicator password={REPL_PASSWORD} host={IPS['host2']} port=5432'\n"
                if standby else "")
        components["postgresql"] = {"clusters": [{
            "version": "17", "name": "main", "port": 5432, "status": "online,recovery" if standby else "online",
            "owner": "postgres", "data_dir": "/var/lib/postgresql/17/main",
            "conf_text": "port = 5432\nmax_connections = 100\nlisten_addresses = '*'\n",
            "conf_d_text": "work_mem = 8MB\nlog_min_duration_statement = 500\n",
            "hba_text": "", "auto_conf_text": auto, "standby": standby}]}
        services["postgresql@17-main"] = service("postgresql", ["/usr/lib/postgresql/17/bin/postgres"])
    paths = {"/opt/seaweedfs": "dir", "/opt/kafka": "link"} if host == "host1" else {"/opt/nuxeo": "absent"}
    return {"os": {"id": "debian", "version_codename": "trixie", "arch": "x86_64"}, "services": services,
            "listening": [], "packages": {}, "components": components, "paths": paths}


@pytest.fixture()
def found(tmp_path: Path):
    for h in IPS:
        (tmp_path / f"{h}.json").write_text(json.dumps(host_read(h)))
    return load_found(tmp_path)


def given() -> InventoryView:
    hv = {h: {"ansible_host": ip, "ansible_user": "root", "nuxeo_download_base_url": "http://mirror.lab/nuxeo"}
          for h, ip in IPS.items()}
    return InventoryView(source="given", groups={"all": list(IPS), "lab": list(IPS)}, hostvars=hv)


def test_parsers() -> None:
    h = parse_haproxy(HAPROXY)
    assert [(s.address, s.port) for s in h.servers] == [(IPS["host2"], 8080), (IPS["host3"], 8080)]
    assert h.binds == [(IPS["host1"], 80, False)] and h.cookie == "SRV"
    assert pg_settings("listen_addresses = '*'  # all\n#port = 1\nwork_mem = 8MB\n") == {"listen_addresses": "*",
                                                                                          "work_mem": "8MB"}
    assert properties("a=b=c\n# x=y\n")["a"] == "b=c"


def test_adopt_maps_groups_settings_secrets_and_differences(found) -> None:
    a, cluster = adopt(found, given(), {"ansible_user": "root"})
    assert a.problems == []
    assert a.architecture == "compact" and a.database == "postgresql"
    assert a.layout["loadbalancers"] == ["host1"]
    assert a.layout["nuxeo_front"] == ["host2", "host3"] and a.layout["nuxeo_worker"] == []
    assert a.layout["postgresql"] == ["host2", "host3"]  # the primary first
    assert a.layout["opensearch"] == ["host1", "host2", "host3"] and a.layout["kafka"] == ["host1"]
    g = a.group_vars
    assert g["nx_public_url"] == f"http://{IPS['host1']}/nuxeo" and g["nx_tls_enabled"] is False
    assert g["nuxeo_version"] == "2025.9" and g["nx_os_release"] == "debian13"
    assert g["nuxeo_packages"] == ["amazon-s3-online-storage", "nuxeo-web-ui"]
    assert (g["nuxeo_db_name"], g["nuxeo_db_user"]) == ("nuxeodb", "nuxeoapp")
    assert (g["s3_mode"], g["s3_bucket"], g["s3_region"]) == ("seaweedfs", "handbucket", "eu-west-1")
    assert (g["seaweedfs_volume_port"], g["seaweedfs_volume_size_limit_mb"]) == (8081, 512)
    assert "seaweedfs_master_port" not in g  # not on its command line: the role's default, SeaweedFS's too
    assert g["seaweedfs_data_dir"] == "/srv/seaweedfs" and g["opensearch_data_dir"] == "/srv/search"
    assert g["kafka_mode"] == "kraft" and g["kafka_data_dir"] == "/srv/kafka" and g["kafka_version"] == "3.6.2"
    assert g["postgresql_version"] == "17" and g["postgresql_replication_user"] == "replicator"
    assert g["postgresql_extra_settings"] == {"log_min_duration_statement": "500"}  # work_mem is the role's
    # what the cluster's creation wrote is no hand's setting: not reported; what a hand set is, with the role's say
    pg_notes = {i.what for i in a.unmapped if i.where == "host host2" and "postgresql.conf" in i.what}
    assert pg_notes == {"postgresql.conf listen_addresses = *", "postgresql.conf work_mem = 8MB"}
    # the secrets under the model's names, from the files that hold them
    assert a.secrets == {"nx_secret_db_password": DB_PASSWORD, "nx_secret_db_replication_password": REPL_PASSWORD,
                         "nx_secret_s3_access_key": S3_ACCESS, "nx_secret_s3_secret_key": S3_SECRET}
    # the deliberate differences: heap and one key only host3 has, kept per node
    assert g["nuxeo_heap_mb"] in (1024, 2048)
    heaps = {h: a.host_vars.get(h, {}).get("nuxeo_heap_mb", g["nuxeo_heap_mb"]) for h in ("host2", "host3")}
    assert heaps == {"host2": 2048, "host3": 1024}
    assert a.host_vars["host3"]["nuxeo_conf_extra"] == {"mail.transport.host": "smtp.internal",
                                                        "nuxeo.vcs.fulltext.search.enabled": "false"}
    assert a.host_vars["host2"]["nuxeo_conf_extra"] == {"mail.transport.host": "smtp.internal"}
    assert any("nuxeo.vcs.fulltext.search.enabled" in d.what for d in a.differences)
    assert a.host_vars["host2"]["nuxeo_cluster_nodeid"] == "host2-hand"
    # a key the model writes from a role variable, set on one node only: that node keeps it, the other the default
    assert a.host_vars["host3"]["nuxeo_db_max_pool_size"] == 40
    assert "nuxeo_db_max_pool_size" not in a.host_vars["host2"] and "nuxeo_db_max_pool_size" not in g
    assert "nuxeo_data_dir" not in g  # relative: under the distribution, which the role does not reuse
    # a folder of the hand build where the role puts its link: the role links elsewhere
    assert a.host_vars["host1"]["seaweedfs_install_root"] == "/opt/nxprovision"
    assert "kafka_home" not in a.host_vars["host1"] and "nuxeo_home" not in a.host_vars["host2"]
    # services under other names than the roles' are retired by the first deploy
    assert a.host_vars["host1"]["common_retire_services"] == ["opensearch-hand", "weed"]
    # the model writes the adopted values
    conf = {i.key: i.value for i in cluster.node("host3").conf}
    assert conf["nuxeo.vcs.fulltext.search.enabled"] == "false" and conf["nuxeo.db.name"] == "nuxeodb"
    assert "-Xmx1024m" in conf["JAVA_OPTS"] or "1024" in conf["JAVA_OPTS"]


def test_report_names_secrets_only_and_each_hosts_changes(found) -> None:
    a, cluster = adopt(found, given(), {})
    data = report.as_dict(a, run_rules(cluster))
    text = json.dumps(data) + report.markdown(a, run_rules(cluster), Path("inv"))
    for secret in (DB_PASSWORD, REPL_PASSWORD, S3_ACCESS, S3_SECRET):
        assert secret not in text
    assert "nx_secret_db_password" in data["secrets"]
    assert set(data["changes"]["host1"]) >= {"common", "haproxy", "kafka", "seaweedfs", "opensearch"}
    assert "nuxeo" not in data["changes"]["host1"] and "haproxy" not in data["changes"]["host2"]
    assert any("nuxeo.bind.address: 0.0.0.0 ->" in w for w in data["changes"]["host2"]["nuxeo"])


def test_no_nuxeo_is_a_blocking_problem(tmp_path: Path) -> None:
    read = host_read("host1")
    (tmp_path / "host1.json").write_text(json.dumps(read))
    a, _ = adopt(load_found(tmp_path), InventoryView("g", {"all": ["host1"]}, {"host1": {}}), {})
    assert any(p.where == "cluster" for p in a.problems)


def test_adopted_settings_validate_but_for_the_secrets_written_later(found) -> None:
    _a, cluster = adopt(found, given(), {})
    errors = [f.line() for f in run_rules(cluster) if f.severity == "error" and not f.rule.startswith("secrets")]
    assert errors == [], errors
    assert build_cluster(cluster.view).architecture == "compact"


def test_written_inventory_validates_keeps_secrets_in_the_vault_only(found, tmp_path: Path) -> None:
    from nxprovision.adoption.command import write_adoption
    from nxprovision.inventory import load_inventory
    from nxprovision.secrets import SECRETS_RELPATH, load_secrets_file, read_vault_password

    out = tmp_path / "adopted"
    _a, findings, _written = write_adoption(out, given(), found)
    assert [f.line() for f in findings if f.severity == "error"] == []
    vault = load_secrets_file(out / SECRETS_RELPATH, read_vault_password(out / ".vault-pass"))
    assert vault["nx_secret_db_password"] == DB_PASSWORD and vault["nx_secret_s3_secret_key"] == S3_SECRET
    assert vault["nx_secret_nuxeo_jwt_secret"]  # generated
    for f in out.rglob("*"):
        if f.is_file() and f.name not in (".vault-pass", "secrets.yml") and f.parent.name != ".pki":
            text = f.read_text()
            for secret in (DB_PASSWORD, REPL_PASSWORD, S3_SECRET, S3_ACCESS):
                assert secret not in text, (f, secret)
    view = load_inventory(out)
    assert view.hostvars["host3"]["nuxeo_heap_mb"] == 1024 and view.hostvars["host2"]["nuxeo_heap_mb"] == 2048
    assert view.hostvars["host2"]["nuxeo_download_base_url"] == "http://mirror.lab/nuxeo"  # kept from the given one
    assert view.hostvars["host1"]["ansible_host"] == IPS["host1"]
    assert sorted(view.groups["nuxeo_front"]) == ["host2", "host3"]
    assert json.loads((out / "adopt-report.json").read_text())["architecture"] == "compact"


def test_output_folder_must_be_new(tmp_path: Path) -> None:
    from nxprovision.adoption.command import _check_output
    from nxprovision.errors import NxError

    (tmp_path / "x").write_text("")
    with pytest.raises(NxError, match="not an empty folder"):
        _check_output(tmp_path)
    _check_output(tmp_path / "new")


def _reader():
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "plugins" / "modules" / "nx_adopt_read.py"
    spec = importlib.util.spec_from_file_location("nx_adopt_read", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_host_reader_parses_what_systemctl_shows(tmp_path: Path) -> None:
    r = _reader()
    shown = ("{ path=/opt/kafka/bin/kafka-server-start.sh ; argv[]=/opt/kafka/bin/kafka-server-start.sh "
             "/opt/kafka/config/kraft/server.properties ; ignore_errors=no ; start_time=[n/a] ; pid=0 }")
    assert r.exec_argv(shown) == ["/opt/kafka/bin/kafka-server-start.sh", "/opt/kafka/config/kraft/server.properties"]
    envfile = tmp_path / "nuxeo.env"
    envfile.write_text("# comment\nJAVA_HOME=/usr/lib/jvm/java-21\nNUXEO_CONF='/etc/other.conf'\n")
    env = r.environment({"Environment": '"KAFKA_HEAP_OPTS=-Xms512m -Xmx512m" NUXEO_CONF=/etc/nuxeo/nuxeo.conf',
                         "EnvironmentFiles": f"{envfile} (ignore_errors=yes)"})
    assert env == {"KAFKA_HEAP_OPTS": "-Xms512m -Xmx512m", "NUXEO_CONF": "/etc/other.conf",
                   "JAVA_HOME": "/usr/lib/jvm/java-21"}  # as systemd: the EnvironmentFile's value wins
    argv = ["/opt/seaweedfs/weed", "server", "-dir=/srv/seaweedfs", "-s3", "-s3.config", "/etc/seaweedfs/s3.json"]
    assert r.option(argv, "-dir") == "/srv/seaweedfs" and r.option(argv, "-s3.config") == "/etc/seaweedfs/s3.json"
    assert r.option(argv, "-master.port") is None
    assert r.go_flags(argv[1:]) == {"dir": "/srv/seaweedfs", "s3": "true", "s3.config": "/etc/seaweedfs/s3.json"}
    assert r.expand("-f $CONFIG", {"CONFIG": "/etc/haproxy/haproxy.cfg"}) == "-f /etc/haproxy/haproxy.cfg"
    assert r.expand("${A}/x $UNSET", {"A": "/a"}) == "/a/x $UNSET"
    # the version of a distribution, from its defaults or its folder's name; started packages only
    home = tmp_path / "nuxeo-server-2025.9-tomcat"
    (home / "bin").mkdir(parents=True)
    (home / "templates").mkdir()
    (home / "packages").mkdir()
    (home / "templates" / "nuxeo.defaults").write_text("org.nuxeo.ecm.product.version=2025.9\n")
    (home / "packages" / ".packages").write_text("nuxeo-web-ui-2025.9=started\nold-1.0=downloaded\n")
    conf = tmp_path / "nuxeo.conf"
    conf.write_text("nuxeo.url=http://lb/nuxeo\n")
    found = r.nuxeo({"argv": [str(home / "bin" / "nuxeoctl"), "startbg"], "environment": {"NUXEO_CONF": str(conf)},
                     "user": "nuxeo"})
    assert (found["version"], found["packages"], found["conf_path"]) == ("2025.9", ["nuxeo-web-ui-2025.9"], str(conf))


MONGO_PASSWORD = "m0ngo-pa55/with:odd@chars"


def mongo_read(host: str) -> dict[str, Any]:
    """A hand-built compact cluster on MongoDB: host1 the load balancer, host2/host3 Nuxeo, mongo1..3 a replica
    set (search, Kafka and S3 left out: not what this test is about)."""
    from urllib.parse import quote

    if host.startswith("mongo"):
        conf = ("storage:\n  dbPath: /srv/mongo\nnet:\n  port: 27018\n  bindIp: 0.0.0.0\n"
                "replication:\n  replSetName: nxrs\n")
        binary = "/opt/mongodb-linux-x86_64-debian12-7.0.14/bin/mongod"
        return {"os": {"version_codename": "bookworm", "arch": "x86_64"},
                "services": {"mongod": service("mongodb", [binary, "--config", "/etc/mongod.conf"])},
                "listening": [], "packages": {}, "paths": {},
                "components": {"mongodb": {"conf_path": "/etc/mongod.conf", "conf_text": conf, "binary": binary,
                                           "version": "7.0.14", "service": "mongod"}}}
    read = host_read(host)
    read["os"]["version_codename"] = "bookworm"
    read["components"].pop("postgresql", None)
    read["services"].pop("postgresql@17-main", None)
    if "nuxeo" in read["components"]:
        uri = f"mongodb://nuxeoapp:{quote(MONGO_PASSWORD, safe='')}@mongo1:27018,mongo2:27018/nuxeodb?replicaSet=nxrs"
        text = "\n".join(line for line in read["components"]["nuxeo"]["conf_text"].splitlines()
                         if not line.startswith(("nuxeo.db.", "nuxeo.templates")))
        read["components"]["nuxeo"]["conf_text"] = (text + "\nnuxeo.templates=default,mongodb,s3binaries\n"
                                                    f"nuxeo.mongodb.server={uri}\nnuxeo.mongodb.dbname=nuxeodb\n")
    return read


def test_adopt_a_mongodb_cluster(tmp_path: Path) -> None:
    hosts = ["host1", "host2", "host3", "mongo1", "mongo2", "mongo3"]
    for h in hosts:
        (tmp_path / f"{h}.json").write_text(json.dumps(mongo_read(h)))
    given_view = InventoryView("g", {"all": hosts}, {h: {"ansible_host": h} for h in hosts})
    a, cluster = adopt(load_found(tmp_path), given_view, {})
    assert a.database == "mongodb" and a.layout["mongodb"] == ["mongo1", "mongo2", "mongo3"]
    g = a.group_vars
    assert (g["mongodb_version"], g["mongodb_replica_set"], g["mongodb_port"], g["mongodb_data_dir"]) == \
        ("7.0.14", "nxrs", 27018, "/srv/mongo")
    assert (g["nuxeo_db_user"], g["nuxeo_db_name"], g["nx_os_release"]) == ("nuxeoapp", "nuxeodb", "debian12")
    # the password inside the connection URI, under the model's name for it
    assert a.secrets["nx_secret_db_password"] == MONGO_PASSWORD
    assert any("authorization" in i.what for i in a.unmapped)
    conf = {i.key: i.value for i in cluster.node("host2").conf}
    assert "replicaSet=nxrs" in conf["nuxeo.mongodb.server"] and conf["nuxeo.mongodb.dbname"] == "nuxeodb"
    assert MONGO_PASSWORD not in json.dumps(report.as_dict(a, []))


def _adopted_with_nuxeo_url(tmp_path: Path, url: str) -> Any:
    """The hand-built cluster's reads with `url` as the Nuxeo nodes' nuxeo.url, adopted."""
    for h in IPS:
        read = host_read(h)
        if "nuxeo" in read["components"]:
            conf = read["components"]["nuxeo"]["conf_text"]
            read["components"]["nuxeo"]["conf_text"] = conf.replace(f"nuxeo.url=http://{IPS['host1']}/nuxeo",
                                                                    f"nuxeo.url={url}")
        (tmp_path / f"{h}.json").write_text(json.dumps(read))
    return adopt(load_found(tmp_path), given(), {})[0]


def test_the_public_url_is_nuxeos_own_unless_it_names_a_node(tmp_path: Path) -> None:
    a = _adopted_with_nuxeo_url(tmp_path, "https://ecm.example.org/nuxeo")
    assert a.group_vars["nx_public_url"] == "https://ecm.example.org/nuxeo" and a.group_vars["nx_tls_enabled"]
    assert any("HTTPS served here" in i.what for i in a.changes["host1"] if i.where == "haproxy")
    # a node's own address in nuxeo.url (a common hand-built default): the load balancer's address instead
    a = _adopted_with_nuxeo_url(tmp_path, "http://localhost:8080/nuxeo")
    assert a.group_vars["nx_public_url"] == f"http://{IPS['host1']}/nuxeo"
