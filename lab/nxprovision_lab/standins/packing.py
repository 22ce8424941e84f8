"""Tarballs and zips laid out like the vendors' release archives, reproducible byte for byte.

Fixed timestamps and owners and a sorted member order make the same inputs give the same archive and
the same checksums, so a rebuilt mirror does not look changed to a role that compares checksums.
"""

from __future__ import annotations

import gzip
import os
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

# 2024-01-01T00:00:00Z: any fixed instant works; zip cannot store times before 1980.
FIXED_MTIME = 1704067200


def _walk(root: Path) -> Iterator[Path]:
    """Every path under root, parents before children, names sorted."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        for name in dirnames:
            yield base / name
        for name in sorted(filenames):
            yield base / name


def _mode(path: Path) -> int:
    st = path.lstat()
    if stat.S_ISDIR(st.st_mode):
        return 0o755
    return 0o755 if st.st_mode & 0o111 else 0o644


def write_targz(src_dir: Path, dest: Path, top: str = "") -> None:
    """Pack the contents of src_dir into dest (.tar.gz), under `top/` when given."""
    # filename="": the gzip header would otherwise carry the name of the temporary file written
    with (
        open(dest, "wb") as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0, compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        if top:
            ti = tarfile.TarInfo(top)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, FIXED_MTIME
            ti.uname = ti.gname = "root"
            tar.addfile(ti)
        for path in _walk(src_dir):
            rel = path.relative_to(src_dir).as_posix()
            name = f"{top}/{rel}" if top else rel
            ti = tarfile.TarInfo(name)
            ti.mtime, ti.mode = FIXED_MTIME, _mode(path)
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = "root"
            if path.is_symlink():
                ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(path)
                tar.addfile(ti)
            elif path.is_dir():
                ti.type = tarfile.DIRTYPE
                tar.addfile(ti)
            else:
                ti.size = path.stat().st_size
                with open(path, "rb") as fh:
                    tar.addfile(ti, fh)


def write_zip(src_dir: Path, dest: Path, top: str = "") -> None:
    """Pack src_dir into dest (.zip) with Unix permissions in the external attributes.

    `unzip` and Ansible's unarchive restore the executable bits from there, as they do for the
    vendor's own zips (nuxeoctl must stay executable).
    """
    date = (2024, 1, 1, 0, 0, 0)
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        entries: list[tuple[Path | None, str]] = [(None, f"{top}/")] if top else []
        for path in _walk(src_dir):
            rel = path.relative_to(src_dir).as_posix()
            name = f"{top}/{rel}" if top else rel
            entries.append((path, name + "/" if path.is_dir() else name))
        for path, name in entries:
            zi = zipfile.ZipInfo(name, date_time=date)
            zi.create_system = 3  # Unix, so the mode bits below are honoured
            if path is None or path.is_dir():
                zi.external_attr = ((stat.S_IFDIR | 0o755) << 16) | 0x10
                zf.writestr(zi, b"")
                continue
            zi.external_attr = (stat.S_IFREG | _mode(path)) << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as src, zf.open(zi, "w") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
