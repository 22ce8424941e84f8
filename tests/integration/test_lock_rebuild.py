"""A second environment built from the first one's version lock ends with the same versions, host by host (issue
18): lab A is deployed and locked (`nxprovision lock`); lab B, a fresh lab of the same architecture, gets A's lock
beside its inventory before its first deploy. Every package the lock holds, and every vendor archive the roles
installed (the version each role records in its local fact), is then the same on B's host as on A's, and B's apt
holds every locked package with a pin.

Slow (two labs of their own): `make test-long`, not CI.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import Lab, bring_up, lab, lab_name, nxprovision, require_lab_machine
from test_deploy_compact import deploy, recap

from nxprovision import versionlock
from nxprovision.inventory import inventory_dir

pytestmark = [pytest.mark.lab, pytest.mark.slow]

HOST = "nuxeo1"
PINS = "/etc/apt/preferences.d/nxprovision-lock"
FACTS = "/etc/ansible/facts.d"


def locked_packages(lock: dict) -> dict[str, str]:
    """package -> version of every entry of a one-host lock (its release, its profile and `all`)."""
    [(_release, profiles)] = lock["releases"].items()
    out: dict[str, str] = {}
    for pkgs in profiles.values():
        out.update(pkgs)
    return out


def installed(lab_: Lab, packages: list[str]) -> dict[str, str]:
    out = lab_.ssh(HOST, "dpkg-query -W -f '${Package} ${Version}\\n' " + " ".join(sorted(packages)))
    return dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)


def archive_versions(lab_: Lab) -> dict[str, dict[str, str]]:
    """fact file -> its `version` and `archive`: what each role says it installed from a vendor archive."""
    out = lab_.ssh(HOST, f"for f in {FACTS}/*.fact; do case $f in */nx_*) continue;; esac; "
                         "printf '%s\\t' \"$(basename $f .fact)\"; tr -d '\\n' < $f; echo; done")
    versions: dict[str, dict[str, str]] = {}
    for line in out.stdout.splitlines():
        name, _, text = line.partition("\t")
        fact = json.loads(text or "{}")
        picked = {k: str(fact[k]) for k in ("version", "archive") if fact.get(k)}
        if picked:
            versions[name] = picked
    return versions


def test_a_second_lab_built_from_the_first_labs_lock_has_the_same_versions() -> None:
    require_lab_machine()
    first, second = lab_name("locka"), lab_name("lockb")
    try:
        a = bring_up(first, "--architecture", "single")
        built = deploy(a.inventory)
        assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-2000:]
        wrote = nxprovision("lock", "-i", str(a.inventory), timeout=600)
        a_lock_path = versionlock.path_of(inventory_dir(a.inventory))
        assert wrote.returncode == 0 and a_lock_path.exists(), wrote.stdout[-3000:] + wrote.stderr
        lock = yaml.safe_load(a_lock_path.read_text())["nx_version_lock"]
        pkgs = locked_packages(lock)
        assert len(pkgs) > 10, sorted(pkgs)

        b = bring_up(second, "--architecture", "single")
        b_lock_path = versionlock.path_of(inventory_dir(b.inventory))
        b_lock_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(a_lock_path, b_lock_path)
        rebuilt = deploy(b.inventory)
        assert rebuilt.returncode == 0, rebuilt.stdout[-4000:] + rebuilt.stderr[-2000:]
        assert recap(rebuilt.stdout)[HOST][3] == 0

        # host by host (one host each): every locked package, every archive
        on_a, on_b = installed(a, list(pkgs)), installed(b, list(pkgs))
        assert on_a == pkgs, {p: (v, on_a.get(p)) for p, v in pkgs.items() if on_a.get(p) != v}
        assert on_b == on_a, {p: (v, on_b.get(p)) for p, v in on_a.items() if on_b.get(p) != v}
        archives_a, archives_b = archive_versions(a), archive_versions(b)
        assert {"nuxeo", "kafka", "opensearch", "seaweedfs"} <= set(archives_a), archives_a
        assert archives_b == archives_a
        # held, not merely equal on the day: apt pins every locked package on B
        pins = b.ssh(HOST, f"cat {PINS}").stdout
        assert all(f"Package: {p}\nPin: version {v}" in pins for p, v in pkgs.items()), pins[:2000]
        assert Path(b_lock_path).read_text() == a_lock_path.read_text()  # the deploy kept the lock as given
        again = nxprovision("lock", "-i", str(b.inventory), timeout=600)
        assert again.returncode == 0 and "is up to date" in again.stdout, again.stdout[-2000:]
    finally:
        for name in (first, second):
            lab("down", "--name", name, check=False)
