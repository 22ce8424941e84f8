"""The compact lab's listener check (tests/integration/test_security_compact.py) can fail: fed ss output with a
wildcard listener, its helper names it."""

from __future__ import annotations

from tests.integration.listeners import Listener, beyond_cluster, parse_ss

CLUSTER_IP = "10.77.0.12"

SS = """\
LISTEN 0      4096      10.77.0.12:8080      0.0.0.0:*    users:(("java",pid=812,fd=41))
LISTEN 0      128          0.0.0.0:22        0.0.0.0:*    users:(("sshd",pid=90,fd=3))
LISTEN 0      128             [::]:22           [::]:*    users:(("sshd",pid=90,fd=4))
LISTEN 0      4096               *:9333            *:*    users:(("weed",pid=300,fd=7))
LISTEN 0      4096          [::]:18080          [::]:*    users:(("weed",pid=301,fd=9))
LISTEN 0      4096   127.0.0.53%lo:53        0.0.0.0:*    users:(("systemd-resolve",pid=70,fd=14))
LISTEN 0      244        127.0.0.1:5432      0.0.0.0:*    users:(("postgres",pid=400,fd=6))
LISTEN 0      244            [::1]:5432         [::]:*    users:(("postgres",pid=400,fd=7))
LISTEN 0      50    [::ffff:10.77.0.12]:9092    *:*    users:(("java",pid=500,fd=100))
LISTEN 0      50       10.77.0.99:8404       0.0.0.0:*    users:(("haproxy",pid=600,fd=5))
LISTEN 0      50       0.0.0.0:7000          0.0.0.0:*
"""


def test_parse_ss_reads_address_port_and_process() -> None:
    listeners = parse_ss(SS)
    assert len(listeners) == 11
    assert listeners[0] == Listener("10.77.0.12", "8080", "java")
    assert Listener("::", "22", "sshd") in listeners
    assert Listener("127.0.0.53", "53", "systemd-resolve") in listeners
    assert Listener("0.0.0.0", "7000", "?") in listeners  # ss could not name the process


def test_wildcards_and_foreign_addresses_are_named() -> None:
    wide = [str(ln) for ln in beyond_cluster(parse_ss(SS), CLUSTER_IP, {"sshd"})]
    assert wide == [
        "weed on *:9333",
        "weed on [::]:18080",
        "haproxy on 10.77.0.99:8404",  # bound, but not to this host's cluster address
        "? on 0.0.0.0:7000",
    ]


def test_sshd_is_named_when_not_allowed() -> None:
    wide = beyond_cluster(parse_ss(SS), CLUSTER_IP)
    assert Listener("0.0.0.0", "22", "sshd") in wide and Listener("::", "22", "sshd") in wide


def test_cluster_address_and_loopback_pass() -> None:
    ok = "\n".join(line for line in SS.splitlines() if "java" in line or "postgres" in line or "resolve" in line)
    assert beyond_cluster(parse_ss(ok), CLUSTER_IP) == []


def test_header_and_non_listen_lines_are_skipped() -> None:
    text = "State Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n" + SS.splitlines()[0]
    assert parse_ss(text) == [Listener("10.77.0.12", "8080", "java")]
