"""`plan --files`: every file the roles' template tasks write, rendered with Ansible's templating, secrets masked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nxprovision.inventory import load_inventory
from nxprovision.model.cluster import build_cluster
from nxprovision.plan import MASK, make_plan
from nxprovision.planfiles import planned_files
from nxprovision.rotation import masked_names

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ["compact", "distributed", "single", "compact-mongodb"]


def _cluster(name: str):
    return build_cluster(load_inventory(ROOT / "inventories" / name))


@pytest.fixture(scope="module")
def planned() -> dict[str, tuple]:
    out = {}
    for name in SAMPLES:
        c = _cluster(name)
        out[name] = (c, planned_files(c))
    return out


def _paths(files, host: str) -> set[str]:
    return {f.path for f in files if f.host == host}


@pytest.mark.parametrize("name", SAMPLES)
def test_the_plan_and_the_file_walk_render_the_same_nuxeo_conf_and_haproxy_cfg(planned, name: str) -> None:
    cluster, files = planned[name]
    walked = {(f.host, f.path): f.content for f in files}
    plan = make_plan(cluster)
    assert plan.files
    for host, by_path in plan.files.items():
        for path, content in by_path.items():
            assert walked[(host, path)] == content, f"{name} {host}:{path}"


def test_compact_lists_the_files_of_every_role_it_runs_and_none_of_the_others(planned) -> None:
    _c, files = planned["compact"]
    roles = {f.role for f in files}
    assert {"postgresql", "opensearch", "seaweedfs", "pgbackrest", "kafka", "nuxeo", "haproxy"} <= roles
    assert not roles & {"etcd", "patroni", "keepalived", "mongodb", "zookeeper"}
    assert "/etc/kafka/server.properties" in _paths(files, "kafka1")
    assert "/etc/seaweedfs/security.toml" in _paths(files, "s3-1")
    # a task condition decides per host: only the replica gets the standby settings
    standby = "/etc/postgresql/17/main/conf.d/91-nxprovision-standby.conf"  # the sample's hosts run Debian 13
    assert standby in _paths(files, "db2") and standby not in _paths(files, "db1")


def test_distributed_lists_patroni_etcd_and_keepalived_not_the_plain_postgresql_role(planned) -> None:
    _c, files = planned["distributed"]
    roles = {f.role for f in files}
    assert {"etcd", "patroni", "keepalived"} <= roles and "postgresql" not in roles
    assert "/etc/keepalived/keepalived.conf" in _paths(files, "lb2")


def test_files_that_need_the_host_say_why_instead_of_guessing(planned) -> None:
    _c, files = planned["compact"]
    heap = [f for f in files if f.path.endswith("jvm.options.d/heap.options")]
    assert len(heap) == 3
    assert all(f.content is None and "ansible_memtotal_mb" in f.pending for f in heap)


@pytest.mark.parametrize("name", SAMPLES)
def test_no_vault_value_in_any_planned_file(planned, name: str) -> None:
    cluster, files = planned[name]
    secrets = [str(cluster.settings[n]) for n in masked_names() if len(str(cluster.settings.get(n) or "")) >= 6]
    assert secrets
    rendered = [f for f in files if f.content is not None]
    assert len(rendered) > 5
    for f in rendered:
        for s in secrets:
            assert s not in f.content, f"{name} {f.host}:{f.path} shows a vault value"
    assert any(MASK in f.content for f in rendered)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from nxprovision.cli import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_plan_files_prints_every_file_and_writes_them_with_output_dir(tmp_path: Path) -> None:
    inv = str(ROOT / "inventories" / "compact")
    r = _cli("plan", "-i", inv, "--files", "--output-dir", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert "--- kafka1:/etc/kafka/server.properties" in r.stdout
    assert "--- lb1:/etc/haproxy/haproxy.cfg" in r.stdout
    assert "heap.options" in r.stdout and "ansible_memtotal_mb" in r.stdout
    assert (tmp_path / "out" / "s3-1" / "etc" / "seaweedfs" / "s3.json").is_file()
    heap = tmp_path / "out" / "search1" / "opt" / "opensearch" / "config" / "jvm.options.d" / "heap.options"
    assert not heap.exists()
    j = _cli("plan", "-i", inv, "--files", "--json")
    assert j.returncode == 0, j.stderr
    entries = json.loads(j.stdout)["planned_files"]
    assert {e["path"] for e in entries if e["host"] == "db2"} >= {"/etc/pgbackrest/pgbackrest.conf"}
