"""The compact cluster as a security review sees it from outside: what listens where (issue 14).

Runs on the session's shared compact lab (conftest.compact_cluster), the one test_deploy_compact deploys.
"""

from __future__ import annotations

import subprocess

import pytest
from conftest import Lab
from listeners import Listener, beyond_cluster, parse_ss

pytestmark = pytest.mark.lab

Deployment = tuple[Lab, subprocess.CompletedProcess[str]]

# Listeners allowed on every address, each with its reason. Everything else must be bound to the host's cluster
# address or to loopback.
WILDCARD_ALLOWED = {
    "sshd": "Ansible's way in; its hardening (keys only, allowed users) belongs to the operator's base image",
}


def _listeners(lab_: Lab, host: str) -> list[Listener]:
    r = lab_.ssh(host, "ss -Hltnp")
    assert r.returncode == 0, r.stderr
    return parse_ss(r.stdout)


def test_every_service_listens_on_the_cluster_address_only(compact_cluster: Deployment) -> None:
    lab_, first = compact_cluster
    assert first.returncode == 0, "the compact deploy failed; see test_deploy_compact"
    wide, seen = [], 0
    for h in lab_.status["hosts"]:
        listeners = _listeners(lab_, h["host"])
        seen += len(listeners)
        print(f"{h['host']} ({h['ip']}):", ", ".join(map(str, listeners)))
        wide += [f"{h['host']}: {ln}" for ln in beyond_cluster(listeners, h["ip"], set(WILDCARD_ALLOWED))]
    assert seen > 2 * len(lab_.status["hosts"]), "too few listeners seen: is ss reading the hosts?"
    assert wide == [], "listening beyond the cluster address:\n" + "\n".join(wide)
