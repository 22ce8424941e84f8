"""Every secret the cluster needs is present (in the vault-encrypted secrets file)."""

from __future__ import annotations

from collections.abc import Iterator

from nxprovision.model.cluster import Cluster
from nxprovision.rules.finding import Finding, error, warning
from nxprovision.secrets import SECRET_SPECS, SECRETS_RELPATH


def _needed(c: Cluster, needed_for: str) -> bool:
    if needed_for == "always":
        return True
    if needed_for in ("postgresql", "mongodb"):
        return c.database == needed_for
    if needed_for == "s3":
        return bool(c.nuxeo_nodes) and "s3binaries" in c.derived["nuxeo"]["templates"]
    if needed_for == "seaweedfs":
        return c.derived["s3"]["mode"] == "seaweedfs" and bool(c.s3_hosts)
    if needed_for == "backup":
        return bool(c.derived.get("backup", {}).get("enabled"))
    if needed_for == "monitoring":
        return bool(c.monitoring_hosts)
    if needed_for == "distributed":
        return c.architecture == "distributed"
    return True


def check(c: Cluster) -> Iterator[Finding]:
    if not c.hosts:
        return
    missing = [s.name for s in SECRET_SPECS
               if _needed(c, s.needed_for) and not str(c.settings.get(s.name) or "").strip()]
    if missing:
        yield error("secrets.missing", "secrets", f"missing or empty: {', '.join(missing)}",
                    f"run `nxprovision init --architecture {c.architecture or 'ARCH'} <inventory dir>` (adds only "
                    f"missing secrets to {SECRETS_RELPATH}), or pass --vault-password-file if they are vaulted",
                    c.view.source)
    from nxprovision.rotation import pending_rotations

    for r in pending_rotations(c.settings):
        yield warning("secrets.rotation_pending", "secrets",
                      f"a rotation of {r.title} is pending: the vault keeps the previous value beside the new one",
                      f"finish it with `nxprovision secrets rotate -i INVENTORY {r.key}` (or --rollback)",
                      c.view.source)
