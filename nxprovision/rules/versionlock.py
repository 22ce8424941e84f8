"""The inventory's version lock (`nx_version_lock`, written by `nxprovision lock`) must be one: a hand edit that
broke its shape would otherwise fail the deploy on every host at its first task, or pin nothing."""

from __future__ import annotations

from collections.abc import Iterator

from nxprovision import versionlock
from nxprovision.model.cluster import Cluster
from nxprovision.rules._where import of_setting
from nxprovision.rules.finding import Finding, error


def check(c: Cluster) -> Iterator[Finding]:
    for host, hv in c.view.hostvars.items():
        if versionlock.VARIABLE not in hv:
            continue
        problem = versionlock.shape_problem(hv[versionlock.VARIABLE])
        if problem:
            yield error("versions.lock", f"setting {versionlock.VARIABLE}", f"not a version lock: {problem}",
                        "restore the lock file from version control, or delete it and run `nxprovision lock -i "
                        "INVENTORY` to write it again from the hosts",
                        of_setting(c, versionlock.VARIABLE, host))
            return
