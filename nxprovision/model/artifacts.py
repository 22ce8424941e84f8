"""Vendor release archives: file names and paths under a download base URL.

The same relative layout as each vendor's download site, so that an air-gapped mirror (and the
lab's mirror) is a plain copy of the vendor paths. Roles receive the resulting URLs from the model.
"""

from __future__ import annotations

from dataclasses import dataclass

# The CPU architectures nxprovision provisions, named as the kernel (`uname -m`) and Ansible's
# `ansible_architecture` name them. The inventory says each host's in nx_cpu_arch.
CPU_ARCHES: tuple[str, ...] = ("x86_64", "aarch64")
DEFAULT_CPU_ARCH = "x86_64"


@dataclass(frozen=True)
class Platform:
    """What a host's archives are built for: its OS release (nx_os_release) and CPU architecture (nx_cpu_arch)."""

    os_release: str = "debian12"
    cpu_arch: str = DEFAULT_CPU_ARCH


# product -> (path template relative to the base URL). {v} is the version, {arch} the vendor's name for the CPU
# architecture (ARCH_NAMES), {build} MongoDB's name for the OS build (mongodb_build).
ARTIFACT_PATHS: dict[str, str] = {
    # Nuxeo: distributions and offline marketplace packages as a Nuxeo mirror lays them out.
    "nuxeo": "nuxeo-server-{v}-tomcat.zip",
    "nuxeo_package": "packages/{name}-{v}.zip",
    # Apache Kafka: <base>/<version>/kafka_2.13-<version>.tgz (as the Apache archive), for every architecture.
    "kafka": "{v}/kafka_2.13-{v}.tgz",
    # OpenSearch: <base>/<version>/opensearch-<version>-linux-<x64|arm64>.tar.gz (as the OpenSearch artifacts site).
    "opensearch": "{v}/opensearch-{v}-linux-{arch}.tar.gz",
    # Elasticsearch: <base>/elasticsearch-<version>-linux-<x86_64|aarch64>.tar.gz
    "elasticsearch": "elasticsearch-{v}-linux-{arch}.tar.gz",
    # MongoDB: <base>/mongodb-linux-<x86_64|aarch64>-<build>-<version>.tgz (as the MongoDB download site).
    "mongodb": "mongodb-linux-{arch}-{build}-{v}.tgz",
    # SeaweedFS: <base>/<version>/linux_<amd64|arm64>.tar.gz (as its GitHub releases).
    "seaweedfs": "{v}/linux_{arch}.tar.gz",
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

# product -> CPU architecture -> the vendor's word for it in the archive's name (docs/decisions.md, "Archive names
# per release and CPU architecture", gives each vendor's page). A product not here ships one archive for all.
ARCH_NAMES: dict[str, dict[str, str]] = {
    "opensearch": {"x86_64": "x64", "aarch64": "arm64"},
    "elasticsearch": {"x86_64": "x86_64", "aarch64": "aarch64"},
    "mongodb": {"x86_64": "x86_64", "aarch64": "aarch64"},
    "seaweedfs": {"x86_64": "amd64", "aarch64": "arm64"},
    "java": {"x86_64": "x64", "aarch64": "aarch64"},
}

# product -> CPU architecture -> the first version published for it; absent: every version nxprovision deploys.
# Elasticsearch's aarch64 archives start with 7.8.0 (its 7.x archives before that are x86_64 only).
ARCH_SINCE: dict[str, dict[str, str]] = {"elasticsearch": {"aarch64": "7.8.0"}}


@dataclass(frozen=True)
class MongoBuild:
    """The MongoDB build a host of one OS release and CPU architecture gets."""

    name: str  # MongoDB's name for the build in the archive's name: debian12
    since: str  # the first MongoDB release published as that build
    native: bool  # False: MongoDB publishes no build for this release; the nearest older one is used, unsupported


# (nx_os_release, nx_cpu_arch) -> the build. MongoDB publishes Debian builds for x86_64 only (its platform support
# pages list Debian 11 and 12 on x86_64 for 7.0 and 8.0, and aarch64 builds for Ubuntu, RHEL and Amazon Linux
# only); Debian 12 builds exist from 7.0.3. Debian 13 has none: its hosts run the Debian 12 build, whose libraries
# (glibc, libssl3, libcurl4, liblzma5) trixie keeps under the same sonames. A pair missing here has no build.
MONGODB_BUILDS: dict[tuple[str, str], MongoBuild] = {
    ("debian12", "x86_64"): MongoBuild("debian12", "7.0.3", True),
    ("debian13", "x86_64"): MongoBuild("debian12", "7.0.3", False),
}


def _dotted(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit()) if piece[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def arch_name(product: str, platform: Platform) -> str:
    """The vendor's word for the platform's architecture ('' for an architecture nxprovision does not know)."""
    return ARCH_NAMES.get(product, {}).get(platform.cpu_arch, "")


def mongodb_build(platform: Platform) -> MongoBuild | None:
    return MONGODB_BUILDS.get((platform.os_release, platform.cpu_arch))


def archive_problem(product: str, version: str, platform: Platform) -> str:
    """Why the vendor publishes no archive of this version for the platform ('' when it does)."""
    if product not in ARCH_NAMES:
        return ""
    if platform.cpu_arch not in ARCH_NAMES[product]:
        return f"nxprovision knows no {product} archive for CPU architecture '{platform.cpu_arch}'"
    since = ARCH_SINCE.get(product, {}).get(platform.cpu_arch)
    if since and _dotted(version) < _dotted(since):
        return f"{product} publishes {platform.cpu_arch} archives from {since} on, not for {version}"
    if product == "mongodb":
        build = mongodb_build(platform)
        if build is None:
            debian = sorted({r for r, a in MONGODB_BUILDS if a == platform.cpu_arch})
            return (f"MongoDB publishes no build for {platform.os_release} on {platform.cpu_arch}"
                    + (f" (nxprovision knows builds for {', '.join(debian)} on it)" if debian else
                       " (its Debian builds are x86_64 only)"))
        if _dotted(version) < _dotted(build.since):
            return (f"MongoDB publishes its {build.name} build from {build.since} on, not for {version} "
                    f"({platform.os_release} on {platform.cpu_arch})")
    return ""


def _fields(product: str, version: str, platform: Platform) -> dict[str, str]:
    arch = arch_name(product, platform) or platform.cpu_arch
    build = mongodb_build(platform) if product == "mongodb" else None
    # without a published build the name still follows the release (validate refuses it before any download)
    return {"v": version, "arch": arch, "build": build.name if build else platform.os_release}


def java_archive_path(version: str, platform: Platform | None = None) -> str:
    """A JRE archive as Eclipse Temurin's releases lay it out: `jdk-21.0.5+11/OpenJDK21U-jre_x64_linux_hotspot_
    21.0.5_11.tar.gz` (the release tag, then the file; `aarch64` in place of `x64` on arm64), unpacking to
    `jdk-21.0.5+11-jre/`."""
    major = version.split(".", 1)[0]
    arch = arch_name("java", platform or Platform()) or (platform or Platform()).cpu_arch
    return f"jdk-{version}/OpenJDK{major}U-jre_{arch}_linux_hotspot_{version.replace('+', '_')}.tar.gz"


def artifact_path(product: str, version: str, name: str = "", platform: Platform | None = None) -> str:
    if product == "java":
        return java_archive_path(version, platform)
    return ARTIFACT_PATHS[product].format(name=name, **_fields(product, version, platform or Platform()))


def artifact_url(base_url: str, product: str, version: str, name: str = "", platform: Platform | None = None) -> str:
    return base_url.rstrip("/") + "/" + artifact_path(product, version, name, platform)


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


def archive_root_dir(product: str, version: str, platform: Platform | None = None) -> str:
    """Top-level directory inside each archive, as the vendor ships it."""
    if product == "mongodb":
        # MongoDB's archive unpacks to its own name: mongodb-linux-<arch>-<build>-<version>/
        return artifact_path(product, version, platform=platform).removesuffix(".tgz")
    return {
        "nuxeo": f"nuxeo-server-{version}-tomcat",
        "kafka": f"kafka_2.13-{version}",
        "opensearch": f"opensearch-{version}",
        "elasticsearch": f"elasticsearch-{version}",
        "seaweedfs": "",  # the SeaweedFS tarball holds the `weed` binary at its root
        "java": f"jdk-{version}-jre",
    }[product]
