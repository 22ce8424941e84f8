"""The kafka role's under-replicated partitions check (with monitoring on): the script as the role renders it, run
against a stand-in for Kafka's admin tool that prints what Kafka 3's `kafka-topics.sh --describe
--under-replicated-partitions` prints, and its output read as the node exporter's textfile collector reads it."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from nxprovision.plan import _environment

# Kafka 3.x: one line per partition whose ISR is smaller than its replicas (nothing when all are in sync)
DESCRIBED = (
    "\tTopic: nuxeo-bulk-index\tTopicId: 8a6FzG1sQ5m4bDkGgkQ3wQ\tPartition: 0\tLeader: 1\tReplicas: 1,2,3\tIsr: 1,3\n"
    "\tTopic: nuxeo-bulk-index\tTopicId: 8a6FzG1sQ5m4bDkGgkQ3wQ\tPartition: 3\tLeader: 3\tReplicas: 3,2,1\tIsr: 3,1\n"
    "\tTopic: nuxeo-audit\tTopicId: Qk2l0wYdT3G3vq1B2b6u3A\tPartition: 1\tLeader: 1\tReplicas: 2,1,3\tIsr: 1,3\n"
)


def _run(tmp_path: Path, described: str, rc: int = 0) -> tuple[subprocess.CompletedProcess[str], Path]:
    home = tmp_path / "kafka"
    (home / "bin").mkdir(parents=True, exist_ok=True)
    tool = home / "bin" / "kafka-topics.sh"
    (tmp_path / "described.txt").write_text(described)
    tool.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/args\ncat {tmp_path}/described.txt\nexit {rc}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    textfile = tmp_path / "textfile"
    textfile.mkdir(exist_ok=True)
    script = _environment().get_template("kafka/templates/usr/local/lib/nxprovision-kafka-metrics.j2").render(
        nx={"monitoring": {"textfile_dir": str(textfile)}}, kafka_log_dir=str(tmp_path / "log"), kafka_home=str(home),
        __kafka_broker={"address": "10.0.0.21", "port": 9092}, _kafka_client_config="/etc/kafka/client.properties")
    path = tmp_path / "check"
    path.write_text(script)
    path.chmod(0o755)
    return subprocess.run([str(path)], capture_output=True, text=True, env={"PATH": os.environ["PATH"]}), textfile


def _samples(text: str) -> dict[str, float]:
    return {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if not ln.startswith("#")}


def test_counts_under_replicated_partitions_per_topic(tmp_path: Path) -> None:
    r, textfile = _run(tmp_path, DESCRIBED)
    assert r.returncode == 0, r.stderr
    text = (textfile / "nxprovision_kafka.prom").read_text()
    samples = _samples(text)
    assert samples['nxprovision_kafka_under_replicated_partitions{topic="nuxeo-bulk-index"}'] == 2
    assert samples['nxprovision_kafka_under_replicated_partitions{topic="nuxeo-audit"}'] == 1
    assert samples["nxprovision_kafka_under_replicated_partitions_all"] == 3
    assert samples["nxprovision_kafka_check_timestamp_seconds"] > 1.7e9
    # it asked this broker, with the admin tools' client settings
    assert (tmp_path / "args").read_text().split() == [
        "--bootstrap-server", "10.0.0.21:9092", "--command-config", "/etc/kafka/client.properties", "--describe",
        "--under-replicated-partitions"]
    # only the finished .prom file is in the collector's directory (the collector reads *.prom)
    assert [p.name for p in textfile.iterdir()] == ["nxprovision_kafka.prom"]
    if shutil.which("promtool"):
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


def test_all_in_sync_is_a_zero_not_an_absent_series(tmp_path: Path) -> None:
    r, textfile = _run(tmp_path, "")
    assert r.returncode == 0, r.stderr
    samples = _samples((textfile / "nxprovision_kafka.prom").read_text())
    assert samples["nxprovision_kafka_under_replicated_partitions_all"] == 0
    assert not any(k.startswith("nxprovision_kafka_under_replicated_partitions{") for k in samples)


@pytest.mark.parametrize("rc", [1, 127])
def test_a_failed_describe_keeps_the_last_file(tmp_path: Path, rc: int) -> None:
    r, textfile = _run(tmp_path, DESCRIBED)
    before = (textfile / "nxprovision_kafka.prom").read_text()
    r, textfile = _run(tmp_path, "", rc=rc)
    assert r.returncode != 0
    assert (textfile / "nxprovision_kafka.prom").read_text() == before
    assert [p.name for p in textfile.iterdir()] == ["nxprovision_kafka.prom"]
