"""Builds the Nuxeo stand-in distribution tree (what `nuxeo-server-<version>-tomcat.zip` unzips to)
and offline marketplace package zips, with the file names and layout the production role expects."""

from __future__ import annotations

import shutil
import stat
import zipfile
from pathlib import Path

RUNTIME_SRC = Path(__file__).resolve().parent / "runtime"
RUNTIME_PACKAGE = "nuxeo_standin"  # import name of the runtime inside lib/standin

# What the runtime imports on the lab hosts; the mirror builder runs
# `pip install --target <root>/lib/python` with these (all ship cp311 manylinux wheels or are pure).
PYTHON_DEPS: list[str] = [
    "psycopg[binary]>=3.1,<4",
    "pymongo>=4,<5",
    "kafka-python>=2.0.2",
]

MARKER = """This is NOT a Nuxeo distribution.

It is the nxprovision lab stand-in for the Nuxeo server {version}: a Python program (no Java, no
Nuxeo code) laid out like nuxeo-server-{version}-tomcat so that the production Ansible role installs,
configures, registers, starts and health-checks it through its real code path. It stores documents in
the configured PostgreSQL or MongoDB, blobs in the configured S3 bucket, indexes in the configured
OpenSearch/Elasticsearch and produces/consumes work on the configured Kafka. With metrics.enabled and
metrics.prometheus.enabled it serves Nuxeo's Prometheus reporter on metrics.prometheus.port, with Nuxeo's
names for the few metrics it implements (documents created/updated/deleted, requests, the one work queue,
the work stream's lag; see nuxeo_standin/metrics.py) and none of the others.

Anything reporting on a cluster built from this archive must say that the Nuxeo nodes are stand-ins.
"""

NUXEOCTL = '''#!/usr/bin/env python3
"""nuxeoctl of the nxprovision Nuxeo stand-in (see ../STANDIN)."""
import os
import sys

home = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
# our runtime first, then the vendored dependencies the mirror builder installed
sys.path[:0] = [os.path.join(home, "lib", "standin"), os.path.join(home, "lib", "python")]

from {package}.ctl import main  # noqa: E402

sys.exit(main(sys.argv[1:], home=home))
'''

SHIPPED_NUXEO_CONF = """##=============================================================================
## Nuxeo configuration file (nxprovision stand-in distribution: see $NUXEO_HOME/STANDIN)
##=============================================================================
## See https://doc.nuxeo.com/nxdoc/configuration-parameters-index-nuxeoconf/

##-----------------------------------------------------------------------------
## Java
##-----------------------------------------------------------------------------
JAVA_OPTS=-XX:InitialRAMPercentage=3 -XX:MaxRAMPercentage=25
JAVA_OPTS=$JAVA_OPTS -Dfile.encoding=UTF-8 -Dmail.mime.decodeparameters=true
JAVA_OPTS=$JAVA_OPTS -Dnet.sf.ehcache.skipUpdateCheck=true
JAVA_OPTS=$JAVA_OPTS -Djava.util.Arrays.useLegacyMergeSort=true
#JAVA_OPTS=$JAVA_OPTS -Xlog:gc*:file=${nuxeo.log.dir}/gc.log
JAVA_OPTS=$JAVA_OPTS -Dsun.net.http.retryPost=false

##-----------------------------------------------------------------------------
## Nuxeo launcher
##-----------------------------------------------------------------------------
#launcher.start.max.wait=300
#launcher.stop.max.wait=60
#launcher.override.java.tmpdir=true

##-----------------------------------------------------------------------------
## Nuxeo filesystem paths
##-----------------------------------------------------------------------------
#nuxeo.log.dir=/var/log/nuxeo
#nuxeo.pid.dir=/var/run
#nuxeo.data.dir=/var/lib/nuxeo
#nuxeo.tmp.dir=/tmp

##-----------------------------------------------------------------------------
## General parameters
##-----------------------------------------------------------------------------
nuxeo.force.generation=true
#nuxeo.templates=default
#nuxeo.bind.address=0.0.0.0
#nuxeo.url=http://localhost:8080/nuxeo
#org.nuxeo.ecm.contextPath=/nuxeo

##-----------------------------------------------------------------------------
## Database configuration
##-----------------------------------------------------------------------------
#nuxeo.db.name=
#nuxeo.db.user=
#nuxeo.db.password=
#nuxeo.db.host=
#nuxeo.db.port=
#nuxeo.db.min-pool-size=
#nuxeo.db.max-pool-size=
#nuxeo.vcs.max-pool-size=
#nuxeo.db.transactiontimeout=300

##-----------------------------------------------------------------------------
## Elasticsearch configuration
##-----------------------------------------------------------------------------
#elasticsearch.enabled=false
elasticsearch.client=RestClient
#elasticsearch.addressList=http://localhost:9200
#elasticsearch.indexName=nuxeo
#elasticsearch.indexNumberOfReplicas=0
#elasticsearch.indexNumberOfShards=1
elasticsearch.httpEnabled=true
audit.elasticsearch.enabled=true
#audit.elasticsearch.indexName=${elasticsearch.indexName}-audit
#seqgen.elasticsearch.indexName=${elasticsearch.indexName}-uidgen

##-----------------------------------------------------------------------------
## Clustering settings
##-----------------------------------------------------------------------------
#nuxeo.cluster.enabled=false
#nuxeo.cluster.nodeid=

##-----------------------------------------------------------------------------
## Stand-in only (ignored by a real Nuxeo)
##-----------------------------------------------------------------------------
#nuxeo.standin.startup.delay=8
org.nuxeo.runtime.reload_strategy=standby
"""

GLOBAL_DEFAULTS = """## DO NOT EDIT THIS FILE, USE nuxeo.conf  ##
# Default configuration values for templates
nuxeo.data.dir=nxserver/data
nuxeo.server.dir=nxserver
nuxeo.log.dir=log
nuxeo.pid.dir=log
nuxeo.tmp.dir=tmp
nuxeo.mp.dir=packages
nuxeo.templates=default
nuxeo.bind.address=0.0.0.0
nuxeo.url=http://localhost:8080/nuxeo
org.nuxeo.ecm.contextPath=/nuxeo
org.nuxeo.ecm.product.name=Nuxeo Platform
org.nuxeo.ecm.product.version={version}
nuxeo.pubsub.provider=stream
nuxeo.keyvalue.provider=
nuxeo.lock.manager=
nuxeo.transientstore.provider=
nuxeo.mongodb.server=
nuxeo.cluster.enabled=
nuxeo.cluster.nodeid=
nuxeo.binarystores.root=${{nuxeo.data.dir}}
repository.binary.store=${{nuxeo.binarystores.root}}/binaries
nuxeo.transientstores.root=${{nuxeo.binarystores.root}}
session.timeout=60
launcher.start.max.wait=300
launcher.stop.max.wait=60
server.status.key=
# stand-in only: how long the runtime pretends to deploy
nuxeo.standin.startup.delay=8
"""

TEMPLATE_DEFAULTS: dict[str, str] = {
    "common-base": """## DO NOT EDIT THIS FILE, USE nuxeo.conf  ##
common-base.target=.
nuxeo.server.http.port=8080
nuxeo.server.http.maxThreads=20
nuxeo.server.http.acceptCount=1000
nuxeo.server.http.connectionUploadTimeout=60000
nuxeo.server.ajp.enabled=false
nuxeo.server.ajp.port=8009
nuxeo.server.https.port=0
nuxeo.server.tomcat_admin.host=localhost
nuxeo.server.tomcat_admin.port=8005
nuxeo.server.jvmRoute=nuxeo
nuxeo.db.min-pool-size=5
nuxeo.db.max-pool-size=100
nuxeo.db.transactiontimeout=300
nuxeo.vcs.min-pool-size=0
nuxeo.vcs.max-pool-size=20
nuxeo.core.binarymanager=org.nuxeo.ecm.core.blob.LocalBlobProvider
nuxeo.quartz.enable=false
nuxeo.work.queue.common.enabled=true
nuxeo.work.queue.common.threads=4
nuxeo.work.queue.renditionBuilder.threads=2
elasticsearch.enabled=true
elasticsearch.indexName=nuxeo
elasticsearch.addressList=
elasticsearch.indexNumberOfReplicas=1
elasticsearch.indexNumberOfShards=5
elasticsearch.index.translog.durability=request
elasticsearch.restClient.connectionTimeoutMs=30000
elasticsearch.restClient.socketTimeoutMs=121000
elasticsearch.restClient.username=
elasticsearch.restClient.password=
elasticsearch.manageAlias.enabled=false
audit.elasticsearch.enabled=false
audit.elasticsearch.indexName=${elasticsearch.indexName}-audit
seqgen.elasticsearch.indexName=${elasticsearch.indexName}-uidgen
nuxeo.healthcheck.refresh.interval.seconds=20
kafka.enabled=false
kafka.bootstrap.servers=localhost:9092
kafka.default.replication.factor=-1
kafka.topicPrefix=nuxeo-
kafka.max.poll.interval.ms=7200000
kafka.max.poll.records=2
kafka.default.api.timeout.ms=60000
kafka.delivery.timeout.ms=120000
kafka.request.timeout.ms=30000
kafka.session.timeout.ms=50000
kafka.heartbeat.interval.ms=4000
kafka.acks=1
kafka.sasl.enabled=false
kafka.ssl=false
nuxeo.stream.work.enabled=${kafka.enabled}
nuxeo.stream.work.over.provisioning.factor=3
nuxeo.stream.health.check.enabled=true
nuxeo.stream.health.check.delay=36h
nuxeo.jwt.secret=
metrics.enabled=false
metrics.prometheus.enabled=false
metrics.prometheus.port=9090
""",
    "common": """## DO NOT EDIT THIS FILE, USE nuxeo.conf  ##
nuxeo.template.includes=common-base
org.nuxeo.ecm.instance.description=Nuxeo
nuxeo.directory.type=default
nuxeo.user.group.storage=default
nuxeo.transientstore.ttl=4320
nuxeo.transientstore.ttl2=10
""",
    "default": """## DO NOT EDIT THIS FILE, USE nuxeo.conf  ##
nuxeo.template.includes=common
default.target=.
nuxeo.db.type=default
nuxeo.db.name=nuxeo
nuxeo.db.user=sa
nuxeo.db.password=
nuxeo.db.jdbc.url=jdbc:h2:$${nuxeo.data.dir}/h2/${nuxeo.db.name};DB_CLOSE_ON_EXIT=false;MODE=LEGACY
nuxeo.db.driver=org.h2.Driver
""",
    "postgresql": """## DO NOT EDIT THIS FILE, USE nuxeo.conf  ##
nuxeo.template.includes=common
postgresql.target=.
nuxeo.db.type=postgresql
nuxeo.db.host=localhost
nuxeo.db.port=5432
nuxeo.db.name=nuxeo
nuxeo.db.user=nuxeo
nuxeo.db.password=password
nuxeo.db.jdbc.url=jdbc:postgresql://${nuxeo.db.host}:${nuxeo.db.port}/${nuxeo.db.name}
nuxeo.db.driver=org.postgresql.Driver
nuxeo.db.xadatasource=org.postgresql.xa.PGXADataSource
""",
    "postgresql-quartz-cluster": """## DO NOT EDIT THIS FILE, USE nuxeo.conf  ##
nuxeo.template.includes=postgresql
postgresql-quartz-cluster.target=.
nuxeo.quartz.enable=true
""",
    "mongodb": """## DO NOT EDIT THIS FILE, USE nuxeo.conf  ##
nuxeo.template.includes=default
mongodb.target=.
nuxeo.db.type=mongodb
nuxeo.mongodb.server=localhost:27017
nuxeo.mongodb.dbname=nuxeo
nuxeo.mongodb.ssl=
nuxeo.mongodb.truststore.path=
nuxeo.mongodb.truststore.password=
nuxeo.mongodb.keystore.path=
nuxeo.mongodb.keystore.password=
nuxeo.db.indexes.create=true
nuxeo.quartz.enable=true
nuxeo.mongodb.directories.enabled=true
nuxeo.keyvalue.provider=mongodb
nuxeo.lock.manager=mongodb
nuxeo.transientstore.provider=mongodb
""",
    "aws": """## DO NOT EDIT THIS FILE, USE nuxeo.conf  ##
aws.target=.
nuxeo.aws.accessKeyId=
nuxeo.aws.secretKey=
nuxeo.aws.region=
nuxeo.aws.trustStorePath=
nuxeo.aws.trustStorePassword=
nuxeo.aws.trustStoreType=
nuxeo.aws.keyStorePath=
nuxeo.aws.keyStorePassword=
nuxeo.aws.keyStoreType=
""",
}

# LTS 2025's Tomcat (compatibility matrix: 10.1); the zip's root carries Tomcat's RELEASE-NOTES as the vendor's does.
TOMCAT_BY_LTS = {2025: "10.1.40"}
TOMCAT_RELEASE_NOTES = """nxprovision stand-in: the Tomcat of the Nuxeo distribution this archive stands in for.

                     Apache Tomcat Version {tomcat}
                            Release Notes
"""


def _lts(version: str) -> int:
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def template_defaults(version: str) -> dict[str, str]:
    """The distribution's templates. From LTS 2025 the search client and the audit store are packages: the
    elasticsearch.* and audit.elasticsearch.* defaults are gone from common-base (they have no effect)."""
    if _lts(version) < 2025:
        return TEMPLATE_DEFAULTS
    base = "\n".join(line for line in TEMPLATE_DEFAULTS["common-base"].splitlines()
                     if not line.startswith(("elasticsearch.", "audit.elasticsearch.", "seqgen.elasticsearch.")))
    return {**TEMPLATE_DEFAULTS, "common-base": base + "\n"}


# LTS 2025 search client and audit packages (doc.nuxeo.com: Search Setup, OpenSearch 1.x Audit Backend): each
# deploys a template, <key>-search-client or <key>-audit, whose keys are nuxeo.<key>.client.*,
# nuxeo.search.client.default.<key>.* and nuxeo.audit.backend.default.<key>.*. The stand-in builds the search
# cluster ones (the lab's search cluster is OpenSearch); the MongoDB and SQL audit packages are not built.
SEARCH_CLIENT_KEYS = ("opensearch1", "opensearch2")


def _search_client_defaults(key: str) -> str:
    return f"""## DO NOT EDIT THIS FILE, USE nuxeo.conf  ##
{key}-search-client.target=.
nuxeo.{key}.client.server=
nuxeo.{key}.client.username=
nuxeo.{key}.client.password=
nuxeo.{key}.client.trustStorePath=
nuxeo.{key}.client.trustStorePassword=
nuxeo.{key}.client.trustStoreType=
nuxeo.{key}.client.sslCertificateVerification=true
nuxeo.{key}.client.socketTimeoutMs=121000
nuxeo.search.client.default.{key}.index.name=nuxeo
nuxeo.search.client.default.{key}.index.numberOfReplicas=1
nuxeo.search.client.default.{key}.index.numberOfShards=5
"""


def _audit_defaults(key: str) -> str:
    return f"""## DO NOT EDIT THIS FILE, USE nuxeo.conf  ##
{key}-audit.target=.
nuxeo.audit.backend.default.{key}.enabled=true
nuxeo.audit.backend.default.{key}.index.name=nuxeo-audit
"""


S3BINARIES_DEFAULTS = """## DO NOT EDIT THIS FILE, USE nuxeo.conf  ##
nuxeo.template.includes=aws
s3binaries.target=.
# mandatory
nuxeo.s3storage.bucket=
nuxeo.core.binarymanager=org.nuxeo.ecm.blob.s3.S3BlobProvider
nuxeo.s3storage.awsid=
nuxeo.s3storage.awssecret=
nuxeo.s3storage.region=
nuxeo.s3storage.cacheminage=60
nuxeo.s3storage.cachesize=100MB
nuxeo.s3storage.cachecount=10000
nuxeo.s3storage.connection.max=50
nuxeo.s3storage.connection.retry=3
nuxeo.s3storage.connection.timeout=50000
nuxeo.s3storage.socket.timeout=50000
nuxeo.s3storage.endpoint=
nuxeo.s3storage.pathstyleaccess=false
nuxeo.s3storage.accelerateMode=false
nuxeo.s3storage.bucket_prefix=
nuxeo.s3storage.directdownload=false
nuxeo.s3storage.directdownload.expire=3600
nuxeo.s3storage.useDirectUpload=false
"""

# Quartz's PostgreSQL schema, as the postgresql-quartz-cluster template ships it: run once per
# database before the first cluster start (it drops and recreates the tables).
QUARTZ_SQL = """-- Quartz clustered job store tables for PostgreSQL
-- (nxprovision stand-in copy of the template file)
DROP TABLE IF EXISTS qrtz_fired_triggers;
DROP TABLE IF EXISTS qrtz_paused_trigger_grps;
DROP TABLE IF EXISTS qrtz_scheduler_state;
DROP TABLE IF EXISTS qrtz_locks;
DROP TABLE IF EXISTS qrtz_simple_triggers;
DROP TABLE IF EXISTS qrtz_cron_triggers;
DROP TABLE IF EXISTS qrtz_simprop_triggers;
DROP TABLE IF EXISTS qrtz_blob_triggers;
DROP TABLE IF EXISTS qrtz_triggers;
DROP TABLE IF EXISTS qrtz_job_details;
DROP TABLE IF EXISTS qrtz_calendars;

CREATE TABLE qrtz_job_details (
  sched_name varchar(120) NOT NULL, job_name varchar(200) NOT NULL, job_group varchar(200) NOT NULL,
  description varchar(250) NULL, job_class_name varchar(250) NOT NULL, is_durable bool NOT NULL,
  is_nonconcurrent bool NOT NULL, is_update_data bool NOT NULL, requests_recovery bool NOT NULL,
  job_data bytea NULL,
  PRIMARY KEY (sched_name, job_name, job_group));

CREATE TABLE qrtz_triggers (
  sched_name varchar(120) NOT NULL, trigger_name varchar(200) NOT NULL, trigger_group varchar(200) NOT NULL,
  job_name varchar(200) NOT NULL, job_group varchar(200) NOT NULL, description varchar(250) NULL,
  next_fire_time bigint NULL, prev_fire_time bigint NULL, priority integer NULL,
  trigger_state varchar(16) NOT NULL, trigger_type varchar(8) NOT NULL, start_time bigint NOT NULL,
  end_time bigint NULL, calendar_name varchar(200) NULL, misfire_instr smallint NULL, job_data bytea NULL,
  PRIMARY KEY (sched_name, trigger_name, trigger_group),
  FOREIGN KEY (sched_name, job_name, job_group)
    REFERENCES qrtz_job_details (sched_name, job_name, job_group));

CREATE TABLE qrtz_simple_triggers (
  sched_name varchar(120) NOT NULL, trigger_name varchar(200) NOT NULL, trigger_group varchar(200) NOT NULL,
  repeat_count bigint NOT NULL, repeat_interval bigint NOT NULL, times_triggered bigint NOT NULL,
  PRIMARY KEY (sched_name, trigger_name, trigger_group),
  FOREIGN KEY (sched_name, trigger_name, trigger_group)
    REFERENCES qrtz_triggers (sched_name, trigger_name, trigger_group));

CREATE TABLE qrtz_cron_triggers (
  sched_name varchar(120) NOT NULL, trigger_name varchar(200) NOT NULL, trigger_group varchar(200) NOT NULL,
  cron_expression varchar(120) NOT NULL, time_zone_id varchar(80),
  PRIMARY KEY (sched_name, trigger_name, trigger_group),
  FOREIGN KEY (sched_name, trigger_name, trigger_group)
    REFERENCES qrtz_triggers (sched_name, trigger_name, trigger_group));

CREATE TABLE qrtz_simprop_triggers (
  sched_name varchar(120) NOT NULL, trigger_name varchar(200) NOT NULL, trigger_group varchar(200) NOT NULL,
  str_prop_1 varchar(512) NULL, str_prop_2 varchar(512) NULL, str_prop_3 varchar(512) NULL,
  int_prop_1 int NULL, int_prop_2 int NULL, long_prop_1 bigint NULL, long_prop_2 bigint NULL,
  dec_prop_1 numeric(13,4) NULL, dec_prop_2 numeric(13,4) NULL, bool_prop_1 bool NULL, bool_prop_2 bool NULL,
  PRIMARY KEY (sched_name, trigger_name, trigger_group),
  FOREIGN KEY (sched_name, trigger_name, trigger_group)
    REFERENCES qrtz_triggers (sched_name, trigger_name, trigger_group));

CREATE TABLE qrtz_blob_triggers (
  sched_name varchar(120) NOT NULL, trigger_name varchar(200) NOT NULL, trigger_group varchar(200) NOT NULL,
  blob_data bytea NULL,
  PRIMARY KEY (sched_name, trigger_name, trigger_group),
  FOREIGN KEY (sched_name, trigger_name, trigger_group)
    REFERENCES qrtz_triggers (sched_name, trigger_name, trigger_group));

CREATE TABLE qrtz_calendars (
  sched_name varchar(120) NOT NULL, calendar_name varchar(200) NOT NULL, calendar bytea NOT NULL,
  PRIMARY KEY (sched_name, calendar_name));

CREATE TABLE qrtz_paused_trigger_grps (
  sched_name varchar(120) NOT NULL, trigger_group varchar(200) NOT NULL,
  PRIMARY KEY (sched_name, trigger_group));

CREATE TABLE qrtz_fired_triggers (
  sched_name varchar(120) NOT NULL, entry_id varchar(95) NOT NULL, trigger_name varchar(200) NOT NULL,
  trigger_group varchar(200) NOT NULL, instance_name varchar(200) NOT NULL, fired_time bigint NOT NULL,
  sched_time bigint NOT NULL, priority integer NOT NULL, state varchar(16) NOT NULL,
  job_name varchar(200) NULL,
  job_group varchar(200) NULL, is_nonconcurrent bool NULL, requests_recovery bool NULL,
  PRIMARY KEY (sched_name, entry_id));

CREATE TABLE qrtz_scheduler_state (
  sched_name varchar(120) NOT NULL, instance_name varchar(200) NOT NULL, last_checkin_time bigint NOT NULL,
  checkin_interval bigint NOT NULL,
  PRIMARY KEY (sched_name, instance_name));

CREATE TABLE qrtz_locks (
  sched_name varchar(120) NOT NULL, lock_name varchar(40) NOT NULL,
  PRIMARY KEY (sched_name, lock_name));

INSERT INTO qrtz_locks VALUES ('nuxeo', 'TRIGGER_ACCESS'), ('nuxeo', 'JOB_ACCESS'),
  ('nuxeo', 'CALENDAR_ACCESS'),
  ('nuxeo', 'STATE_ACCESS'), ('nuxeo', 'MISFIRE_ACCESS');

CREATE INDEX idx_qrtz_j_req_recovery ON qrtz_job_details (sched_name, requests_recovery);
CREATE INDEX idx_qrtz_j_grp ON qrtz_job_details (sched_name, job_group);
CREATE INDEX idx_qrtz_t_j ON qrtz_triggers (sched_name, job_name, job_group);
CREATE INDEX idx_qrtz_t_jg ON qrtz_triggers (sched_name, job_group);
CREATE INDEX idx_qrtz_t_c ON qrtz_triggers (sched_name, calendar_name);
CREATE INDEX idx_qrtz_t_g ON qrtz_triggers (sched_name, trigger_group);
CREATE INDEX idx_qrtz_t_state ON qrtz_triggers (sched_name, trigger_state);
CREATE INDEX idx_qrtz_t_n_state ON qrtz_triggers (sched_name, trigger_name, trigger_group, trigger_state);
CREATE INDEX idx_qrtz_t_n_g_state ON qrtz_triggers (sched_name, trigger_group, trigger_state);
CREATE INDEX idx_qrtz_t_next_fire_time ON qrtz_triggers (sched_name, next_fire_time);
CREATE INDEX idx_qrtz_t_nft_st ON qrtz_triggers (sched_name, trigger_state, next_fire_time);
CREATE INDEX idx_qrtz_t_nft_misfire ON qrtz_triggers (sched_name, misfire_instr, next_fire_time);
CREATE INDEX idx_qrtz_t_nft_st_misfire
  ON qrtz_triggers (sched_name, misfire_instr, next_fire_time, trigger_state);
CREATE INDEX idx_qrtz_t_nft_st_misfire_grp
  ON qrtz_triggers (sched_name, misfire_instr, next_fire_time, trigger_group, trigger_state);
CREATE INDEX idx_qrtz_ft_trig_inst_name ON qrtz_fired_triggers (sched_name, instance_name);
CREATE INDEX idx_qrtz_ft_inst_job_req_rcvry
  ON qrtz_fired_triggers (sched_name, instance_name, requests_recovery);
CREATE INDEX idx_qrtz_ft_j_g ON qrtz_fired_triggers (sched_name, job_name, job_group);
CREATE INDEX idx_qrtz_ft_jg ON qrtz_fired_triggers (sched_name, job_group);
CREATE INDEX idx_qrtz_ft_t_g ON qrtz_fired_triggers (sched_name, trigger_name, trigger_group);
CREATE INDEX idx_qrtz_ft_tg ON qrtz_fired_triggers (sched_name, trigger_group);
"""

PACKAGES: dict[str, dict[str, str]] = {
    "amazon-s3-online-storage": {
        "title": "Amazon S3 Online Storage",
        "description": "Nuxeo Binary Manager for S3 object stores (stand-in: the s3binaries template only).",
    },
    "nuxeo-web-ui": {
        "title": "Nuxeo Web UI",
        "description": "Nuxeo Web UI (stand-in: a placeholder page under /nuxeo/ui/).",
    },
}
# packages of LTS 2025 only: name -> template it installs
PACKAGES_2025: dict[str, str] = {
    **{f"nuxeo-search-client-{k}": f"{k}-search-client" for k in SEARCH_CLIENT_KEYS},
    **{f"nuxeo-audit-{k}": f"{k}-audit" for k in SEARCH_CLIENT_KEYS},
}


def package_names(version: str) -> list[str]:
    """The stand-in packages built for a Nuxeo version."""
    return [*PACKAGES, *(PACKAGES_2025 if _lts(version) >= 2025 else ())]

WEB_UI_PAGE = """<!doctype html><html><head><title>Nuxeo Web UI (stand-in)</title></head>
<body><h1>Nuxeo Web UI {version}</h1>
<p>nxprovision stand-in placeholder: no real Web UI here.</p></body></html>
"""


def _write(path: Path, text: str, mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mode is not None:
        path.chmod(mode)


def write_distribution(root: Path, version: str) -> None:
    """Write the unzipped distribution tree at `root` (the caller zips it as nuxeo-server-<v>-tomcat/...).
    lib/python is left empty: the mirror builder installs PYTHON_DEPS there."""
    root.mkdir(parents=True, exist_ok=True)
    _write(root / "STANDIN", MARKER.format(version=version))
    _write(root / "bin" / "nuxeoctl", NUXEOCTL.format(package=RUNTIME_PACKAGE), 0o755)
    _write(root / "bin" / "nuxeo.conf", SHIPPED_NUXEO_CONF)
    templates = root / "templates"
    _write(templates / "nuxeo.defaults", GLOBAL_DEFAULTS.format(version=version))
    for name, text in template_defaults(version).items():
        _write(templates / name / "nuxeo.defaults", text)
    tomcat = TOMCAT_BY_LTS.get(_lts(version))
    if tomcat:
        _write(root / "RELEASE-NOTES", TOMCAT_RELEASE_NOTES.format(tomcat=tomcat))
    _write(templates / "postgresql-quartz-cluster" / "bin" / "create-quartz-tables.sql", QUARTZ_SQL)
    (root / "nxserver" / "nuxeo.war").mkdir(parents=True, exist_ok=True)
    (root / "nxserver" / "config").mkdir(parents=True, exist_ok=True)
    (root / "packages").mkdir(exist_ok=True)
    (root / "lib" / "python").mkdir(parents=True, exist_ok=True)
    target = root / "lib" / "standin" / RUNTIME_PACKAGE
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(RUNTIME_SRC, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for p in (root / "bin" / "nuxeoctl",):
        p.chmod(p.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def write_package(dest_zip: Path, name: str, version: str) -> None:
    """An offline marketplace package zip (package.xml + install.xml + payload), installable with
    `nuxeoctl mp-install <zip>`."""
    if name not in package_names(version):
        raise ValueError(f"no stand-in package {name!r} for {version}; known: {', '.join(package_names(version))}")
    meta = PACKAGES.get(name) or {"title": name, "description": f"Nuxeo LTS 2025 package {name} (stand-in: its "
                                                                f"template {PACKAGES_2025.get(name)} only)."}
    package_xml = f"""<?xml version="1.0"?>
<package type="addon" name="{name}" version="{version}">
  <title>{meta["title"]}</title>
  <description>{meta["description"]}</description>
  <vendor>Nuxeo</vendor>
  <platforms>
    <platform>server-*</platform>
  </platforms>
  <license>Apache 2.0</license>
  <license-url>http://www.apache.org/licenses/LICENSE-2.0</license-url>
  <standin>true</standin>
</package>
"""
    files: dict[str, str] = {"package.xml": package_xml}
    if name == "amazon-s3-online-storage":
        files["install.xml"] = """<?xml version="1.0"?>
<install>
  <copy file="install/templates/s3binaries" todir="templates" />
  <config addtemplate="s3binaries" />
</install>
"""
        files["install/templates/s3binaries/nuxeo.defaults"] = S3BINARIES_DEFAULTS
    elif name in PACKAGES_2025:
        tpl = PACKAGES_2025[name]
        key = tpl.rsplit("-", 2)[0] if tpl.endswith("-search-client") else tpl[: -len("-audit")]
        files["install.xml"] = f"""<?xml version="1.0"?>
<install>
  <copy file="install/templates/{tpl}" todir="templates" />
  <config addtemplate="{tpl}" />
</install>
"""
        text = _search_client_defaults(key) if tpl.endswith("-search-client") else _audit_defaults(key)
        files[f"install/templates/{tpl}/nuxeo.defaults"] = text
    else:
        files["install.xml"] = """<?xml version="1.0"?>
<install>
  <copy file="install/web/ui" todir="nxserver/nuxeo.war" />
</install>
"""
        files["install/web/ui/index.html"] = WEB_UI_PAGE.format(version=version)
    dest_zip.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest_zip, "w", zipfile.ZIP_DEFLATED) as z:
        for arcname, text in files.items():
            z.writestr(arcname, text)
