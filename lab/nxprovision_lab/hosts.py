"""Lab hosts: an overlay on the base image, host identity files, and a systemd-nspawn boot.

The machine's PID 1 is not systemd, so nspawn runs with --register=no --keep-unit and is tracked by
the PID recorded at boot. Its child is the host's init (systemd, PID 1 of the host's PID namespace).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from nxprovision.errors import NxError
from nxprovision_lab import cgroups, mounts, network, procs, releases
from nxprovision_lab.aptsources import DebianMirrors, host_sources_list
from nxprovision_lab.naming import LabNames
from nxprovision_lab.services import APT_PORT
from nxprovision_lab.state import LabHost

NSPAWN = "systemd-nspawn"
POWEROFF_TIMEOUT = 10.0


def ssh_options(key: Path) -> list[str]:
    return [
        "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=3",
    ]


def prepare(
    names: LabNames, base: Path, host: LabHost, all_hosts: list[LabHost], pubkey: str, bridge_ip: str,
    mirrors: DebianMirrors,
) -> None:
    """Mount the host's overlay and write what makes it this host (its disk persists until `down`)."""
    hdir = names.host_dir(host.name)
    root = names.host_root(host.name)
    mounts.mount_overlay(base, hdir / "upper", hdir / "work", root)
    (root / "etc/hostname").write_text(f"{host.name}\n")
    hosts_lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    hosts_lines += [f"{h.ip}\t{h.name}" for h in all_hosts]
    (root / "etc/hosts").write_text("\n".join(hosts_lines) + "\n")
    (root / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    auth = ssh_dir / "authorized_keys"
    auth.write_text(pubkey.strip() + "\n")
    auth.chmod(0o600)
    # Timeouts and retries: a fetch that stalls behind the shared cache must fail over, not hang a deploy.
    (root / "etc/apt/apt.conf.d/01nxlab-proxy").write_text(
        f'Acquire::http::Proxy "http://{bridge_ip}:{APT_PORT}";\n'
        'Acquire::http::Timeout "30";\n'
        'Acquire::Retries "5";\n'
        'Acquire::http::Pipeline-Depth "0";\n'
    )
    (root / "etc/apt/sources.list").write_text(host_sources_list(mirrors, releases.get(host.os).suite))
    key = root / "etc/ssh/ssh_host_ed25519_key"
    for f in (key, key.with_suffix(".pub")):
        f.unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{host.name}", "-f", str(key)],
        check=True, capture_output=True,
    )


def is_host_nspawn(cmd: list[str], names: LabNames, host: str | None = None) -> bool:
    if not cmd or os.path.basename(cmd[0]) != NSPAWN:
        return False
    if host is not None:
        return str(names.host_root(host)) in cmd
    prefix = str(names.hosts_dir) + "/"
    return any(a.startswith(prefix) for a in cmd)


def nspawn_pid(names: LabNames, host: str) -> int | None:
    """The live systemd-nspawn of `host`, from its PID file, checked against /proc/PID/cmdline."""
    pid = procs.read_pid_file(names.pid_file(f"host-{host}"))
    if pid and procs.alive(pid) and is_host_nspawn(procs.cmdline(pid), names, host):
        return pid
    return None


def running(names: LabNames, host: str) -> bool:
    pid = nspawn_pid(names, host)
    return pid is not None and any(procs.alive(c) for c in procs.children(pid))


def nspawn_command(names: LabNames, host: LabHost) -> list[str]:
    root = names.host_root(host.name)
    return [
        NSPAWN, "-D", str(root), "--boot", "--register=no", "--keep-unit",
        f"--network-namespace-path={network.NETNS_DIR / names.netns(host.name)}",
        f"--machine={host.name}", "--link-journal=no", "--resolv-conf=off", "--console=read-only",
        # CAP_NET_ADMIN on every host, as root on a real server has it: nftables (the firewall role, which any
        # lab may turn on in its inventory after boot) and keepalived's VIP need it. nspawn grants it on its own
        # only with networking it sets up itself, not with --network-namespace-path. Each host has a network
        # namespace of its own, so nft, ip and keepalived there act on that host's rules and interfaces, not on
        # the bridge or the other hosts. (Not a sandbox: nspawn hosts keep CAP_SYS_ADMIN by default anyway.)
        "--capability=CAP_NET_ADMIN",
    ]


def boot(names: LabNames, host: LabHost) -> int:
    cmd = nspawn_command(names, host)
    network.ip("-n", names.netns(host.name), "link", "set", "eth0", "up")
    names.log_dir.mkdir(parents=True, exist_ok=True)
    join = cgroups.joiner(cgroups.prepare_host(names.name, host.name))
    with open(names.log_dir / f"host-{host.name}.log", "ab") as log:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=join,
        )
    procs.write_pid_file(names.pid_file(f"host-{host.name}"), proc.pid)
    return proc.pid


def hard_kill(names: LabNames, host: str) -> None:
    """Power the host off at once: SIGKILL its init, which ends its whole PID namespace.

    SIGKILL to systemd-nspawn alone would leave the host's init running, re-parented.
    """
    pid = nspawn_pid(names, host)
    victims: list[int] = []
    if pid:
        victims += procs.children(pid)
    # anything else in the host's network namespace (a re-parented init after a crash of nspawn)
    victims += [p for p in network.netns_pids(names.netns(host)) if p not in victims]
    for v in victims:
        procs.signal_pid(v, signal.SIGKILL)
    procs.wait_gone(victims, 10)
    if pid:
        # nspawn exits on its own once its child is gone; it is reaped by our process or by PID 1
        left = procs.wait_gone([pid], 10)
        for p in left:
            procs.signal_pid(p, signal.SIGKILL)
        procs.wait_reaped([pid], 10)
    names.pid_file(f"host-{host}").unlink(missing_ok=True)
    # a powered-off server answers nothing (no ARP, no RST): take its NIC down with it
    network.ip("-n", names.netns(host), "link", "set", "eth0", "down", check=False)


def all_nspawns(names: LabNames) -> list[int]:
    return procs.find(lambda c: is_host_nspawn(c, names))


def poweroff(names: LabNames, host: str, timeout: float = POWEROFF_TIMEOUT) -> None:
    """A clean poweroff of one host (SIGTERM to its nspawn); hard-killed if it takes longer than timeout."""
    pid = nspawn_pid(names, host)
    if pid:
        procs.signal_pid(pid, signal.SIGTERM)
        procs.wait_gone([pid], timeout)
    hard_kill(names, host)
    if pid:
        procs.wait_reaped([pid], 10)


def poweroff_all(names: LabNames, hosts: list[str], timeout: float = POWEROFF_TIMEOUT) -> None:
    """SIGTERM every host's nspawn (a clean poweroff, ~4 s); hard-kill those that take too long."""
    pids = {h: p for h in hosts if (p := nspawn_pid(names, h))}
    # nspawns whose PID file is missing (up killed between boot and writing it)
    strays = [p for p in all_nspawns(names) if p not in pids.values()]
    for p in [*pids.values(), *strays]:
        procs.signal_pid(p, signal.SIGTERM)
    procs.wait_gone([*pids.values(), *strays], timeout)
    for h in hosts:
        hard_kill(names, h)
    for p in strays:
        for c in procs.children(p):
            procs.signal_pid(c, signal.SIGKILL)
        procs.signal_pid(p, signal.SIGKILL)
    procs.wait_reaped([*pids.values(), *strays], 10)


def _ssh_banner(ip: str) -> bool:
    try:
        with socket.create_connection((ip, 22), timeout=1) as s:
            s.settimeout(2)
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a host's console log (systemd-nspawn says there why it stopped)."""
    try:
        data = path.read_bytes()[-8192:]
    except OSError:
        return "  (no console log)"
    return "\n".join(f"  {line}" for line in data.decode(errors="replace").splitlines()[-lines:])


def refresh_package_lists(names: LabNames, hosts: list[LabHost], attempts: int = 3) -> list[str]:
    """Give each host fresh package lists, as a cloud image's first boot does; return what did not work.

    The first host of each release goes alone and fills the lab's apt cache (by-hash index names
    included), then the others read from the cache, a few at a time. A deploy's hosts all asking a
    cold cache at once stalled past the role's time limit, and a stalled `apt-get` holds apt's lock
    on its host for minutes: here a stalled attempt is ended on the host and tried again.
    """
    first: dict[str, LabHost] = {}
    for h in hosts:
        first.setdefault(releases.get(h.os).suite, h)
    problems = [p for h in first.values() if (p := _refresh_one(names, h, attempts))]
    rest = [h for h in hosts if h not in first.values()]
    with ThreadPoolExecutor(max_workers=4) as pool:
        problems += [p for p in pool.map(lambda h: _refresh_one(names, h, attempts), rest) if p]
    return problems


def _refresh_one(names: LabNames, host: LabHost, attempts: int) -> str | None:
    why = ""
    for _ in range(attempts):
        # `timeout` runs on the host, so a stalled apt-get ends there and releases its lock
        proc = subprocess.run(
            ["ssh", *ssh_options(names.ssh_key), f"root@{host.ip}", "timeout", "-k", "5", "120",
             "apt-get", "-q", "update"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
        )
        if proc.returncode == 0:
            return None
        why = f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"
    return f"apt-get update on {host.name} failed {attempts} times ({why})"


def wait_ssh(names: LabNames, hosts: list[LabHost], timeout: float = 90) -> None:
    """Wait, for all hosts at once, until each accepts the lab key; fail early if a host died."""

    def one(host: LabHost) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if _ssh_banner(host.ip):
                rc = subprocess.run(
                    ["ssh", *ssh_options(names.ssh_key), f"root@{host.ip}", "true"],
                    stdin=subprocess.DEVNULL, capture_output=True,
                ).returncode
                if rc == 0:
                    return
            if nspawn_pid(names, host.name) is None:
                log = names.log_dir / f"host-{host.name}.log"
                raise NxError(
                    f"lab host {host.name} stopped while booting; its console's last lines:\n{log_tail(log)}",
                    f"see {log}",
                )
            if time.monotonic() > deadline:
                raise NxError(
                    f"lab host {host.name} ({host.ip}) did not answer SSH within {timeout:.0f} s",
                    f"see {names.log_dir / f'host-{host.name}.log'}",
                )
            time.sleep(0.1)

    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        for f in [pool.submit(one, h) for h in hosts]:
            f.result()
