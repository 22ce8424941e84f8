"""The lab's download mirror: vendor-layout archives, their checksums and an index, built once and cached.

Each archive is rebuilt only when the stamp of its inputs (sources, version, dependencies) changes. A
finished archive is also kept in a machine-wide cache keyed by that stamp, so a fresh mirror folder
(every test run builds one) is filled by copying instead of rebuilding.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from nxprovision.errors import NxError
from nxprovision.model.artifacts import Platform
from nxprovision.model.defaults import DEFAULTS
from nxprovision_lab.standins import jre, kafka, mongodb, nuxeo_archives, opensearch, seaweedfs
from nxprovision_lab.standins.spec import ArchiveSpec

log = logging.getLogger(__name__)

ARCHIVE_CACHE = Path(os.environ.get("NXPROVISION_ARCHIVE_CACHE", "/var/cache/nxprovision/archives"))
STAMPS_DIR = ".stamps"
LOCK_FILE = ".build.lock"
SEAWEEDFS_VERSION = "4.48"
# The lab's hosts are systemd-nspawn containers of this x86_64 machine; their inventory keeps init's nx_cpu_arch.
LAB_CPU_ARCH = "x86_64"
CACHE_MAX_AGE_DAYS = 14


def lab_platforms() -> list[Platform]:
    """What the lab's hosts can be: each release a lab boots, on the CPU architecture of the lab's hosts."""
    from nxprovision_lab.releases import RELEASES

    return [Platform(os_release=r, cpu_arch=LAB_CPU_ARCH) for r in RELEASES]


def _per_platform(make: Callable[[Platform], ArchiveSpec]) -> list[ArchiveSpec]:
    """One archive per name the model gives the lab's hosts (releases sharing a build share the archive)."""
    out: dict[str, ArchiveSpec] = {}
    for platform in lab_platforms():
        spec = make(platform)
        out.setdefault(spec.mirror_path, spec)
    return list(out.values())


def all_specs() -> list[ArchiveSpec]:
    """Every archive the lab's mirror serves, at the versions the model defaults to, under the names the model
    computes for the lab's hosts (nxprovision/model/artifacts.py)."""
    specs = [
        kafka.spec(DEFAULTS["kafka_version"]),
        opensearch.spec(DEFAULTS["search_version"]),
        *_per_platform(lambda p: mongodb.spec(DEFAULTS["mongodb_version"], p)),
        seaweedfs.spec(SEAWEEDFS_VERSION),
        jre.spec(jre.VERSION),
    ]
    return specs + nuxeo_archives.specs()


@dataclass(frozen=True)
class Built:
    spec: ArchiveSpec
    path: Path
    sha256: str
    sha512: str
    size: int


def _hashes(path: Path) -> tuple[str, str]:
    h256, h512 = hashlib.sha256(), hashlib.sha512()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h256.update(chunk)
            h512.update(chunk)
    return h256.hexdigest(), h512.hexdigest()


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _record_path(mirror: Path, spec: ArchiveSpec) -> Path:
    return mirror / STAMPS_DIR / f"{spec.mirror_path}.json"


def _read_record(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _from_cache(stamp: str, filename: str, tmp: Path) -> tuple[str, str] | None:
    """Copy a cached archive built from the same inputs into tmp; None when there is none (or it is damaged)."""
    cached = ARCHIVE_CACHE / stamp / filename
    meta = _read_record(ARCHIVE_CACHE / stamp / "meta.json")
    if not cached.is_file() or not meta:
        return None
    try:
        os.link(cached, tmp)
    except OSError:
        shutil.copyfile(cached, tmp)
    sums = _hashes(tmp)
    if sums != (meta.get("sha256"), meta.get("sha512")):
        log.warning("cached %s does not match its recorded checksum: rebuilding it", cached)
        tmp.unlink()
        return None
    os.utime(ARCHIVE_CACHE / stamp / "meta.json")  # marks the entry as in use for _prune_cache
    return sums


def _prune_cache(max_age_days: float = CACHE_MAX_AGE_DAYS) -> None:
    """Drop cached archives no build has used for a while: each source change leaves a new entry."""
    if not ARCHIVE_CACHE.is_dir():
        return
    cutoff = time.time() - max_age_days * 86400
    for entry in ARCHIVE_CACHE.iterdir():
        meta = entry / "meta.json"
        with contextlib.suppress(OSError):
            if entry.is_dir() and (meta.stat().st_mtime if meta.exists() else entry.stat().st_mtime) < cutoff:
                shutil.rmtree(entry)


def _to_cache(stamp: str, archive: Path, filename: str, sums: tuple[str, str]) -> None:
    # best effort: a mirror without a writable cache still works, it only rebuilds more often
    with contextlib.suppress(OSError):
        d = ARCHIVE_CACHE / stamp
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{filename}.tmp-{os.getpid()}"
        shutil.copyfile(archive, tmp)
        tmp.replace(d / filename)
        _write_atomic(d / "meta.json", json.dumps({"sha256": sums[0], "sha512": sums[1]}))


def ensure_archive(mirror: Path, spec: ArchiveSpec, *, force: bool = False) -> Built:
    dest = mirror / spec.mirror_path
    stamp = spec.stamp()
    record_path = _record_path(mirror, spec)
    record = _read_record(record_path)
    if (
        not force
        and dest.is_file()
        and record.get("stamp") == stamp
        and record.get("size") == dest.stat().st_size
    ):
        return Built(spec, dest, record["sha256"], record["sha512"], record["size"])

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    started = time.monotonic()
    sums = None if force else _from_cache(stamp, dest.name, tmp)
    how = "copied from the archive cache"
    if sums is None:
        how = "built"
        try:
            spec.build(tmp)
        except NxError:
            tmp.unlink(missing_ok=True)
            raise
        except Exception as e:
            tmp.unlink(missing_ok=True)
            raise NxError(
                f"building the lab mirror archive {spec.mirror_path} failed: {e}",
                "fix the cause above and run the build again (finished archives are kept)",
            ) from e
        sums = _hashes(tmp)
        _to_cache(stamp, tmp, dest.name, sums)
    tmp.replace(dest)
    size = dest.stat().st_size
    _write_atomic(dest.with_name(dest.name + ".sha512"), f"{sums[1]}  {dest.name}\n")
    record = {
        "stamp": stamp,
        "sha256": sums[0],
        "sha512": sums[1],
        "size": size,
        "product": spec.product,
        "version": spec.version,
        "standin": spec.standin,
        "backend": spec.backend,
    }
    _write_atomic(record_path, json.dumps(record, indent=1) + "\n")
    log.info("%s %s (%.1f MB) in %.1fs", how, spec.mirror_path, size / 1e6, time.monotonic() - started)
    return Built(spec, dest, sums[0], sums[1], size)


def write_checksums(mirror: Path, built: list[Built]) -> None:
    """SHA256SUMS in each folder holding archives, in `sha256sum -c` format."""
    folders: dict[Path, list[Built]] = {}
    for b in built:
        folders.setdefault(b.path.parent, []).append(b)
    for folder, items in folders.items():
        lines = [f"{b.sha256}  {b.path.name}" for b in sorted(items, key=lambda b: b.path.name)]
        _write_atomic(folder / "SHA256SUMS", "\n".join(lines) + "\n")


def write_index(mirror: Path, built: list[Built]) -> None:
    lines = [
        "# nxprovision lab mirror: vendor-layout release archives for the lab's download base URLs.",
        "# Archives marked stand-in are NOT the vendor's product: they hold a STANDIN file and run a",
        "# substitute behind the vendor's layout (see the backend column). 'real' archives are genuine.",
        "# path\tsize\tsha256\tkind\tproduct\tversion\tbackend",
    ]
    for b in sorted(built, key=lambda b: b.spec.mirror_path):
        kind = "stand-in" if b.spec.standin else "real"
        lines.append(
            f"{b.spec.mirror_path}\t{b.size}\t{b.sha256}\t{kind}\t{b.spec.product}\t{b.spec.version}\t{b.spec.backend}"
        )
    _write_atomic(mirror / "INDEX.txt", "\n".join(lines) + "\n")


def build_mirror(mirror_dir: Path, *, force: bool = False) -> list[Path]:
    """Build (or reuse) every lab mirror archive under mirror_dir; returns the archive paths.

    Concurrent calls on the same folder take turns on a lock file: the second finds the work done.
    """
    mirror = Path(mirror_dir)
    mirror.mkdir(parents=True, exist_ok=True)
    with _locked(mirror / LOCK_FILE):
        built = [ensure_archive(mirror, s, force=force) for s in all_specs()]
        write_checksums(mirror, built)
        write_index(mirror, built)
    _prune_cache()
    return [b.path for b in built]
