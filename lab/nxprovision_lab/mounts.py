"""Mount helpers: overlays for lab hosts, and finding every mount below a directory."""

from __future__ import annotations

import subprocess
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")


def unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal
    return field.encode().decode("unicode_escape") if "\\" in field else field


def mount_points() -> list[Path]:
    points: list[Path] = []
    for line in MOUNTINFO.read_text().splitlines():
        fields = line.split()
        if len(fields) > 4:
            points.append(Path(unescape(fields[4])))
    return points


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below `path`, deepest first (the order to unmount them in)."""
    base = path.resolve() if path.exists() else path
    found = [p for p in mount_points() if p == base or base in p.parents]
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def unmount_under(path: Path) -> None:
    for p in mounts_under(path):
        if subprocess.run(["umount", str(p)], capture_output=True).returncode != 0:
            # a process still holds it (e.g. a host being killed): detach now, the kernel frees it later
            subprocess.run(["umount", "-l", str(p)], capture_output=True)


def mount_overlay(lower: Path, upper: Path, work: Path, target: Path) -> None:
    for d in (upper, work, target):
        d.mkdir(parents=True, exist_ok=True)
    if target in mount_points():
        return
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower},upperdir={upper},workdir={work}",
         str(target)],
        check=True, capture_output=True,
    )
