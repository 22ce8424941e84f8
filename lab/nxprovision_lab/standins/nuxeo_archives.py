"""Nuxeo server zips and offline package zips for the mirror, from the Nuxeo stand-in's layout module.

The stand-in itself (nxprovision_lab.standins.nuxeo) writes the unpacked distribution; this module only
vendors its Python dependencies and packs it the way Nuxeo ships it (a zip with one top folder).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from types import ModuleType

from nxprovision.model.artifacts import archive_root_dir
from nxprovision_lab.standins import packing, vendor
from nxprovision_lab.standins.spec import HERE, ArchiveSpec

log = logging.getLogger(__name__)

# LTS 2025 with two hotfix levels, for upgrades within the line
NUXEO_VERSIONS = ("2023.34", "2023.35", "2025.8", "2025.9")
BACKEND = "nxprovision's Nuxeo stand-in"


def layout() -> ModuleType | None:
    """The stand-in's layout module, or None (with a warning) while it does not exist or does not import."""
    try:
        from nxprovision_lab.standins.nuxeo import layout as mod
    except ImportError as e:
        log.warning("Nuxeo stand-in not available (%s): the mirror is built without Nuxeo archives", e)
        return None
    missing = [n for n in ("write_distribution", "write_package", "package_names", "PYTHON_DEPS")
               if not hasattr(mod, n)]
    if missing:
        log.warning("Nuxeo stand-in layout lacks %s: the mirror is built without Nuxeo archives", missing)
        return None
    return mod


def _sources() -> list[Path]:
    root = HERE / "nuxeo"
    return [
        HERE / "nuxeo_archives.py",
        *sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts),
    ]


def build_distribution(mod: ModuleType, version: str, dest: Path) -> None:
    top = archive_root_dir("nuxeo", version)
    with tempfile.TemporaryDirectory(prefix="nx-nuxeo-") as tmp:
        root = Path(tmp) / top
        root.mkdir()
        mod.write_distribution(root, version)
        deps = list(mod.PYTHON_DEPS)
        if deps:
            vendor.install_target(root / "lib" / "python", deps)
        packing.write_zip(root, dest, top=top)


def build_package(mod: ModuleType, name: str, version: str, dest: Path) -> None:
    mod.write_package(dest, name, version)
    if not dest.is_file():
        raise FileNotFoundError(f"write_package({dest}, {name!r}, {version!r}) wrote no zip")


def specs() -> list[ArchiveSpec]:
    mod = layout()
    if mod is None:
        return []
    out: list[ArchiveSpec] = []
    inputs = _sources()
    deps = tuple(mod.PYTHON_DEPS)
    for v in NUXEO_VERSIONS:
        out.append(
            ArchiveSpec(
                product="nuxeo",
                version=v,
                build=lambda dest, v=v: build_distribution(mod, v, dest),
                inputs=inputs,
                requirements=deps,
                backend=BACKEND,
            )
        )
        for name in mod.package_names(v):
            out.append(
                ArchiveSpec(
                    product="nuxeo_package",
                    version=v,
                    name=name,
                    build=lambda dest, v=v, name=name: build_package(mod, name, v, dest),
                    inputs=inputs,
                    backend=BACKEND,
                )
            )
    return out
