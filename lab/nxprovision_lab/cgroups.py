"""One control group per lab host, so that the hosts' systemds never share a unit's cgroup.

systemd-nspawn with --keep-unit (there is no systemd on this machine to register with) puts the container
below its *own* cgroup, in `payload/`. Started from one process, every lab host had the same cgroup, so
every host's systemd managed the same `payload/system.slice/nuxeo.service`: one host's unit looked empty
(MainPID 0), non-empty or un-killable ("Failed to kill control group") because of another host's
processes, and a rebooted host's new init found its cgroup still in use. Each nspawn now starts in
`nxprovision/<lab>/<host>` of every hierarchy that nspawn uses (the v2 one and v1's name=systemd).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from nxprovision_lab import mounts

BRANCH = "nxprovision"


def hierarchies(mountinfo: str | None = None) -> list[Path]:
    """Mount points of the cgroup2 hierarchy and of v1's name=systemd hierarchy, as mounted here."""
    text = mountinfo if mountinfo is not None else mounts.MOUNTINFO.read_text()
    found: list[Path] = []
    for line in text.splitlines():
        pre, _, post = line.partition(" - ")
        fields, tail = pre.split(), post.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        fstype, options = tail[0], tail[2].split(",")
        if fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in options):
            found.append(Path(mounts.unescape(fields[4])))
    return found


def host_dirs(lab: str, host: str) -> list[Path]:
    return [h / BRANCH / lab / host for h in hierarchies()]


def lab_dirs(lab: str) -> list[Path]:
    return [h / BRANCH / lab for h in hierarchies()]


def prepare_host(lab: str, host: str) -> list[Path]:
    """Create the host's cgroups (an earlier boot's empty ones are cleared first); the files to join them."""
    procs_files = []
    for d in host_dirs(lab, host):
        remove_tree(d)
        d.mkdir(parents=True, exist_ok=True)
        procs_files.append(d / "cgroup.procs")
    return procs_files


def joiner(procs_files: list[Path]):  # type: ignore[no-untyped-def]
    """A preexec_fn that moves the child into the host's cgroups before it becomes systemd-nspawn."""

    def join() -> None:
        for f in procs_files:
            fd = os.open(f, os.O_WRONLY)
            try:
                os.write(fd, b"0")  # "0": the writing process itself
            finally:
                os.close(fd)

    return join


def remove_tree(root: Path) -> None:
    """rmdir every cgroup below and at root, deepest first. A cgroup still holding a process stays."""
    if not root.is_dir():
        return
    dirs = sorted((Path(d) for d, _s, _f in os.walk(root)), key=lambda p: len(p.parts), reverse=True)
    for d in dirs:
        with contextlib.suppress(OSError):
            d.rmdir()


def remove_lab(lab: str) -> None:
    for d in lab_dirs(lab):
        remove_tree(d)
        with contextlib.suppress(OSError):
            d.parent.rmdir()  # the branch itself, once no lab is left in it
