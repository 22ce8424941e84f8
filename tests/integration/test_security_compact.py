"""The compact cluster as a security review sees it from outside: what listens where, and who gets through the
opt-in host firewall (issue 14).

Runs on the session's shared compact lab (conftest.compact_cluster), the one test_deploy_compact deploys. The
firewall test turns the firewall on and off again: this module sorts after every other user of that lab.
"""

from __future__ import annotations

import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import yaml
from cluster_checks import Deployed, recap, runningstatus, wait_for
from conftest import Lab, nxprovision
from listeners import Listener, beyond_cluster, parse_ss

from nxprovision.inventory import load_inventory
from nxprovision.model.cluster import build_cluster

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


# -- the opt-in host firewall (nx_firewall_enabled), turned on and off again on the same cluster --------------

Probe = tuple[str, str, str, int, str]  # (source host, target host, target address, port, label)


def _connects(lab_: Lab, source: str, address: str, port: int) -> bool:
    """A fresh TCP connection from a lab host (a dropped SYN times out: the firewall drops, it does not reject)."""
    r = lab_.ssh(source, f"timeout 3 bash -c '</dev/tcp/{address}/{port}' && echo open || echo closed")
    return r.stdout.strip().endswith("open")


def _connecting(lab_: Lab, probes: list[Probe]) -> list[bool]:
    """_connects for each probe, a few at a time: a dropped probe waits out its timeout."""
    with ThreadPoolExecutor(max_workers=6) as pool:
        return list(pool.map(lambda p: _connects(lab_, p[0], p[2], p[3]), probes))


def _connects_from_here(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=3):
            return True
    except OSError:
        return False


def _probes(fw: dict[str, Any], by_ip: dict[str, str]) -> tuple[list[Probe], list[Probe]]:
    """From the model's own firewall: per guarded port one host it admits and one it does not."""
    admitted, refused = [], []
    for host, part in fw["hosts"].items():
        own = next(ip for ip, h in by_ip.items() if h == host)
        for rule in part["rules"]:
            if rule["sources"] == "any":
                continue
            if rule["sources"]:
                admitted.append((by_ip[rule["sources"][0]], host, own, rule["port"], rule["label"]))
            stranger = next(h for ip, h in sorted(by_ip.items()) if ip not in rule["sources"] and h != host)
            refused.append((stranger, host, own, rule["port"], rule["label"]))
    return admitted, refused


def _set_firewall(lab_: Lab, enabled: bool) -> subprocess.CompletedProcess[str]:
    main_yml = lab_.inventory / "group_vars" / "all" / "main.yml"
    data = yaml.safe_load(main_yml.read_text())
    data["nx_firewall_enabled"] = enabled
    main_yml.write_text(yaml.safe_dump(data, sort_keys=False))
    return nxprovision("deploy", "-i", str(lab_.inventory), "--tags", "role::firewall", "--progress", "plain",
                       timeout=900)


def test_firewall_admits_each_port_only_from_the_hosts_that_need_it(compact_cluster: Deployment) -> None:
    lab_, first = compact_cluster
    assert first.returncode == 0, "the compact deploy failed; see test_deploy_compact"
    by_ip = {h["ip"]: h["host"] for h in lab_.status["hosts"]}
    d = Deployed.load(lab_.inventory)
    c = build_cluster(load_inventory(lab_.inventory))
    admitted, refused = _probes(c.derived["firewall"], by_ip)
    assert len(refused) >= 15 and len(admitted) >= 8, (admitted, refused)
    db1, lb1 = d.address("db1"), d.address("lb1")
    # Without the firewall every probe gets through: each one below can tell an open port from a guarded one.
    open_before = [p for p, ok in zip(refused, _connecting(lab_, refused), strict=True) if not ok]
    assert open_before == [], f"not listening before the firewall (the probe proves nothing): {open_before}"
    assert _connects_from_here(db1, 5432)
    try:
        on = _set_firewall(lab_, True)
        assert on.returncode == 0, on.stdout[-5000:] + on.stderr[-2000:]
        again = _set_firewall(lab_, True)
        assert again.returncode == 0 and all(r[1] == 0 for r in recap(again.stdout).values()), \
            f"a second run changed something: {recap(again.stdout)}"
        table = lab_.ssh("db1", "nft list table inet nxprovision")
        assert "policy drop" in table.stdout, table.stdout + table.stderr
        wrong = [f"{s} -> {t}:{port} ({label}) refused" for (s, t, _a, port, label), ok
                 in zip(admitted, _connecting(lab_, admitted), strict=True) if not ok]
        wrong += [f"{s} -> {t}:{port} ({label}) admitted" for (s, t, _a, port, label), ok
                  in zip(refused, _connecting(lab_, refused), strict=True) if ok]
        # from this machine (the lab's control address, no cluster host): sshd and the public frontend only
        wrong += ["control -> db1:5432 admitted"] if _connects_from_here(db1, 5432) else []
        wrong += [f"control -> lb1:{p} refused" for p in (22, d.cluster.derived["lb"]["frontend_port"])
                  if not _connects_from_here(lb1, p)]
        assert wrong == [], "\n".join(wrong)
        # Nuxeo still reaches its database, search, Kafka and S3 through the firewall
        _code, body = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(runningstatus(d.url)), 120,
                              "runningstatus 200 through the LB with the firewall on")
        assert all(v == "ok" for k, v in body.items() if k.endswith("Status")), body
    finally:
        off = _set_firewall(lab_, False)
    assert off.returncode == 0, off.stdout[-5000:] + off.stderr[-2000:]
    # off again: no table and no unit left on any host (nft itself must answer: an error would hide a table)
    check = "nft list tables && test ! -e /etc/systemd/system/nxprovision-firewall.service"
    with ThreadPoolExecutor(max_workers=6) as pool:
        left = dict(pool.map(lambda h: (h, lab_.ssh(h, check)), by_ip.values()))
    assert {h: r.stdout + r.stderr for h, r in left.items() if r.returncode or "nxprovision" in r.stdout} == {}
    assert _connects_from_here(db1, 5432)
