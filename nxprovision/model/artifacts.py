"""Vendor release archives: file names and paths under a download base URL.

The same relative layout as each vendor's download site, so that an air-gapped mirror (and the
lab's mirror) is a plain copy of the vendor paths. Roles receive the resulting URLs from the model.
"""

from __future__ import annotations

# product -> (path template relative to the base URL). {v} is the version.
ARTIFACT_PATHS: dict[str, str] = {
    # Nuxeo: distributions and offline marketplace packages as a Nuxeo mirror lays them out.
    "nuxeo": "nuxeo-server-{v}-tomcat.zip",
    "nuxeo_package": "packages/{name}-{v}.zip",
    # Apache Kafka: <base>/<version>/kafka_2.13-<version>.tgz (as the Apache archive).
    "kafka": "{v}/kafka_2.13-{v}.tgz",
    # OpenSearch: <base>/<version>/opensearch-<version>-linux-x64.tar.gz (as the OpenSearch artifacts site).
    "opensearch": "{v}/opensearch-{v}-linux-x64.tar.gz",
    # Elasticsearch: <base>/elasticsearch-<version>-linux-x86_64.tar.gz
    "elasticsearch": "elasticsearch-{v}-linux-x86_64.tar.gz",
    # MongoDB: <base>/mongodb-linux-x86_64-debian12-<version>.tgz (as the MongoDB download site).
    "mongodb": "mongodb-linux-x86_64-debian12-{v}.tgz",
    # SeaweedFS: <base>/<version>/linux_amd64.tar.gz (as its GitHub releases).
    "seaweedfs": "{v}/linux_amd64.tar.gz",
}

# Vendor download sites, the production defaults. Nuxeo has none: its distributions need an account.
VENDOR_BASE_URLS: dict[str, str] = {
    "kafka": "https://archive.apache.org/dist/kafka",
    "opensearch": "https://artifacts.opensearch.org/releases/bundle/opensearch",
    "elasticsearch": "https://artifacts.elastic.co/downloads/elasticsearch",
    "mongodb": "https://fastdl.mongodb.org/linux",
    "seaweedfs": "https://github.com/seaweedfs/seaweedfs/releases/download",
    "nuxeo": "",
}


def java_archive_path(version: str) -> str:
    """A JRE archive as Eclipse Temurin's releases lay it out: `jdk-21.0.5+11/OpenJDK21U-jre_x64_linux_hotspot_
    21.0.5_11.tar.gz` (the release tag, then the file), unpacking to `jdk-21.0.5+11-jre/`."""
    major = version.split(".", 1)[0]
    return f"jdk-{version}/OpenJDK{major}U-jre_x64_linux_hotspot_{version.replace('+', '_')}.tar.gz"


def artifact_path(product: str, version: str, name: str = "") -> str:
    if product == "java":
        return java_archive_path(version)
    return ARTIFACT_PATHS[product].format(v=version, name=name)


def artifact_url(base_url: str, product: str, version: str, name: str = "") -> str:
    return base_url.rstrip("/") + "/" + artifact_path(product, version, name)


# Every archive is checked before it is unpacked. Without a checksum pinned in the inventory
# (<product>_archive_checksum, nuxeo_package_checksums), the one published beside the archive is used:
# <archive URL>.sha512 in `sha512sum` format (what the lab's mirror and a plain mirror copy serve).
PUBLISHED_CHECKSUM_ALGORITHM = "sha512"
PUBLISHED_CHECKSUM_SUFFIX = ".sha512"
CHECKSUM_HEX_LENGTHS: dict[str, int] = {"sha256": 64, "sha384": 96, "sha512": 128}
CHECKSUM_SETTINGS: dict[str, str] = {p: f"{p}_archive_checksum" for p in
                                     ("nuxeo", "kafka", "opensearch", "elasticsearch", "mongodb", "seaweedfs",
                                      "java")}
PACKAGE_CHECKSUMS_SETTING = "nuxeo_package_checksums"


def published_checksum_url(url: str) -> str:
    return url + PUBLISHED_CHECKSUM_SUFFIX


def archive_checksum(url: str, pinned: object = "") -> str:
    """get_url's `checksum` for an archive: the inventory's pinned `algorithm:hex` (or `algorithm:URL` of a
    checksum file), else the published `<url>.sha512`."""
    text = str(pinned or "").strip()
    if text:
        algorithm, _, value = text.partition(":")
        return f"{algorithm.lower()}:{value.strip().lower() if '://' not in value else value.strip()}"
    return f"{PUBLISHED_CHECKSUM_ALGORITHM}:{published_checksum_url(url)}"


def checksum_problem(value: object) -> str:
    """Why a pinned checksum cannot be used ('' when it can)."""
    text = str(value or "").strip()
    algorithm, sep, digest = text.partition(":")
    if not sep:
        return f"'{text}' is not <algorithm>:<hex digest>"
    if algorithm.lower() not in CHECKSUM_HEX_LENGTHS:
        return f"algorithm '{algorithm}' is not one of {', '.join(CHECKSUM_HEX_LENGTHS)}"
    if "://" in digest:
        return "" if digest.split("://", 1)[0].lower() in ("https", "file") else \
            f"the checksum file {digest} must come over https (or file://), not from where the archive may be forged"
    want = CHECKSUM_HEX_LENGTHS[algorithm.lower()]
    if len(digest) != want or any(ch not in "0123456789abcdefABCDEF" for ch in digest):
        return f"a {algorithm} digest is {want} hexadecimal characters"
    return ""


def archive_root_dir(product: str, version: str) -> str:
    """Top-level directory inside each archive, as the vendor ships it."""
    return {
        "nuxeo": f"nuxeo-server-{version}-tomcat",
        "kafka": f"kafka_2.13-{version}",
        "opensearch": f"opensearch-{version}",
        "elasticsearch": f"elasticsearch-{version}",
        "mongodb": f"mongodb-linux-x86_64-debian12-{version}",
        "seaweedfs": "",  # the SeaweedFS tarball holds the `weed` binary at its root
        "java": f"jdk-{version}-jre",
    }[product]
