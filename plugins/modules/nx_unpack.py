#!/usr/bin/python
"""Install the tree of a vendor archive at its final path in one rename, so that no half release is ever there.

unarchive with `creates:` takes a release for whole as soon as one early member exists: a host powered off in the
middle of the unpack leaves a tree that the next run never completes. Here the archive is unpacked into a private
folder beside the release, on the same file system, and only a whole tree is renamed into place.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nx_unpack
short_description: Install an archive's tree at its final directory in one rename
description:
  - When O(dest) is a directory, does nothing (and reads nothing): a release is only ever there whole. An empty
    O(dest) is no release and is replaced (the SeaweedFS role created its release folder before unpacking into it
    until nxprovision used this module, so a host powered off in between kept an empty one).
  - Otherwise unpacks O(src) (tar, gzip/xz/bzip2 compressed or plain, or zip) into
    C(<parent>/.nxprovision-unpack-<name>) beside O(dest) (cleared first when an earlier run was cut short
    there), gives the tree to O(owner) and O(group), flushes it to disk, renames O(top) (or the whole folder
    when O(top) is empty) to O(dest) and flushes the parent.
  - Members that would land outside the folder are refused before anything is written: absolute names, C(..),
    links whose target is absolute or outside the folder, members reached through a link of the archive, device
    and fifo entries. Python's tarfile C(data) filter is applied as well where the host's Python has it.
  - File modes are kept (for zip, the Unix mode of the member's external attributes), without setuid, setgid,
    sticky and group or other write bits.
options:
  src:
    description: The archive, on the managed host.
    type: path
    required: true
  dest:
    description: The release's final directory. Its parent is created when missing.
    type: path
    required: true
  top:
    description:
      - The archive's top-level directory that becomes O(dest).
      - Empty when the archive's members are the release's content (SeaweedFS's archive holds C(weed) at its root).
    type: str
    default: ""
  owner:
    description: Owner of every file of the tree (default, the user running the module).
    type: str
  group:
    description: Group of every file of the tree (default, the primary group of the user running the module).
    type: str
author: nxprovision
"""

EXAMPLES = r"""
- name: Unpack the release
  nx_unpack:
    src: /var/cache/nxprovision/kafka_2.13-3.9.1.tgz
    dest: /opt/kafka_2.13-3.9.1
    top: kafka_2.13-3.9.1
    owner: root
    group: root
  notify: Restart kafka
"""

RETURN = r"""
dest:
  description: The release's directory.
  type: str
  returned: always
unpack_dir:
  description: The private folder the archive was unpacked into (removed once the tree is in place).
  type: str
  returned: always
"""

import ctypes
import grp
import os
import pwd
import shutil
import stat
import tarfile
import time
import zipfile
from dataclasses import dataclass

from ansible.module_utils.basic import AnsibleModule

UNPACK_PREFIX = ".nxprovision-unpack-"
# The data filter's rule for modes, applied to zip members and to tar members on a Python without the filter.
_DROPPED_MODE_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWGRP | stat.S_IWOTH


class UnpackError(Exception):
    pass


@dataclass
class Member:
    name: str  # normalised: relative, no "." components, no trailing "/"
    kind: str  # "dir", "file", "symlink", "hardlink"
    link: str = ""  # the symlink's target as stored, or the hard link's member name


def unpack_dir(dest: str) -> str:
    dest = dest.rstrip("/")
    return os.path.join(os.path.dirname(dest), UNPACK_PREFIX + os.path.basename(dest))


def _normalise(name: str, archive: str) -> str:
    if name.startswith("/"):
        raise UnpackError(f"{archive}: member {name!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnpackError(f"{archive}: member {name!r} climbs out of the release with '..'")
    return "/".join(parts)


def _resolve(start: list[str], target: str, symlinks: set[str], what: str) -> str:
    """Where target leads from the folder start, lexically; refused when it leaves the unpack folder or goes
    through a link of the archive (whose real target a lexical walk would not follow)."""
    if target.startswith("/"):
        raise UnpackError(f"{what} points to the absolute path {target!r}")
    parts = list(start)
    for p in target.split("/"):
        if p in ("", "."):
            continue
        if "/".join(parts) in symlinks:
            raise UnpackError(f"{what} goes through the link {'/'.join(parts)!r}")
        if p == "..":
            if not parts:
                raise UnpackError(f"{what} points outside the release ({target!r})")
            parts.pop()
        else:
            parts.append(p)
    return "/".join(parts)


def check_members(members: list[Member], archive: str) -> None:
    """Refuse any member that would be written, or whose link would lead, outside the unpack folder."""
    symlinks = {m.name for m in members if m.kind == "symlink"}
    for m in members:
        parents = m.name.split("/")[:-1]
        for i in range(1, len(parents) + 1):
            if "/".join(parents[:i]) in symlinks:
                raise UnpackError(f"{archive}: member {m.name!r} would be written through the link "
                                  f"{'/'.join(parents[:i])!r}")
        if m.kind == "symlink":
            _resolve(parents, m.link, symlinks, f"{archive}: link {m.name!r}")
        elif m.kind == "hardlink":
            _resolve([], m.link, symlinks, f"{archive}: hard link {m.name!r}")


def top_entries(members: list[Member]) -> list[str]:
    return sorted({m.name.split("/")[0] for m in members if m.name})


def _check_top(members: list[Member], top: str, archive: str) -> None:
    if not top:
        return
    entries = top_entries(members)
    if top not in entries or any(m.name == top and m.kind != "dir" for m in members):
        raise UnpackError(f"{archive} has no top-level directory {top!r}; its top-level entries: "
                          f"{', '.join(entries) or '(none)'}")


# -- tar ---------------------------------------------------------------------------------------------------------

def _tar_members(tar: tarfile.TarFile, archive: str) -> tuple[list[Member], list[tarfile.TarInfo]]:
    out: list[Member] = []
    infos: list[tarfile.TarInfo] = []
    for info in tar.getmembers():
        name = _normalise(info.name, archive)
        if info.isdev() or info.isfifo():
            raise UnpackError(f"{archive}: member {info.name!r} is a device or fifo")
        if info.issym():
            out.append(Member(name, "symlink", info.linkname))
        elif info.islnk():
            out.append(Member(name, "hardlink", _normalise(info.linkname, archive)))
        else:
            out.append(Member(name, "dir" if info.isdir() else "file"))
        infos.append(info)
    return out, infos


def _extract_tar(tar: tarfile.TarFile, infos: list[tarfile.TarInfo], folder: str) -> None:
    if hasattr(tarfile, "data_filter"):
        try:
            tar.extractall(folder, members=infos, filter="data")
        except tarfile.FilterError as e:
            raise UnpackError(f"{tar.name}: {e}") from e
        return
    # Python before the filters (3.11.2 of Debian 12 without its updates): the members were checked by
    # check_members; what remains of the filter is the modes and not taking the archive's owners.
    for info in infos:
        info.mode &= ~_DROPPED_MODE_BITS
        info.uid = info.gid = os.getuid()
        info.uname = info.gname = ""
    tar.extractall(folder, members=infos, numeric_owner=True)


# -- zip ---------------------------------------------------------------------------------------------------------

def _zip_unix_mode(info: zipfile.ZipInfo) -> int:
    return (info.external_attr >> 16) if info.create_system == 3 else 0


def _zip_members(zf: zipfile.ZipFile, archive: str) -> list[tuple[Member, zipfile.ZipInfo]]:
    out: list[tuple[Member, zipfile.ZipInfo]] = []
    for info in zf.infolist():
        name = _normalise(info.filename, archive)
        mode = _zip_unix_mode(info)
        if stat.S_ISLNK(mode):
            out.append((Member(name, "symlink", zf.read(info).decode("utf-8")), info))
        elif info.is_dir() or stat.S_ISDIR(mode):
            out.append((Member(name, "dir"), info))
        elif stat.S_IFMT(mode) not in (0, stat.S_IFREG):
            raise UnpackError(f"{archive}: member {info.filename!r} is a device, fifo or socket")
        else:
            out.append((Member(name, "file"), info))
    return out


def _extract_zip(zf: zipfile.ZipFile, entries: list[tuple[Member, zipfile.ZipInfo]], folder: str) -> None:
    dir_modes: dict[str, int] = {}
    for m, info in entries:
        path = os.path.join(folder, m.name) if m.name else folder
        mode = _zip_unix_mode(info) & 0o7777 & ~_DROPPED_MODE_BITS
        if m.kind == "dir":
            os.makedirs(path, exist_ok=True)
            dir_modes[path] = mode or 0o755
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.lexists(path) and not os.path.isdir(path):
            os.unlink(path)
        if m.kind == "symlink":
            os.symlink(m.link, path)
            continue
        with zf.open(info) as src, open(path, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        os.chmod(path, mode or 0o644)
        mtime = time.mktime((*info.date_time, 0, 0, -1))
        os.utime(path, (mtime, mtime))
    # last and deepest first: a read-only directory must not stop the files below it
    for path in sorted(dir_modes, key=len, reverse=True):
        os.chmod(path, dir_modes[path])


# -- install -----------------------------------------------------------------------------------------------------

def _ids(owner: str | None, group: str | None) -> tuple[int, int]:
    try:
        uid = pwd.getpwnam(owner).pw_uid if owner else os.getuid()
        gid = grp.getgrnam(group).gr_gid if group else (pwd.getpwnam(owner).pw_gid if owner else os.getgid())
    except KeyError as e:
        raise UnpackError(f"no such user or group: {e}") from e
    return uid, gid


def _chown_tree(root: str, uid: int, gid: int) -> None:
    os.lchown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)


def _sync_filesystem(path: str) -> None:
    """The tree's data on disk before its rename: otherwise a power-off could leave the rename and not the data,
    a whole-looking release of empty files. syncfs flushes this file system only (a busy database's elsewhere)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        syncfs = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
        if syncfs is None or syncfs(fd) != 0:
            os.sync()
    except OSError:
        os.sync()
    finally:
        os.close(fd)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _clear(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _unpack(src: str, top: str, folder: str) -> None:
    """Check every member, then unpack them into folder (cleared first); nothing is written for a refused archive."""
    if tarfile.is_tarfile(src):
        with tarfile.open(src, "r:*") as tar:
            members, infos = _tar_members(tar, src)
            check_members(members, src)
            _check_top(members, top, src)
            _clear(folder)
            os.mkdir(folder, 0o700)
            _extract_tar(tar, infos, folder)
    elif zipfile.is_zipfile(src):
        with zipfile.ZipFile(src) as zf:
            entries = _zip_members(zf, src)
            members = [m for m, _ in entries]
            check_members(members, src)
            _check_top(members, top, src)
            _clear(folder)
            os.mkdir(folder, 0o700)
            _extract_zip(zf, entries, folder)
    else:
        raise UnpackError(f"{src} is neither a tar nor a zip archive")


def install(src: str, dest: str, top: str = "", owner: str | None = None, group: str | None = None,
            check_mode: bool = False) -> dict[str, object]:
    dest = os.path.abspath(dest)
    folder = unpack_dir(dest)
    result: dict[str, object] = {"dest": dest, "unpack_dir": folder, "changed": False}
    empty = os.path.isdir(dest) and not os.path.islink(dest) and not os.listdir(dest)
    if os.path.isdir(dest) and not empty:
        return result
    if os.path.lexists(dest) and not empty:
        raise UnpackError(f"{dest} exists and is not a directory")
    result["changed"] = True
    if check_mode:
        return result
    if empty:
        os.rmdir(dest)
    top = top.strip("/")
    if "/" in top or top in (".", ".."):
        raise UnpackError(f"top must be one directory name, not {top!r}")
    uid, gid = _ids(owner, group)
    if not os.path.isfile(src):
        raise UnpackError(f"archive {src} not found")
    parent = os.path.dirname(dest)
    os.makedirs(parent, mode=0o755, exist_ok=True)
    # folders the archive does not list (its top directory, often) get the usual 0755, whatever umask sudo left
    umask = os.umask(0o022)
    try:
        _unpack(src, top, folder)
    finally:
        os.umask(umask)
    tree = os.path.join(folder, top) if top else folder
    if not top:
        os.chmod(folder, 0o755)
    _chown_tree(tree, uid, gid)
    _sync_filesystem(tree)
    os.rename(tree, dest)
    _fsync_dir(parent)
    _clear(folder)
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "src": {"type": "path", "required": True},
            "dest": {"type": "path", "required": True},
            "top": {"type": "str", "default": ""},
            "owner": {"type": "str"},
            "group": {"type": "str"},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        result = install(p["src"], p["dest"], p["top"] or "", p["owner"], p["group"], module.check_mode)
    except (UnpackError, OSError, tarfile.TarError, zipfile.BadZipFile) as e:
        module.fail_json(msg=str(e), dest=p["dest"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
