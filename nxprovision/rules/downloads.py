"""Vendor archives are unpacked as root: each must be checked against a checksum the role can get.

Every download URL gets a checksum in the model (the inventory's pinned one, else `<archive>.sha512` published
beside it), so a plain http:// mirror is allowed: what it serves is still checked before anything is unpacked.
These rules catch, before any host is touched, what would make that check impossible.
"""

from __future__ import annotations

from collections.abc import Iterator

from nxprovision.model.artifacts import (
    CHECKSUM_SETTINGS,
    PACKAGE_CHECKSUMS_SETTING,
    PUBLISHED_CHECKSUM_SUFFIX,
    VENDOR_BASE_URLS,
    checksum_problem,
)
from nxprovision.model.cluster import Cluster
from nxprovision.rules._where import of_setting
from nxprovision.rules.finding import Finding, error, warning

# Vendor sites whose published checksum is not a `sha512sum` line in <archive>.sha512 (Apache signs a
# `gpg --print-md` layout, MongoDB publishes .sha256, SeaweedFS's releases only .md5).
NO_USABLE_PUBLISHED_SUM = {"kafka": "the Apache archive's .sha512 is in gpg's layout, which cannot be read",
                           "mongodb": "the MongoDB download site publishes .sha256 files, not .sha512",
                           "seaweedfs": "SeaweedFS releases publish .md5 files only"}


def _products(c: Cluster) -> list[str]:
    """The archives this cluster downloads."""
    used = ["nuxeo"] if c.nuxeo_nodes else []
    if c.search_hosts:
        used.append("elasticsearch" if c.settings.get("search_distribution") == "elasticsearch" else "opensearch")
    if c.kafka_brokers:
        used.append("kafka")
    if c.database == "mongodb" and c.db_hosts:
        used.append("mongodb")
    if c.s3_hosts and str(c.settings.get("s3_mode", "seaweedfs")) == "seaweedfs":
        used.append("seaweedfs")
    return used


def check(c: Cluster) -> Iterator[Finding]:
    used = _products(c)
    for product in used:
        key = CHECKSUM_SETTINGS[product]
        # pinned per host or group too: hosts of another CPU architecture download another archive
        pins = {h: v for h in c.hosts if (v := c.view.hostvars.get(h, {}).get(key, c.settings.get(key)))}
        for pinned, host in {repr(v): (v, h) for h, v in pins.items()}.values():
            problem = checksum_problem(pinned)
            if problem:
                yield error("downloads.checksum", f"setting {key}", problem,
                            f"set it to sha512:<digest> (or sha256:<digest>) of the {product} archive, or remove it to "
                            f"use the {PUBLISHED_CHECKSUM_SUFFIX} file published beside the archive",
                            of_setting(c, key, host))
        if pins or c.settings.get(key):
            continue
        base = str(c.settings.get(f"{product}_download_base_url") or "").rstrip("/")
        vendor = VENDOR_BASE_URLS.get(product, "").rstrip("/")
        if product in NO_USABLE_PUBLISHED_SUM and vendor and base == vendor:
            yield warning("downloads.checksum", f"setting {key}",
                          f"is not set and {NO_USABLE_PUBLISHED_SUM[product]}: the deploy would stop at the "
                          "download, nothing unpacked",
                          f"pin {key}: sha512:<digest> (from the vendor's signed checksum), or point "
                          f"{product}_download_base_url at a mirror serving <archive>{PUBLISHED_CHECKSUM_SUFFIX}",
                          of_setting(c, f"{product}_download_base_url"))
    pins = c.settings.get(PACKAGE_CHECKSUMS_SETTING)
    if pins is not None and "nuxeo" in used:
        if not isinstance(pins, dict):
            yield error("downloads.checksum", f"setting {PACKAGE_CHECKSUMS_SETTING}", "is not a mapping",
                        "map each package name to sha512:<digest>", of_setting(c, PACKAGE_CHECKSUMS_SETTING))
        else:
            packages = set(c.settings.get("nuxeo_packages") or [])
            for name, value in pins.items():
                problem = checksum_problem(value)
                if problem:
                    yield error("downloads.checksum", f"setting {PACKAGE_CHECKSUMS_SETTING}.{name}", problem,
                                "set it to sha512:<digest> of the package zip",
                                of_setting(c, PACKAGE_CHECKSUMS_SETTING))
                elif name not in packages:
                    yield warning("downloads.checksum", f"setting {PACKAGE_CHECKSUMS_SETTING}.{name}",
                                  "names a package that nuxeo_packages does not install",
                                  "remove it, or add the package to nuxeo_packages",
                                  of_setting(c, PACKAGE_CHECKSUMS_SETTING))
