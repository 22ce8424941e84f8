"""Vendor archive names per OS release and CPU architecture (nx_os_release, nx_cpu_arch), what validate refuses,
and how prechecks and the common role's preflight hold each host to the platform the inventory declares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from nxprovision import prechecks
from nxprovision.inventory import load_inventory
from nxprovision.model.artifacts import Platform, archive_problem, archive_root_dir, artifact_path
from nxprovision.model.cluster import build_cluster
from nxprovision.prechecks import ERROR, OK

ROOT = Path(__file__).resolve().parents[2]
X86_12, X86_13 = Platform("debian12", "x86_64"), Platform("debian13", "x86_64")
ARM_12, ARM_13 = Platform("debian12", "aarch64"), Platform("debian13", "aarch64")


# -- names -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("product", "version", "platform", "path", "top"), [
    ("opensearch", "1.3.20", X86_13, "1.3.20/opensearch-1.3.20-linux-x64.tar.gz", "opensearch-1.3.20"),
    ("opensearch", "2.19.1", ARM_13, "2.19.1/opensearch-2.19.1-linux-arm64.tar.gz", "opensearch-2.19.1"),
    ("elasticsearch", "7.17.9", X86_12, "elasticsearch-7.17.9-linux-x86_64.tar.gz", "elasticsearch-7.17.9"),
    ("elasticsearch", "8.7.0", ARM_12, "elasticsearch-8.7.0-linux-aarch64.tar.gz", "elasticsearch-8.7.0"),
    ("seaweedfs", "4.48", X86_12, "4.48/linux_amd64.tar.gz", ""),
    ("seaweedfs", "4.48", ARM_13, "4.48/linux_arm64.tar.gz", ""),
    ("java", "21.0.5+11", X86_12, "jdk-21.0.5+11/OpenJDK21U-jre_x64_linux_hotspot_21.0.5_11.tar.gz",
     "jdk-21.0.5+11-jre"),
    ("java", "21.0.5+11", ARM_12, "jdk-21.0.5+11/OpenJDK21U-jre_aarch64_linux_hotspot_21.0.5_11.tar.gz",
     "jdk-21.0.5+11-jre"),
    ("mongodb", "7.0.14", X86_12, "mongodb-linux-x86_64-debian12-7.0.14.tgz", "mongodb-linux-x86_64-debian12-7.0.14"),
    # MongoDB publishes no Debian 13 build: Debian 13 hosts get the Debian 12 one
    ("mongodb", "8.0.4", X86_13, "mongodb-linux-x86_64-debian12-8.0.4.tgz", "mongodb-linux-x86_64-debian12-8.0.4"),
    # one archive for every platform
    ("kafka", "3.9.1", ARM_13, "3.9.1/kafka_2.13-3.9.1.tgz", "kafka_2.13-3.9.1"),
    ("nuxeo", "2025.9", ARM_13, "nuxeo-server-2025.9-tomcat.zip", "nuxeo-server-2025.9-tomcat"),
])
def test_archive_names_follow_release_and_architecture(product: str, version: str, platform: Platform, path: str,
                                                       top: str) -> None:
    assert artifact_path(product, version, platform=platform) == path
    assert archive_root_dir(product, version, platform) == top
    assert archive_problem(product, version, platform) == ""


def test_the_default_platform_keeps_the_names_of_before() -> None:
    assert artifact_path("mongodb", "7.0.14") == "mongodb-linux-x86_64-debian12-7.0.14.tgz"
    assert artifact_path("opensearch", "1.3.20") == "1.3.20/opensearch-1.3.20-linux-x64.tar.gz"


@pytest.mark.parametrize(("product", "version", "platform", "problem"), [
    ("mongodb", "8.0.4", ARM_12, "MongoDB publishes no build for debian12 on aarch64"),
    ("mongodb", "8.0.4", ARM_13, "its Debian builds are x86_64 only"),
    ("mongodb", "6.0.19", X86_12, "publishes its debian12 build from 7.0.3 on, not for 6.0.19"),
    ("mongodb", "7.0.2", X86_13, "from 7.0.3 on"),
    ("mongodb", "7.0.14", Platform("debian11", "x86_64"), "no build for debian11"),
    ("elasticsearch", "7.7.1", ARM_12, "elasticsearch publishes aarch64 archives from 7.8.0 on, not for 7.7.1"),
    ("opensearch", "1.3.20", Platform("debian13", "riscv64"), "no opensearch archive for CPU architecture 'riscv64'"),
])
def test_unpublished_archives_are_named(product: str, version: str, platform: Platform, problem: str) -> None:
    assert problem in archive_problem(product, version, platform)


# -- the model -------------------------------------------------------------------------------------------------


def test_each_host_gets_the_archive_of_its_platform(make_inv) -> None:
    inv = make_inv("compact", hostvars={"search1": {"nx_cpu_arch": "aarch64"}, "front1": {"nx_cpu_arch": "aarch64"}},
                   set={"nx_os_release": "debian12", "java_download_base_url": "http://m/java",
                        "java_version": "21.0.5+11"})
    c = build_cluster(load_inventory(inv))
    archives = c.derived["search"]["archives"]
    assert set(archives) == {"search1", "search2", "search3"}
    assert archives["search1"]["url"].endswith("/opensearch-1.3.20-linux-arm64.tar.gz")
    assert archives["search2"]["url"].endswith("/opensearch-1.3.20-linux-x64.tar.gz")
    assert archives["search1"]["checksum"] == f"sha512:{archives['search1']['url']}.sha512"
    assert archives["search1"]["dir"] == "opensearch-1.3.20"
    assert c.derived["s3"]["archives"]["s3-1"]["url"].endswith("/linux_amd64.tar.gz")
    # LTS 2025 on Debian 12: the JRE archive of each node's architecture
    java = c.derived["java"]
    assert "jre_aarch64_linux" in java["front1"]["archive"]["url"]
    assert "jre_x64_linux" in java["front2"]["archive"]["url"]
    facts = c.to_facts()
    assert facts["hosts"]["search1"]["platform"] == {"os_release": "debian12", "cpu_arch": "aarch64"}
    assert facts["hosts"]["lb1"]["platform"] == {"os_release": "debian12", "cpu_arch": "x86_64"}


def test_mongodb_hosts_of_a_mixed_cluster_get_their_release_build(make_inv) -> None:
    inv = make_inv("compact", database="mongodb", hostvars={"mongo3": {"nx_os_release": "debian12"}})
    db = build_cluster(load_inventory(inv)).derived["db"]
    assert {h: a["url"].rsplit("/", 1)[1] for h, a in db["archives"].items()} == {
        "mongo1": "mongodb-linux-x86_64-debian12-7.0.14.tgz", "mongo2": "mongodb-linux-x86_64-debian12-7.0.14.tgz",
        "mongo3": "mongodb-linux-x86_64-debian12-7.0.14.tgz"}
    assert db["archives"]["mongo1"]["dir"] == "mongodb-linux-x86_64-debian12-7.0.14"


# -- validate ----------------------------------------------------------------------------------------------------


def _findings(run_cli, inv: Path, rule: str) -> tuple[int, list[str]]:
    code, out, _ = run_cli("validate", "-i", str(inv))
    return code, [ln for ln in out.splitlines() if f"[{rule}" in ln]


def test_validate_refuses_mongodb_on_arm64_debian(make_inv, run_cli) -> None:
    inv = make_inv("compact", database="mongodb", set={"nx_cpu_arch": "aarch64", "mongodb_version": "8.0.4"})
    code, lines = _findings(run_cli, inv, "downloads.platform.mongodb")
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("ERROR"), lines
    line = lines[0]
    assert "hosts mongo1, mongo2, mongo3" in line
    assert "MongoDB publishes no build for debian13 on aarch64" in line and "x86_64 only" in line
    assert "Fix: run the MongoDB hosts on x86_64 hosts (nx_cpu_arch)" in line
    # the other products have arm64 archives: nothing refused for them
    assert not _findings(run_cli, inv, "downloads.platform.opensearch")[1]


def test_validate_refuses_a_mongodb_version_without_a_debian12_build(make_inv, run_cli) -> None:
    inv = make_inv("compact", database="mongodb", set={"nx_os_release": "debian12", "mongodb_version": "6.0.19",
                                                      "nuxeo_version": "2023.35", "postgresql_version": "15"})
    code, lines = _findings(run_cli, inv, "downloads.platform.mongodb")
    assert code == 2 and len(lines) == 1 and lines[0].startswith("ERROR"), lines
    assert "from 7.0.3 on, not for 6.0.19" in lines[0] and "7.0.3 or later" in lines[0]


def test_mongodb_on_debian13_is_a_warning_naming_the_build_used(make_inv, run_cli) -> None:
    inv = make_inv("compact", database="mongodb")  # init's Debian 13
    code, lines = _findings(run_cli, inv, "downloads.platform.mongodb")
    assert code == 0
    assert len(lines) == 1 and lines[0].startswith("WARNING"), lines
    assert "MongoDB publishes no debian13 build" in lines[0]
    assert "mongodb-linux-x86_64-debian12-7.0.14.tgz" in lines[0]
    inv = make_inv("compact", database="mongodb", set={"nx_os_release": "debian12", "nuxeo_version": "2023.35",
                                                      "postgresql_version": "15"})
    assert _findings(run_cli, inv, "downloads.platform.mongodb")[1] == []


def test_validate_refuses_elasticsearch_before_arm64_archives(make_inv, run_cli) -> None:
    inv = make_inv("compact", set={"nx_os_release": "debian12", "nuxeo_version": "2021.60", "postgresql_version": "13",
                                  "search_distribution": "elasticsearch", "search_version": "7.7.1",
                                  "common_java_package": "temurin-11-jre"},
                   hostvars={"search2": {"nx_cpu_arch": "aarch64"}})
    code, lines = _findings(run_cli, inv, "downloads.platform.elasticsearch")
    assert code == 2 and len(lines) == 1, lines
    assert "hosts search2:" in lines[0] and "aarch64 archives from 7.8.0 on" in lines[0]


@pytest.mark.parametrize(("value", "fix"), [("arm64", "set nx_cpu_arch to aarch64"), ("amd64", "to x86_64"),
                                            ("sparc", "set nx_cpu_arch to one of x86_64, aarch64")])
def test_validate_refuses_an_unknown_architecture(make_inv, run_cli, value: str, fix: str) -> None:
    inv = make_inv("single", hostvars={"nuxeo1": {"nx_cpu_arch": value}})
    code, lines = _findings(run_cli, inv, "settings.cpu_arch")
    assert code == 2 and len(lines) == 1, lines
    assert f"hosts nuxeo1: nx_cpu_arch '{value}' is not a CPU architecture" in lines[0] and fix in lines[0]


def test_one_pinned_checksum_cannot_serve_two_architectures(make_inv, run_cli) -> None:
    pin = "sha512:" + "a" * 128
    inv = make_inv("compact", set={"opensearch_archive_checksum": pin},
                   hostvars={"search3": {"nx_cpu_arch": "aarch64"}})
    code, lines = _findings(run_cli, inv, "downloads.checksum")
    assert code == 2
    assert any("one checksum is pinned for 2 different archives" in ln and "linux-arm64" in ln for ln in lines), lines
    # a pin per architecture (here per host) is what the fix asks for
    inv = make_inv("compact", set={"opensearch_archive_checksum": pin},
                   hostvars={"search3": {"nx_cpu_arch": "aarch64",
                                         "opensearch_archive_checksum": "sha512:" + "b" * 128}})
    code, lines = _findings(run_cli, inv, "downloads.checksum")
    assert not [ln for ln in lines if "different archives" in ln], lines


# -- prechecks and the common role's preflight ------------------------------------------------------------------


def _facts(arch: str = "x86_64", version_id: str = "13") -> dict[str, Any]:
    return {"uid": 0, "time": 1000.0, "arch": arch,
            "os": {"id": "debian", "version_id": version_id, "pretty_name": f"Debian {version_id}"},
            "cpus": 4, "memory_mb": 16384, "disks": {}, "listeners": {}, "resolved": {}, "urls": {}}


def test_prechecks_hold_the_host_to_the_inventory_platform(make_inv) -> None:
    inv = make_inv("compact", hostvars={"search1": {"nx_cpu_arch": "aarch64"}})
    c = build_cluster(load_inventory(inv))
    plan = prechecks.host_plan(c, "search1")
    assert plan.platform == {"os_release": "debian13", "cpu_arch": "aarch64"}
    assert any(u.endswith("linux-arm64.tar.gz") for u in plan.urls)  # the mirror check asks for its own archive
    ok = prechecks.platform_row(plan, _facts("aarch64"))
    assert ok is not None and ok.status == OK
    bad = prechecks.platform_row(plan, _facts("x86_64"))
    assert bad is not None and bad.status == ERROR
    assert "its CPU is x86_64, the inventory says nx_cpu_arch: aarch64" in bad.detail
    assert "set nx_cpu_arch / nx_os_release of search1" in bad.fix
    release = prechecks.platform_row(prechecks.host_plan(c, "search2"), _facts("x86_64", "12"))
    assert release is not None and release.status == ERROR
    assert "it runs debian12, the inventory says nx_os_release: debian13" in release.detail
    # part of the cheap subset every deploy runs first
    rows = prechecks.fast_rows(plan, _facts("x86_64"))
    assert [r.status for r in rows if r.check == "platform"] == [ERROR]
    assert prechecks.exit_code(rows) == 1


def test_the_module_reports_the_machine_architecture() -> None:
    import importlib.util
    import os
    import sys

    spec = importlib.util.spec_from_file_location("nx_host_facts", ROOT / "plugins" / "modules" / "nx_host_facts.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["nx_host_facts"] = mod
    spec.loader.exec_module(mod)
    captured: dict[str, Any] = {}

    class FakeModule:
        params = {"paths": [], "ports": [], "names": [], "urls": [], "timeout": 1}

        def __init__(self, **_kw: Any) -> None:
            pass

        def exit_json(self, **kw: Any) -> None:
            captured.update(kw)

    mod.AnsibleModule = FakeModule
    mod.main()
    assert captured["arch"] == os.uname().machine


def _preflight_assert() -> dict[str, Any]:
    tasks = yaml.safe_load((ROOT / "roles" / "common" / "tasks" / "preflight.yml").read_text())
    return next(t for t in tasks if "ansible_architecture" in str(t.get("ansible.builtin.assert", {}).get("that")))


@pytest.mark.parametrize(("arch", "distribution", "major", "passes"), [
    ("aarch64", "Debian", "13", True),
    ("x86_64", "Debian", "13", False),
    ("aarch64", "Debian", "12", False),
])
def test_common_preflight_compares_the_facts_with_the_model(make_inv, arch: str, distribution: str, major: str,
                                                            passes: bool) -> None:
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import init_plugin_loader
    from ansible.template import Templar, trust_as_template

    init_plugin_loader()
    inv = make_inv("compact", hostvars={"search1": {"nx_cpu_arch": "aarch64"}})
    nx = build_cluster(load_inventory(inv)).to_facts()
    role_vars = yaml.safe_load((ROOT / "roles" / "common" / "vars" / "main.yml").read_text())
    variables = {"nx": nx, "inventory_hostname": "search1", "ansible_architecture": arch,
                 "ansible_distribution": distribution, "ansible_distribution_major_version": major,
                 "__common_platform": trust_as_template(role_vars["__common_platform"])}
    templar = Templar(loader=DataLoader(), variables=variables)
    that = _preflight_assert()["ansible.builtin.assert"]["that"]
    results = [templar.template(trust_as_template("{{ " + cond + " }}")) for cond in that]
    assert all(results) is passes, (that, results)


def test_a_malformed_pin_of_one_group_is_refused(make_inv, run_cli) -> None:
    inv = make_inv("compact", hostvars={"search3": {"nx_cpu_arch": "aarch64", "opensearch_archive_checksum": "md5:1"}})
    code, lines = _findings(run_cli, inv, "downloads.checksum")
    assert code == 2 and any("algorithm 'md5' is not one of" in ln for ln in lines), lines
