"""Daemons a lab runs on its bridge address: apt-cacher-ng (:3142) and the artifact mirror (:8090).

Each is started in its own session, its PID recorded in the lab's pids/ directory, and only ever
stopped after /proc/PID/cmdline shows it still is that daemon of that lab.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from nxprovision.errors import NxError
from nxprovision_lab import procs
from nxprovision_lab.aptsources import DebianMirrors
from nxprovision_lab.naming import APT_CACHE_ROOT, LabNames

APT_PORT = 3142
MIRROR_PORT = 8090
ACNG = "apt-cacher-ng"
MIRROR = "mirror"
# apt-cacher-ng is not built for two processes sharing one cache directory. Each running instance
# holds a lock on a numbered cache slot (the lock lives as long as the daemon, through an inherited
# descriptor): one lab reuses the warm slot 0, a second concurrent lab gets slot 1, and so on.
_CACHE_SLOTS = 8


def acng_conf(mirrors: DebianMirrors, cache_dir: Path, log_dir: Path) -> str:
    archive = urlsplit(mirrors.archive)
    security = urlsplit(mirrors.security) if mirrors.security else None
    # the machine's own mirror paths are remapped too, in case the mirror host is not a known Debian one
    deb_patterns = f"file:deb_mirror*.gz /debian {archive.netloc}{archive.path}"
    sec_backends = f"{security.netloc}{security.path}" if security else "deb.debian.org/debian-security"
    sec_patterns = "security.debian.org deb.debian.org/debian-security /debian-security"
    if security:
        sec_patterns += f" {security.netloc}{security.path}"
    return "\n".join([
        "# Written by nxprovision lab for this lab's own apt-cacher-ng instance.",
        f"CacheDir: {cache_dir}",
        f"LogDir: {log_dir}",
        "SupportDir: /usr/lib/apt-cacher-ng",
        f"Remap-debrep: {deb_patterns} ; file:backends_debian",
        f"Remap-secdeb: {sec_patterns} ; {sec_backends}",
        "ReportPage: acng-report.html",
        "ExThreshold: 4",
        "FollowIndexFileRemoval: 1",
        # Index files checked upstream within 10 minutes are served as they are: eleven hosts asking for the
        # same InRelease at once otherwise race inside apt-cacher-ng ("File exists") and get an error page,
        # after which python-apt waits forever.
        "FreshIndexMaxAge: 600",
        "",
    ])


def _claim_cache_slot() -> tuple[int, Path]:
    APT_CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    for slot in range(_CACHE_SLOTS):
        fd = os.open(APT_CACHE_ROOT / f"slot{slot}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        cache = APT_CACHE_ROOT / f"slot{slot}"
        cache.mkdir(exist_ok=True)
        return fd, cache
    raise NxError(
        f"{_CACHE_SLOTS} labs already run an apt cache on this machine",
        "take down a lab you no longer need with `nxprovision lab down --name NAME`",
    )


def _spawn(names: LabNames, what: str, cmd: list[str], pass_fds: tuple[int, ...] = ()) -> int:
    names.log_dir.mkdir(parents=True, exist_ok=True)
    with open(names.log_dir / f"{what}.log", "ab") as log:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, pass_fds=pass_fds, close_fds=True,
        )
    procs.write_pid_file(names.pid_file(what), proc.pid)
    return proc.pid


def start_apt_cache(names: LabNames, bridge_ip: str, mirrors: DebianMirrors) -> Path:
    conf = names.acng_conf_dir
    conf.mkdir(parents=True, exist_ok=True)
    log_dir = names.log_dir / "apt-cacher-ng"
    log_dir.mkdir(parents=True, exist_ok=True)
    fd, cache = _claim_cache_slot()
    _remove_stale_index_copies(cache)
    try:
        (conf / "acng.conf").write_text(acng_conf(mirrors, cache, log_dir))
        # apt-cacher-ng answered `503 Host not found` until this listed the machine's own mirror
        (conf / "backends_debian").write_text(mirrors.archive.rstrip("/") + "/\n")
        _spawn(names, ACNG, [
            ACNG, "-c", str(conf), "ForeGround=1", f"BindAddress={bridge_ip}", f"Port={APT_PORT}",
            f"SocketPath={conf / 'socket'}", f"PidFile={conf / 'acng.pid'}",
        ], pass_fds=(fd,))
    finally:
        os.close(fd)
    return cache


def _remove_stale_index_copies(cache: Path) -> None:
    """apt-cacher-ng moves an index aside as `<file>.<number>` before refreshing it; copies left by an
    interrupted refresh make the next refresh of the same file fail."""
    for dists in cache.glob("*/dists/*"):
        for f in dists.iterdir():
            if f.is_file() and f.suffix[1:].isdigit():
                f.unlink(missing_ok=True)


def start_mirror(names: LabNames, bridge_ip: str) -> None:
    names.mirror_dir.mkdir(parents=True, exist_ok=True)
    _spawn(names, MIRROR, [
        sys.executable, "-m", "nxprovision_lab.mirror_server", "--bind", bridge_ip, "--port",
        str(MIRROR_PORT), "--directory", str(names.mirror_dir), "--lab-dir", str(names.state_dir),
    ])


def wait_listening(names: LabNames, bridge_ip: str, timeout: float = 10) -> None:
    for what, port in ((ACNG, APT_PORT), (MIRROR, MIRROR_PORT)):
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((bridge_ip, port), timeout=0.5):
                    break
            except OSError:
                pid = procs.read_pid_file(names.pid_file(what))
                if pid is None or not procs.alive(pid) or time.monotonic() > deadline:
                    raise NxError(
                        f"the lab's {what} did not start listening on {bridge_ip}:{port}",
                        f"see {names.log_dir / (what + '.log')}; is another program using port {port}?",
                    ) from None
                time.sleep(0.05)


def check_running(names: LabNames) -> None:
    """Both daemons still run: one that failed to bind may have let another program answer on its port."""
    for what, port in ((ACNG, APT_PORT), (MIRROR, MIRROR_PORT)):
        pid = procs.read_pid_file(names.pid_file(what))
        if pid is None or not procs.alive(pid):
            raise NxError(
                f"the lab's {what} stopped right after starting",
                f"see {names.log_dir / (what + '.log')}; is another program using port {port}?",
            )


def is_lab_daemon(cmd: list[str], names: LabNames) -> bool:
    """True when a command line is one of this lab's daemons (apt cache or mirror)."""
    if not cmd:
        return False
    lab = str(names.state_dir)
    if os.path.basename(cmd[0]) == ACNG:
        return str(names.acng_conf_dir) in cmd
    return "nxprovision_lab.mirror_server" in cmd and lab in cmd


def stop_daemons(names: LabNames) -> None:
    pids = []
    for what in (ACNG, MIRROR):
        pid = procs.read_pid_file(names.pid_file(what))
        if pid and is_lab_daemon(procs.cmdline(pid), names):
            pids.append(pid)
    # daemons whose PID file was never written (up killed in between) are found by their command line
    pids += [p for p in procs.find(lambda c: is_lab_daemon(c, names)) if p not in pids]
    procs.terminate(pids, timeout=5)
    procs.wait_reaped(pids, timeout=5)
