"""What one mirror archive is made of, and the stamp that says when it must be rebuilt."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nxprovision.model.artifacts import Platform, artifact_path

HERE = Path(__file__).resolve().parent
RUNTIME = HERE / "runtime"

# Bump to rebuild every archive when the way archives are made changes outside the hashed sources.
BUILD_FORMAT = "1"

# product key (model.artifacts) -> folder of the mirror holding it, like one vendor's download site
MIRROR_FOLDERS: dict[str, str] = {
    "kafka": "kafka",
    "opensearch": "opensearch",
    "elasticsearch": "elasticsearch",
    "mongodb": "mongodb",
    "seaweedfs": "seaweedfs",
    "nuxeo": "nuxeo",
    "nuxeo_package": "nuxeo",
    "java": "java",
}


def mirror_path(product: str, version: str, name: str = "", platform: Platform | None = None) -> str:
    """Path of an archive under the mirror root: `<folder>/<the vendor's path for it>`, named for the platform
    (OS release, CPU architecture) as the model names it for a host."""
    return f"{MIRROR_FOLDERS[product]}/{artifact_path(product, version, name, platform)}"


@dataclass(frozen=True)
class ArchiveSpec:
    product: str
    version: str
    # writes the finished archive to the given path
    build: Callable[[Path], None]
    # sources whose content goes into the archive (builders, runtime programs)
    inputs: Sequence[Path]
    requirements: Sequence[str] = ()
    standin: bool = True
    backend: str = ""
    name: str = ""  # package name, for nuxeo_package
    extra: Sequence[str] = field(default_factory=tuple)
    # the hosts the archive is for: its name (and MongoDB's top directory) follow their release and architecture
    platform: Platform = field(default_factory=Platform)

    @property
    def mirror_path(self) -> str:
        return mirror_path(self.product, self.version, self.name, self.platform)

    def stamp(self) -> str:
        """Hash of every input of the archive: a changed source, version or dependency rebuilds it."""
        from nxprovision_lab.standins import vendor

        h = hashlib.sha256()
        for part in (BUILD_FORMAT, self.product, self.version, self.name, str(self.standin), self.backend):
            h.update(part.encode() + b"\0")
        if self.platform != Platform():
            # hashed only off the default: the archives built before platforms existed keep their stamps
            h.update(f"{self.platform.os_release}/{self.platform.cpu_arch}".encode() + b"\0")
        for part in (*self.requirements, *vendor.TARGET_PLATFORMS, vendor.TARGET_PYTHON, *self.extra):
            h.update(part.encode() + b"\0")
        for src in sorted({Path(p).resolve() for p in (*self.inputs, HERE / "packing.py")}):
            rel = src.relative_to(HERE).as_posix() if src.is_relative_to(HERE) else src.name
            h.update(rel.encode() + b"\0")
            h.update(src.read_bytes())
        return h.hexdigest()


def runtime_files(*names: str) -> list[Path]:
    return [RUNTIME / n for n in names]
