"""The lab for real: three systemd hosts driven by Ansible, hard power-offs, partitions, teardown."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Lab, all_lab_pids, bring_up, lab, lab_name, lab_traces, require_lab_machine

pytestmark = pytest.mark.lab

HOSTS = ["host1", "host2", "host3"]


def test_ansible_reaches_every_host_through_the_generated_inventory(lab3: Lab) -> None:
    ping = lab3.ansible("all", "-m", "ansible.builtin.ping")
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert ping.stdout.count("SUCCESS") == 3
    cmd = lab3.ansible("all", "-m", "ansible.builtin.command", "-a", "systemctl is-system-running --wait")
    assert cmd.returncode == 0, cmd.stdout + cmd.stderr
    assert cmd.stdout.count("running") == 3
    facts = lab3.ansible("host2", "-m", "ansible.builtin.setup", "-a", "filter=ansible_service_mgr,ansible_hostname")
    assert '"ansible_service_mgr": "systemd"' in facts.stdout
    assert '"ansible_hostname": "host2"' in facts.stdout


def test_each_host_is_its_own_machine(lab3: Lab) -> None:
    ids = {h: lab3.ssh(h, "cat /etc/machine-id").stdout.strip() for h in HOSTS}
    keys = {h: lab3.ssh(h, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[1] for h in HOSTS}
    assert len(set(ids.values())) == 3 and all(len(i) == 32 for i in ids.values())
    assert len(set(keys.values())) == 3
    # hosts resolve and reach each other by name, and nothing beyond the lab
    probe = (
        "import socket\n"
        "socket.create_connection(('host3', 22), 3).close()\n"
        "try:\n socket.create_connection(('203.0.113.1', 80), 3)\nexcept OSError as e:\n print(e.errno)\n"
    )
    out = lab3.ssh("host1", f'python3 -c "{probe}"')
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "101"  # ENETUNREACH: no default route inside the lab
    routes = lab3.ssh("host1", "ip -4 route").stdout
    assert "default" not in routes


def test_apt_installs_through_the_lab_cache(lab3: Lab) -> None:
    out = lab3.ssh("host1", "apt-get -q update && apt-get -q install -y tree && tree --version", timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "tree v" in out.stdout
    log = Path(f"/var/lib/nxprovision/labs/{lab3.name}/logs/apt-cacher-ng/apt-cacher.log")
    assert "tree_" in log.read_text()  # the package came through the lab's apt-cacher-ng


def test_kill_powers_a_host_off_and_start_boots_it_with_its_disk(lab3: Lab) -> None:
    assert lab3.ssh("host2", "echo kept > /root/marker").returncode == 0
    before = lab3.refresh()
    nspawn = before["pids"]["host-host2"]
    inside = subprocess.run(["ip", "netns", "pids", f"nx-{lab3.name}-host2"], capture_output=True, text=True)
    inside_pids = [int(p) for p in inside.stdout.split()]
    assert len(inside_pids) > 3  # systemd, journald, sshd, dbus, ...

    lab("kill", "--name", lab3.name, "host2")
    assert lab3.host_state("host2") == "stopped"
    assert lab_traces(lab3.name, [nspawn, *inside_pids])["pids_alive"] == []
    no_mux = (f"ansible_ssh_common_args='-o ConnectTimeout=3 -o ControlMaster=no "
              f"-o UserKnownHostsFile={lab3.inventory / '.known_hosts'}'")
    ping = lab3.ansible("host2", "-m", "ansible.builtin.ping", "-e", no_mux)
    assert ping.returncode != 0 and "UNREACHABLE" in ping.stdout
    others = lab3.ansible("host1:host3", "-m", "ansible.builtin.ping")
    assert others.returncode == 0

    lab("start", "--name", lab3.name, "host2")
    assert lab3.host_state("host2") == "running"
    assert lab3.ssh("host2", "cat /root/marker").stdout.strip() == "kept"
    ping = lab3.ansible("host2", "-m", "ansible.builtin.ping")
    assert ping.returncode == 0, ping.stdout


def test_partition_cuts_a_host_off_and_heal_restores_it(lab3: Lab) -> None:
    probe = "python3 -c \"import socket; socket.create_connection(('host3', 22), 2); print('reached')\""
    assert lab3.ssh("host1", probe).stdout.strip() == "reached"
    lab("partition", "--name", lab3.name, "host3")
    try:
        assert next(h for h in lab3.refresh()["hosts"] if h["host"] == "host3")["partitioned"]
        cut = lab3.ssh("host1", probe)
        assert cut.returncode != 0 and "reached" not in cut.stdout
        assert lab3.ssh("host3", "true", timeout=30).returncode != 0
        # the partitioned host keeps running: this is a network fault, not a power-off
        assert lab3.host_state("host3") == "running"
    finally:
        lab("heal", "--name", lab3.name, "host3")
    assert lab3.ssh("host1", probe).stdout.strip() == "reached"
    assert lab3.ansible("host3", "-m", "ansible.builtin.ping").returncode == 0


def test_up_refuses_a_name_already_running(lab3: Lab) -> None:
    again = lab("up", "--name", lab3.name, "--hosts", "1", check=False)
    assert again.returncode != 0
    assert f"lab '{lab3.name}' is running" in again.stderr and f"lab down --name {lab3.name}" in again.stderr
    assert again.stderr.count("\n") == 1


def test_a_second_lab_coexists_and_down_removes_everything_it_made(lab3: Lab) -> None:
    other = bring_up(lab_name("nxdown"), "--hosts", "2")
    assert other.status["subnet"] != lab3.status["subnet"]
    assert other.ansible("all", "-m", "ansible.builtin.ping").returncode == 0
    # the two labs cannot reach each other
    probe = f"python3 -c \"import socket; socket.create_connection(('{lab3.ip('host1')}', 22), 2)\""
    assert other.ssh("host1", probe).returncode != 0
    pids = all_lab_pids(lab_name("nxdown"))
    subnet = other.status["subnet"]
    assert len(pids) > 10
    before = lab_traces(lab_name("nxdown"), pids)
    assert before["netns"] and before["links"] and before["mounts"] and before["processes"]

    lab("down", "--name", lab_name("nxdown"))
    after = lab_traces(lab_name("nxdown"), pids)
    assert after == {k: [] for k in after}, after
    routes = subprocess.run(["ip", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    assert subnet not in routes
    # the first lab is untouched
    assert lab3.ansible("all", "-m", "ansible.builtin.ping").returncode == 0


@pytest.mark.parametrize("moment", ["bridge", "host booted"])
def test_down_cleans_up_after_an_up_killed_part_way(moment: str) -> None:
    require_lab_machine()
    name = lab_name("nxcrash")
    lab("down", "--name", name)
    state = Path(f"/var/lib/nxprovision/labs/{name}")
    up = subprocess.Popen(
        [sys.executable, "-m", "nxprovision_lab.cli", "up", "--hosts", "4", "--name", name],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    try:
        while True:
            if moment == "bridge" and lab_traces(name)["links"]:
                break
            if moment == "host booted" and (state / "pids" / "host-host1.pid").exists():
                break
            assert up.poll() is None, "up ended before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        up.send_signal(signal.SIGKILL)
    finally:
        up.wait(30)
    left = lab_traces(name)
    assert left["links"] and left["state_dir"]
    if moment == "host booted":
        assert left["processes"] and left["mounts"]

    lab("down", "--name", name)
    after = lab_traces(name)
    assert after == {k: [] for k in after}, after
