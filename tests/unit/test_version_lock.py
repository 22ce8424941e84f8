"""The version lock: built from what the hosts run, grouped by release and components, read back by the common
role's filter; the nx_apt_lock module reads dpkg and apt, writes pins apt honours, and refuses missing versions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nxprovision import versionlock
from nxprovision.errors import NxError
from nxprovision.versionlock import Reading

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "plugins" / "modules"))
sys.path.insert(0, str(ROOT / "plugins" / "filter"))
import nx_apt_lock  # noqa: E402
from nx_lock import nx_lock_pins  # noqa: E402

LB = versionlock.profile(["haproxy"])
NODE = versionlock.profile(["nuxeo_front", "nuxeo"])


def readings() -> list[Reading]:
    return [
        Reading("lb1", "bookworm", LB, {"haproxy": "2.6.12-1", "openssh-server": "1:9.2p1-2", "chrony": "4.3-2"}),
        Reading("front1", "bookworm", NODE, {"openjdk-17-jre-headless": "17.0.13", "openssh-server": "1:9.2p1-2",
                                             "chrony": "4.3-1"}),
        Reading("front2", "bookworm", NODE, {"openjdk-17-jre-headless": "17.0.13", "openssh-server": "1:9.2p1-2",
                                             "chrony": "4.3-1"}),
    ]


def test_profile_is_the_sorted_components_as_the_role_joins_them() -> None:
    assert versionlock.profile(["nuxeo_front", "nuxeo", "nuxeo"]) == "nuxeo+nuxeo_front"
    assert versionlock.profile([]) == "none"


def test_shared_versions_are_listed_once_and_the_rest_per_profile() -> None:
    lock, conflicts = versionlock.build(readings())
    assert conflicts == []
    rel = lock["releases"]["bookworm"]
    assert rel["all"] == {"openssh-server": "1:9.2p1-2"}  # chrony differs between profiles: kept in each
    assert rel[LB] == {"chrony": "4.3-2", "haproxy": "2.6.12-1"}
    assert rel[NODE] == {"chrony": "4.3-1", "openjdk-17-jre-headless": "17.0.13"}
    assert lock["format"] == versionlock.FORMAT


def test_a_package_at_two_versions_within_one_profile_is_a_conflict_naming_the_hosts() -> None:
    rs = readings()
    rs[2].packages["openjdk-17-jre-headless"] = "17.0.14"
    _lock, conflicts = versionlock.build(rs)
    assert [c.text() for c in conflicts] == [
        f"openjdk-17-jre-headless (bookworm, {NODE}): front1 17.0.13, front2 17.0.14"]


def test_pins_of_a_host_are_the_shared_and_its_profile() -> None:
    lock, _ = versionlock.build(readings())
    assert versionlock.pins(lock, "bookworm", LB) == {"openssh-server": "1:9.2p1-2", "chrony": "4.3-2",
                                                       "haproxy": "2.6.12-1"}
    # a kind of host the lock has not seen yet gets the shared versions only; another release nothing
    assert versionlock.pins(lock, "bookworm", "kafka") == {"openssh-server": "1:9.2p1-2"}
    assert versionlock.pins(lock, "trixie", LB) is None
    assert versionlock.pins(None, "bookworm", LB) is None
    # the role's filter answers the same, as strings, and nothing without a lock
    assert nx_lock_pins(lock, "bookworm", ["haproxy"]) == versionlock.pins(lock, "bookworm", LB)
    assert nx_lock_pins({}, "bookworm", ["haproxy"]) == {}


def test_one_host_one_profile_has_no_shared_part() -> None:
    lock, _ = versionlock.build(readings()[:1])
    assert lock["releases"]["bookworm"] == {LB: {"chrony": "4.3-2", "haproxy": "2.6.12-1",
                                                 "openssh-server": "1:9.2p1-2"}}
    assert versionlock.pins(lock, "bookworm", LB)["haproxy"] == "2.6.12-1"


def test_changes_name_each_package_added_removed_or_moved() -> None:
    old, _ = versionlock.build(readings())
    rs = readings()
    rs[0].packages["haproxy"] = "2.6.13-1"
    del rs[0].packages["chrony"]
    rs[1].packages["curl"] = rs[2].packages["curl"] = "7.88"
    new, _ = versionlock.build(rs)
    assert versionlock.changes(old, new) == [
        f"~ bookworm/{LB}/haproxy: 2.6.12-1 -> 2.6.13-1",
        f"+ bookworm/{NODE}/curl: 7.88",
        f"- bookworm/{LB}/chrony: 4.3-2",
    ]
    assert versionlock.changes(new, new) == []


def test_written_lock_reads_back_and_a_broken_one_is_refused_with_the_fix(tmp_path: Path) -> None:
    lock, _ = versionlock.build(readings())
    path = versionlock.path_of(tmp_path)
    assert path == tmp_path / "group_vars" / "all" / "version_lock.yml"
    assert versionlock.load(path) is None
    path.parent.mkdir(parents=True)
    path.write_text(versionlock.render(lock))
    assert versionlock.load(path) == lock
    path.write_text("nx_version_lock:\n  format: 1\n  releases:\n    bookworm:\n      haproxy: [a]\n")
    with pytest.raises(NxError, match="not a version lock: release bookworm, profile haproxy") as e:
        versionlock.load(path)
    assert "nxprovision lock" in e.value.fix


@pytest.mark.parametrize("lock,problem", [
    (None, "no `nx_version_lock` mapping"),
    ({"format": 2, "releases": {}}, "format is 2"),
    ({"format": 1, "releases": ["bookworm"]}, "not a mapping of Debian releases"),
    ({"format": 1, "releases": {"bookworm": ["x"]}}, "not a mapping of host profiles"),
    ({"format": 1, "releases": {"bookworm": {"all": {"x": ""}}}}, "not a mapping of package name to version"),
])
def test_shape_problems_are_named(lock: object, problem: str) -> None:
    assert problem in (versionlock.shape_problem(lock) or "")


# -- the module's parsing, then the module run for real by Ansible on this machine ----------------------------

POLICY = """haproxy:
  Installed: 2.6.12-1+deb12u1
  Candidate: 2.6.12-1+deb12u2
  Version table:
     2.6.12-1+deb12u2 500
        500 http://mirror.invalid/debian-security bookworm-security/main amd64 Packages
 *** 2.6.12-1+deb12u1 100
        100 /var/lib/dpkg/status
libc6:i386:
  Installed: (none)
  Candidate: 2.36-9
  Version table:
     2.36-9 500
        500 http://mirror.invalid/debian bookworm/main i386 Packages
"""


def test_policy_lists_every_offered_version_per_package() -> None:
    assert nx_apt_lock.parse_policy(POLICY) == {"haproxy": {"2.6.12-1+deb12u2", "2.6.12-1+deb12u1"},
                                                "libc6": {"2.36-9"}}


def test_requested_packages_leave_out_the_base_system_and_dependencies() -> None:
    status = nx_apt_lock.parse_status("installed\thaproxy\t2.6\toptional\ninstalled\tlibc6\t2.36\trequired\n"
                                      "installed\tliblua5.3-0\t5.3\toptional\nconfig-files\tgone\t1\toptional\n"
                                      "installed\tlibpam-systemd\t252\timportant\n")
    assert nx_apt_lock.requested(status, {"liblua5.3-0"}) == {"haproxy": "2.6"}


def test_preferences_pin_each_package_at_its_version() -> None:
    text = nx_apt_lock.preferences({"b": "2", "a": "1:1.0-1"})
    assert text.startswith("# Managed by nxprovision")
    assert "Package: a\nPin: version 1:1.0-1\nPin-Priority: 1001\n\nPackage: b\nPin: version 2\n" in text


def _module(tmp_path: Path, **args: object) -> tuple[int, dict]:
    """The module run by ansible on localhost, with the repository's ansible.cfg (library, filters)."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_LOCALHOST_WARNING": "0",
           "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
           "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"}
    run = subprocess.run([str(Path(sys.executable).parent / "ansible"), "localhost", "-c", "local", "-m",
                          "nx_apt_lock", "-a", json.dumps(args)], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=120)
    doc = json.loads(run.stdout)
    return run.returncode, doc["plays"][0]["tasks"][0]["hosts"]["localhost"]


needs_apt = pytest.mark.skipif(not shutil.which("apt-cache") or not shutil.which("dpkg-query"), reason="needs apt")


@needs_apt
def test_read_returns_the_release_and_requested_packages_of_this_machine(tmp_path: Path) -> None:
    rc, res = _module(tmp_path, state="read")
    assert rc == 0 and res["changed"] is False, res
    assert res["release"] and res["packages"], res
    assert "libc6" not in res["packages"]  # Debian's base system: priority required


@needs_apt
def test_pins_are_written_once_honoured_by_apt_and_a_missing_version_is_refused(tmp_path: Path) -> None:
    bash = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "bash"], capture_output=True, text=True,
                          check=True).stdout
    prefs = tmp_path / "preferences.d"
    path = prefs / "nxprovision-lock"
    rc, res = _module(tmp_path, state="present", pins={"bash": bash}, path=str(path))
    assert rc == 0 and res["changed"] is True and res["missing"] == [], res
    rc, res = _module(tmp_path, state="present", pins={"bash": bash}, path=str(path))
    assert rc == 0 and res["changed"] is False, res
    policy = subprocess.run(["apt-cache", "-o", f"Dir::Etc::PreferencesParts={prefs}", "policy", "bash"],
                            capture_output=True, text=True, check=True).stdout
    assert f" {bash} 1001" in policy, policy  # apt reads the file and holds bash there
    before = path.read_text()
    rc, res = _module(tmp_path, state="present", pins={"bash": bash, "nx-no-such-package": "1.0",
                                                       "bash-completion": "0.0-nx"}, path=str(path))
    assert rc != 0 and sorted(res["missing"]) == ["bash-completion=0.0-nx", "nx-no-such-package=1.0"], res
    assert "bash-completion=0.0-nx" in res["msg"] and path.read_text() == before  # nothing written
    rc, res = _module(tmp_path, state="absent", path=str(path))
    assert rc == 0 and res["changed"] is True and not path.exists()


def test_a_deploy_without_a_lock_suggests_one(make_inv, capsys) -> None:
    from nxprovision import versionlock
    from nxprovision.commands import _suggest_lock

    inv = make_inv("compact")
    _suggest_lock(inv)
    assert f"`nxprovision lock -i {inv}`" in capsys.readouterr().out
    versionlock.path_of(inv).write_text("nx_version_lock: {}\n")
    _suggest_lock(inv)
    assert capsys.readouterr().out == ""
