"""The stand-in `OpenJDK21U-jre_x64_linux_hotspot_<v>.tar.gz`: Eclipse Temurin's JRE layout, with a `java` that
answers `-version` as that JRE does and runs no Java program. The lab's Nuxeo stand-in is a Python program: what it
needs of Java is what nuxeoctl checks (the JVM's major version, from JAVA_HOME's `release` file), so a role that
installs the wrong JRE, or points JAVA_HOME elsewhere, fails in the lab."""

from __future__ import annotations

import tempfile
from pathlib import Path

from nxprovision.model.artifacts import archive_root_dir
from nxprovision_lab.standins import packing, tree
from nxprovision_lab.standins.spec import HERE, ArchiveSpec

# The JRE release the lab's mirror serves (Temurin 21.0.5+11, released 2024-10-15); the lab inventory names it.
VERSION = "21.0.5+11"
RELEASE = """\
IMPLEMENTOR="Eclipse Adoptium"
IMPLEMENTOR_VERSION="Temurin-{version}"
JAVA_RUNTIME_VERSION="{version}-LTS"
JAVA_VERSION="{short}"
JAVA_VERSION_DATE="2024-10-15"
OS_ARCH="x86_64"
OS_NAME="Linux"
IMAGE_TYPE="JRE"
"""

JAVA = """#!/bin/sh
# nxprovision lab stand-in for Temurin's JRE {version}: see STANDIN at the top of this installation.
case "$1" in
  -version|--version)
    echo 'openjdk version "{short}" 2024-10-15 LTS' >&2
    echo 'OpenJDK Runtime Environment Temurin-{version} (build {version}-LTS)' >&2
    echo 'OpenJDK 64-Bit Server VM Temurin-{version} (build {version}-LTS, mixed mode, sharing)' >&2
    exit 0 ;;
esac
echo "java: the nxprovision lab's stand-in JRE {version} runs no Java program (only -version)" >&2
exit 1
"""


def build(version: str, dest: Path) -> None:
    short = version.split("+", 1)[0]
    with tempfile.TemporaryDirectory(prefix="nx-jre-") as tmp:
        root = Path(tmp) / "tree"
        tree.write_file(root / "release", RELEASE.format(version=version, short=short))
        tree.write_file(root / "bin" / "java", JAVA.format(version=version, short=short), executable=True)
        tree.write_file(root / "lib" / "README", "The stand-in carries no class library.\n")
        tree.write_marker(root, "Eclipse Temurin JRE", version, "a POSIX shell script answering java -version",
                          ["bin/java answers -version as Temurin's does and runs no Java program."])
        packing.write_targz(root, dest, top=archive_root_dir("java", version))


def spec(version: str) -> ArchiveSpec:
    return ArchiveSpec(
        product="java",
        version=version,
        build=lambda dest: build(version, dest),
        inputs=[HERE / "jre.py"],
        backend="a shell script answering java -version",
    )
