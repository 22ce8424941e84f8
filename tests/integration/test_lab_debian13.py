"""Lab hosts on Debian 13 beside Debian 12 ones (a mixed lab rehearses an OS migration).

Marked slow: the first run builds the Debian 13 base image (a debootstrap of a couple of minutes).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Lab, bring_up, lab, lab_name, require_lab_machine

from nxprovision.hostkeys import KNOWN_HOSTS_NAME

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@pytest.fixture(scope="module")
def mixed_lab() -> Iterator[Lab]:
    require_lab_machine()
    name = lab_name("nxdeb13")
    try:
        yield bring_up(name, "--hosts", "2", "--os", "debian12", "--os", "host2=debian13")
    finally:
        lab("down", "--name", name, check=False)


def os_release(lab_: Lab, host: str) -> dict[str, str]:
    out = lab_.ssh(host, "cat /etc/os-release")
    assert out.returncode == 0, out.stderr
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def test_a_mixed_lab_boots_each_host_on_its_release(mixed_lab: Lab) -> None:
    assert [(h["host"], h["os"]) for h in mixed_lab.status["hosts"]] == [("host1", "debian12"), ("host2", "debian13")]
    assert os_release(mixed_lab, "host1")["VERSION_ID"] == '"12"'
    rel = os_release(mixed_lab, "host2")
    assert rel["VERSION_ID"] == '"13"' and rel["VERSION_CODENAME"] == "trixie"
    sources = mixed_lab.ssh("host2", "cat /etc/apt/sources.list").stdout
    assert " trixie main" in sources and "bookworm" not in sources


def test_debian13_host_runs_systemd_and_sshd_with_a_known_key(mixed_lab: Lab) -> None:
    state = mixed_lab.ssh("host2", "systemctl is-system-running --wait", timeout=120)
    assert state.stdout.strip() == "running", state.stdout + mixed_lab.ssh("host2", "systemctl --failed").stdout
    assert mixed_lab.ssh("host2", "systemctl is-active ssh").stdout.strip() == "active"
    key = mixed_lab.ssh("host2", "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[1]
    known = (mixed_lab.inventory / KNOWN_HOSTS_NAME).read_text()
    assert f"{mixed_lab.ip('host2')} ssh-ed25519 {key}" in known
    # Ansible checks host keys strictly against that file: reaching host2 proves the key is the one recorded
    ping = mixed_lab.ansible("all", "-m", "ansible.builtin.setup", "-a", "filter=ansible_distribution*")
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert '"ansible_distribution_major_version": "13"' in ping.stdout
    assert '"ansible_distribution_major_version": "12"' in ping.stdout


def test_debian13_host_installs_through_the_lab_apt_cache(mixed_lab: Lab) -> None:
    out = mixed_lab.ssh("host2", "apt-get -q update && apt-get -q install -y tree && tree --version", timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    log = Path(f"/var/lib/nxprovision/labs/{mixed_lab.name}/logs/apt-cacher-ng/apt-cacher.log").read_text()
    assert "dists/trixie/" in log and "tree_" in log


def test_add_host_boots_a_debian13_host_into_a_debian12_lab(mixed_lab: Lab) -> None:
    add = lab("add-host", "--name", mixed_lab.name, "host3", "--group", "lab", "--os", "debian13", timeout=600)
    assert "debian13" in add.stderr
    mixed_lab.refresh()
    assert os_release(mixed_lab, "host3")["VERSION_ID"] == '"13"'
    ping = mixed_lab.ansible("host3", "-m", "ansible.builtin.ping")
    assert ping.returncode == 0, ping.stdout + ping.stderr
