"""Checks before a lab is touched: each failure is one line naming the fix."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from nxprovision.errors import NxError

# program -> Debian package that provides it
TOOLS: dict[str, str] = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "apt-cacher-ng": "apt-cacher-ng",
    "ip": "iproute2",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
}


def require_root() -> None:
    if os.geteuid() != 0:
        raise NxError(
            "the lab needs root (network namespaces, bridges, mounts)", "run it with sudo or as root"
        )


def require_tools() -> None:
    missing = sorted({pkg for prog, pkg in TOOLS.items() if not _which(prog)})
    if missing:
        raise NxError(
            f"the lab needs {', '.join(missing)} on this machine",
            f"apt-get install {' '.join(missing)}",
        )


def _which(prog: str) -> str | None:
    # root's PATH may lack the sbin directories when started from a plain user shell (sudo -E)
    return shutil.which(prog) or shutil.which(prog, path="/usr/sbin:/sbin:/usr/bin:/bin")


def has_overlayfs(filesystems: Path = Path("/proc/filesystems")) -> bool:
    return any(line.split()[-1] == "overlay" for line in filesystems.read_text().splitlines() if line.strip())


def require_overlayfs() -> None:
    if has_overlayfs():
        return
    subprocess.run(["modprobe", "overlay"], capture_output=True)
    if not has_overlayfs():
        raise NxError(
            "the kernel has no overlay filesystem (not in /proc/filesystems, `modprobe overlay` failed)",
            "load it with `modprobe overlay` or use a kernel built with CONFIG_OVERLAY_FS",
        )


# Each booted host runs its own systemd, which holds inotify instances; the kernel's default of 128 per
# user runs out with two or three labs up ("Failed to allocate manager object: Too many open files").
INOTIFY_MINIMUMS = {"fs/inotify/max_user_instances": 8192, "fs/inotify/max_user_watches": 524288}


def raise_inotify_limits(proc_sys: Path = Path("/proc/sys")) -> None:
    for key, minimum in INOTIFY_MINIMUMS.items():
        f = proc_sys / key
        try:
            if int(f.read_text().strip()) < minimum:
                f.write_text(f"{minimum}\n")
        except (OSError, ValueError):
            raise NxError(f"cannot raise {key.replace('/', '.')} to {minimum}",
                          f"run `sysctl -w {key.replace('/', '.')}={minimum}` as root") from None


def check_all() -> None:
    require_root()
    require_tools()
    require_overlayfs()
    raise_inotify_limits()
