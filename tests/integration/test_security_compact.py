"""The compact cluster as a security review sees it from outside: what listens where (issue 14)."""

from __future__ import annotations

import subprocess

import pytest
from conftest import Lab

pytestmark = pytest.mark.lab

Deployment = tuple[Lab, subprocess.CompletedProcess[str]]

# Listeners allowed on every address, each with its reason. Everything else must be bound to the host's cluster
# address or to loopback.
WILDCARD_ALLOWED = {
    "sshd": "Ansible's way in; its hardening (keys only, allowed users) belongs to the operator's base image",
}


def _listeners(lab_: Lab, host: str) -> list[tuple[str, str, str]]:
    """(address, port, process) of every listening TCP socket of a lab host."""
    r = lab_.ssh(host, "ss -Hltnp")
    assert r.returncode == 0, r.stderr
    out = []
    for line in r.stdout.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        addr, _, port = fields[3].rpartition(":")
        proc = fields[5].split('"')[1] if len(fields) > 5 and '"' in fields[5] else "?"
        out.append((addr.strip("[]"), port, proc))
    return out


def test_every_service_listens_on_the_cluster_address_only(compact_cluster: Deployment) -> None:
    lab_, first = compact_cluster
    assert first.returncode == 0, "the compact deploy failed; see test_deploy_compact"
    wide, seen = [], 0
    for h in lab_.status["hosts"]:
        for addr, port, proc in _listeners(lab_, h["host"]):
            seen += 1
            if addr in (h["ip"], "::1") or addr.startswith("127."):
                continue
            if proc in WILDCARD_ALLOWED:
                continue
            wide.append(f"{h['host']}: {proc} on {addr}:{port}")
    assert seen > 2 * len(lab_.status["hosts"]), "too few listeners seen: is ss reading the hosts?"
    assert wide == [], "listening beyond the cluster address:\n" + "\n".join(wide)
