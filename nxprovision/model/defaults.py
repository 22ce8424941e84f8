"""Inventory-level settings (group_vars/all): their defaults and what each is for.

The model reads defaults from here; `init` writes them, commented, into new inventories.
Role-level knobs (`haproxy_*`, `nuxeo_*`, ...) live in each role's defaults/main.yml instead.
"""

from __future__ import annotations

from typing import Any

# name -> (default, comment). Order is the order written by `init`.
SAMPLE_GROUP_VARS: dict[str, tuple[Any, str]] = {
    "nx_architecture": ("compact", "Reference architecture: single | compact | distributed."),
    "nx_cluster_name": ("nuxeo", "A short name for this cluster (letters, digits, dashes)."),
    "nx_public_url": (
        "https://nuxeo.example.com/nuxeo",
        "URL users reach Nuxeo at: the load balancer (or its virtual IP) with the /nuxeo path.\n"
        "https:// ends TLS on the load balancer (nx_tls_enabled), which redirects http:// to it.",
    ),
    "nx_vip": (
        "",
        "Virtual IP shared by the two load balancers (distributed architecture; keepalived VRRP).",
    ),
    "nx_database": ("postgresql", "Database flavour: postgresql | mongodb (the matching group holds its hosts)."),
    "nx_os_release": (
        "debian13",
        "The hosts' OS release: debian12 | debian13 (set it per host for a mixed cluster). validate checks it\n"
        "against the OS releases nxprovision supports for nuxeo_version (docs/compatibility.md).",
    ),
    "nx_cpu_arch": (
        "x86_64",
        "The hosts' CPU architecture: x86_64 | aarch64 (set it per host or group when they differ). The vendor\n"
        "archives are named after it and nx_os_release; prechecks and the deploy stop on a host whose own differs.",
    ),
    "nuxeo_version": ("2025.9", "Nuxeo LTS version with its hotfix level (LTS 2021.x, 2023.x or 2025.x)."),
    "nuxeo_packages": (
        ["nuxeo-web-ui", "amazon-s3-online-storage"],
        "Marketplace packages, identical on every Nuxeo node (installed offline from the mirror).",
    ),
    "nuxeo_download_base_url": (
        "",
        "Where nuxeo-server-<version>-tomcat.zip and package zips are fetched from (your mirror:\n"
        "Nuxeo LTS distributions need a Nuxeo Online Services account to download).",
    ),
    "java_download_base_url": (
        "",
        "Only for Nuxeo nodes on an OS release without Nuxeo's OpenJDK (LTS 2025 on Debian 12): your mirror of\n"
        "Eclipse Temurin's releases, jdk-<java_version>/OpenJDK21U-jre_<x64|aarch64>_linux_hotspot_<version>.tar.gz.",
    ),
    "java_version": ("", "The JRE release taken from java_download_base_url, e.g. 21.0.5+11."),
    "postgresql_version": (
        "17",
        "PostgreSQL major version from the distribution's packages (Debian 13 ships 17, Debian 12 ships 15).",
    ),
    "mongodb_version": ("7.0.14", "MongoDB server version (release archive), when nx_database is mongodb."),
    "search_distribution": ("opensearch", "Search cluster product: opensearch | elasticsearch."),
    "search_version": ("1.3.20", "Search cluster version."),
    "kafka_version": ("3.6.2", "Apache Kafka version (release archive, Scala 2.13 build)."),
    "kafka_mode": (
        "auto",
        "auto | kraft | zookeeper. auto = KRaft from Nuxeo LTS 2023.33 on, ZooKeeper before.",
    ),
    "s3_mode": (
        "seaweedfs",
        "seaweedfs = self-hosted S3 on the `s3` hosts; external = an existing S3 endpoint (s3_endpoint).",
    ),
    "s3_endpoint": ("", "External S3 endpoint URL (only with s3_mode: external)."),
    "s3_bucket": ("nuxeo-binaries", "Bucket holding Nuxeo's binaries, shared by every node."),
    "s3_region": ("us-east-1", "S3 region name."),
    "nx_tls_enabled": (
        True,
        "TLS: HTTPS on the load balancers (with an https nx_public_url) and Nuxeo -> PostgreSQL over verified TLS.\n"
        "Certificates come from the cluster's CA (`nxprovision certs init` puts it in .pki/, the key vault-encrypted)\n"
        "or from your files: per host nx_tls_cert_file / nx_tls_key_file, and nx_tls_ca_cert_file for their CA.",
    ),
    "nx_tls_search": (
        True,
        "With nx_tls_enabled: Nuxeo -> search cluster over https (node certificates on the REST port).",
    ),
    "nx_tls_kafka": (True, "With nx_tls_enabled: Nuxeo -> Kafka over an SSL listener (broker certificates)."),
    "nx_tls_s3": (
        True,
        "With nx_tls_enabled: the self-hosted S3 store (s3_mode: seaweedfs) serves its API over https only.",
    ),
    "nx_tls_ca_cert_file": (".pki/ca.crt", "The CA certificate every component trusts (relative to this inventory)."),
    "nx_tls_ca_key_file": (".pki/ca.key", "The CA's private key, vault-encrypted (only to issue certificates)."),
    "nx_tls_truststore_password": (
        "changeit",
        "Password of the Nuxeo nodes' trust store (JKS holding the CA certificate only: it guards integrity,\n"
        "not secrecy).",
    ),
    "nx_tls_cert_days": (365, "Validity of the certificates the CA issues, in days."),
    "nx_tls_renew_days": (
        30,
        "Certificates expiring within this many days are re-issued by deploy and `nxprovision certs renew`,\n"
        "and reported by `nxprovision certs check`.",
    ),
    "nx_compat_overrides": (
        {},
        "Components knowingly run outside Nuxeo's compatibility matrix, each with the reason.",
    ),
}

# Where the other vendor archives come from: the vendor's own download site unless the inventory names a mirror
# (model/artifacts.py, VENDOR_BASE_URLS). Not written by `init`; set the ones a cluster uses to point its hosts at
# a mirror (the README's "Security on the day of hand-over": every archive is checked against a SHA-512).
MIRROR_SETTINGS: dict[str, str] = {
    "kafka_download_base_url": "Apache Kafka archives, <base>/<version>/kafka_2.13-<version>.tgz.",
    "opensearch_download_base_url": "OpenSearch archives, <base>/<version>/opensearch-<version>-linux-<arch>.tar.gz.",
    "elasticsearch_download_base_url": "Elasticsearch archives (search_distribution: elasticsearch).",
    "mongodb_download_base_url": "MongoDB server archives (nx_database: mongodb).",
    "seaweedfs_download_base_url": "SeaweedFS release archives, <base>/<version>/linux_<amd64|arm64>.tar.gz.",
}

# Written into new inventories but never assumed: the operator must say these.
REQUIRED_SETTINGS: frozenset[str] = frozenset({"nx_architecture", "nx_public_url", "nuxeo_download_base_url"})
SAMPLE_ONLY: dict[str, Any] = {"nuxeo_download_base_url": "https://mirror.example.com/nuxeo"}

DEFAULTS: dict[str, Any] = {
    k: ("" if k in REQUIRED_SETTINGS else v) for k, (v, _c) in SAMPLE_GROUP_VARS.items()
}
# New inventories say `nx_tls_enabled: true`; one written before TLS existed keeps running without it.
DEFAULTS["nx_tls_enabled"] = False
# New inventories say LTS 2025 on Debian 13. One written before nx_os_release existed describes the Debian 12 hosts
# and LTS 2023 of its time, with PostgreSQL 15 and the matrix exception that came with it: it keeps meaning that.
LEGACY_DEFAULTS: dict[str, Any] = {
    "nx_os_release": "debian12",
    "postgresql_version": "15",
    "nx_compat_overrides": {"postgresql": "Debian 12 packages PostgreSQL 15; Nuxeo's LTS 2023 matrix lists 11-13."},
}
DEFAULTS.update(LEGACY_DEFAULTS)
