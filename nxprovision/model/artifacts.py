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


def artifact_path(product: str, version: str, name: str = "") -> str:
    return ARTIFACT_PATHS[product].format(v=version, name=name)


def artifact_url(base_url: str, product: str, version: str, name: str = "") -> str:
    return base_url.rstrip("/") + "/" + artifact_path(product, version, name)


def archive_root_dir(product: str, version: str) -> str:
    """Top-level directory inside each archive, as the vendor ships it."""
    return {
        "nuxeo": f"nuxeo-server-{version}-tomcat",
        "kafka": f"kafka_2.13-{version}",
        "opensearch": f"opensearch-{version}",
        "elasticsearch": f"elasticsearch-{version}",
        "mongodb": f"mongodb-linux-x86_64-debian12-{version}",
        "seaweedfs": "",  # the SeaweedFS tarball holds the `weed` binary at its root
    }[product]
