"""The lab's base image: a debootstrapped Debian with systemd and sshd, built once and cached.

Hosts mount it read-only as the lower layer of an overlay, so it must stay host-neutral: no machine-id,
no SSH host keys, no hostname. Per-host files are written into each overlay instead.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from nxprovision.errors import NxError
from nxprovision_lab import mounts
from nxprovision_lab.naming import CACHE_ROOT

BASE_ROOT = CACHE_ROOT / "base"
BUILD_LOG = BASE_ROOT / "debootstrap.log"
SUITE = "bookworm"  # the default release (Debian 12); each release's image is cached on its own
# What any Ansible-managed Debian host has, beyond minbase: systemd as PID 1, sshd, Python for modules,
# python3-apt for ansible.builtin.apt, and the usual tools roles call.
PACKAGES: tuple[str, ...] = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "iproute2", "sudo",
    "python3-apt", "ca-certificates", "curl", "gnupg", "unzip", "procps", "less", "netbase",
)
# Bump when the post-processing below changes, so cached images built the old way are not reused.
RECIPE = 2

_SSHD_CONF = """\
# nxprovision lab: each host gets its own ed25519 host key at creation; no reverse DNS (no resolver here).
HostKey /etc/ssh/ssh_host_ed25519_key
UseDNS no
PermitRootLogin prohibit-password
"""
# Units that would take the dpkg lock behind Ansible's back or scan disks the host does not own.
_MASKED = ("apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "e2scrub_reap.service",
           "fstrim.timer", "systemd-networkd-wait-online.service")


def image_key(suite: str = SUITE, packages: tuple[str, ...] = PACKAGES) -> str:
    digest = hashlib.sha256(f"{RECIPE}:{','.join(sorted(packages))}".encode()).hexdigest()[:12]
    return f"{suite}-{digest}"


def image_path(suite: str = SUITE, packages: tuple[str, ...] = PACKAGES) -> Path:
    return BASE_ROOT / image_key(suite, packages)


def build_log(suite: str = SUITE) -> Path:
    return BUILD_LOG if suite == SUITE else BASE_ROOT / f"debootstrap-{suite}.log"


def ensure_base(
    mirror: str, *, suite: str = SUITE, force: bool = False, log: Path | None = None, proxy: str | None = None,
) -> tuple[Path, float | None]:
    """Return the cached base image of `suite`, building it first if needed; the second value is the build time.

    `proxy` (the lab's apt cache) is where debootstrap fetches through, so a rebuild and the hosts' later
    installs reuse the same downloads.
    """
    target = image_path(suite)
    if target.is_dir() and not force:
        return target, None
    BASE_ROOT.mkdir(parents=True, exist_ok=True)
    with open(BASE_ROOT / ".build.lock", "w") as lock:
        # two labs coming up at once build the image once: the second waits, then finds it
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_dir() and not force:
            return target, None
        if force and in_use(target):
            raise NxError(
                f"the base image {target} is in use by a running lab",
                "take the labs down (`nxprovision lab down --all`) before rebuilding it",
            )
        _remove_stale_builds()
        started = time.monotonic()
        tmp = BASE_ROOT / f".build-{image_key(suite)}-{os.getpid()}"
        _debootstrap(tmp, suite, mirror, log, lock.fileno(), proxy)
        _neutralise(tmp)
        if target.exists():
            old = BASE_ROOT / f".old-{target.name}-{os.getpid()}"
            target.rename(old)
            tmp.rename(target)
            remove_tree(old)
        else:
            tmp.rename(target)
        _remove_unused_images(keep=target)
        return target, time.monotonic() - started


def _debootstrap(tmp: Path, suite: str, mirror: str, log: Path | None, lock_fd: int, proxy: str | None) -> None:
    # debootstrap inherits the build lock: if `lab up` is killed, the orphaned debootstrap keeps the
    # lock until it ends, so the next build waits for it instead of deleting a tree still being written
    cmd = [
        "debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", "--components=main",
        suite, str(tmp), mirror,
    ]
    env = {**os.environ, "http_proxy": proxy} if proxy else None
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    try:
        rc = subprocess.run(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, pass_fds=(lock_fd,), env=env
        ).returncode
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    if rc != 0:
        remove_tree(tmp)
        where = f"; see {log}" if log else ""
        raise NxError(
            f"debootstrap of {suite} from {mirror} failed (exit {rc}){where}",
            "check that `apt-get update` works on this machine, then run `nxprovision lab up` again",
        )


def _neutralise(root: Path) -> None:
    """Strip what makes an installed system one particular host; the overlays add it back per host."""
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/ssh/sshd_config.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/ssh/sshd_config.d/nxlab.conf").write_text(_SSHD_CONF)
    (root / "etc/machine-id").write_text("")
    dbus_id = root / "var/lib/dbus/machine-id"
    if dbus_id.exists() or dbus_id.is_symlink():
        dbus_id.unlink()
    dbus_id.parent.mkdir(parents=True, exist_ok=True)
    dbus_id.symlink_to("/etc/machine-id")
    (root / "etc/hostname").write_text("localhost\n")
    resolv = root / "etc/resolv.conf"
    if resolv.exists() or resolv.is_symlink():
        resolv.unlink()
    resolv.write_text("# nxprovision lab: no resolver; lab hosts are in /etc/hosts.\n")
    for unit in _MASKED:
        link = root / "etc/systemd/system" / unit
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to("/dev/null")
    # lab disks are throw-away: dpkg's fsyncs only slow package installs down
    (root / "etc/dpkg/dpkg.cfg.d/nxlab-unsafe-io").write_text("force-unsafe-io\n")
    (root / "etc/apt/apt.conf.d/90nxlab").write_text('Acquire::Languages "none";\n')
    lists = root / "var/lib/apt/lists"
    for f in lists.glob("*"):
        if f.is_file():
            f.unlink()
    # no package lists yet, so make them look ancient: Ansible's apt `cache_valid_time` reads this mtime
    os.utime(lists, (0, 0))
    for f in (root / "var/cache/apt").glob("*.bin"):
        f.unlink()


def in_use(image: Path) -> bool:
    """True while some lab host's overlay has this image as its lower layer."""
    return f"lowerdir={image}," in mounts.MOUNTINFO.read_text()


def _remove_unused_images(keep: Path) -> None:
    """Drop images of older recipes or package lists of the same release, unless a running lab's overlays
    still use one; other releases' images stay cached."""
    suite = keep.name.rsplit("-", 1)[0]
    for d in BASE_ROOT.iterdir():
        same_release = d.name.rsplit("-", 1)[0] == suite
        if d.is_dir() and same_release and not d.name.startswith(".") and d != keep and not in_use(d):
            remove_tree(d)


def _remove_stale_builds() -> None:
    for d in BASE_ROOT.glob(".build-*"):
        remove_tree(d)
    for d in BASE_ROOT.glob(".old-*"):
        remove_tree(d)


def remove_tree(path: Path) -> None:
    """rm -rf that first unmounts what an interrupted debootstrap left mounted inside (proc, sys, dev)."""
    if not path.exists():
        return
    mounts.unmount_under(path)
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
