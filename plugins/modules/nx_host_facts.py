#!/usr/bin/python
"""Read what `nxprovision prechecks` judges, changing nothing: one round trip per host, standard library only."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nx_host_facts
short_description: Read a host's OS, CPU, resources, listening ports, name resolution and mirror reachability
description:
  - Read-only (check mode safe). Returns the host's clock, OS release, CPU architecture and count, memory, the
    free space of the filesystems holding O(paths), who listens on O(ports) (process, user, systemd unit), what
    O(names) resolve to and the HTTP status of a HEAD request to each of O(urls).
  - Run it as root to see the processes of other users.
options:
  paths:
    description: Directories whose filesystem's free space is read (the nearest existing parent when absent).
    type: list
    elements: str
    default: []
  ports:
    description: TCP ports whose listeners are read.
    type: list
    elements: int
    default: []
  names:
    description: Host names to resolve.
    type: list
    elements: str
    default: []
  urls:
    description: URLs to request with HEAD (GET when the server refuses HEAD); nothing is downloaded.
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds allowed for each URL.
    type: int
    default: 10
author: nxprovision
"""

RETURN = r"""
time:
  description: The host's clock (seconds since the epoch) when the module started.
  type: float
  returned: always
arch:
  description: The host's CPU architecture as the kernel names it (uname -m, what ansible_architecture says).
  type: str
  returned: always
listeners:
  description: For each port asked, the sockets listening on it (address, pid, process, user, unit).
  type: dict
  returned: always
"""

import os
import pwd
import socket
import time
import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule


def os_release() -> dict[str, str]:
    out: dict[str, str] = {}
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    key, sep, value = line.strip().partition("=")
                    if sep:
                        out[key.lower()] = value.strip().strip('"')
            break
        except OSError:
            continue
    return out


def memory_mb() -> int:
    total = 0
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    total = int(line.split()[1]) // 1024
    except OSError:
        pass
    # a container's limit (cgroup v2, seen from inside) is what its services can use
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="utf-8") as f:
            limit = f.read().strip()
        if limit.isdigit():
            total = min(total, int(limit) // (1024 * 1024)) if total else int(limit) // (1024 * 1024)
    except OSError:
        pass
    return total


def cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 0


def disk(path: str) -> dict:
    probe = path
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe.rstrip("/")) or "/"
    try:
        st = os.statvfs(probe)
        mount = os.path.realpath(probe)
        dev = os.stat(mount).st_dev
        while mount != "/" and os.stat(os.path.dirname(mount)).st_dev == dev:
            mount = os.path.dirname(mount)
        return {"exists": probe == path, "checked": probe, "mount": mount,
                "free_mb": st.f_bavail * st.f_frsize // (1024 * 1024)}
    except OSError as exc:
        return {"error": str(exc)}


def _listening_inodes(ports: set[int]) -> dict[str, tuple[int, str]]:
    """socket inode -> (port, local address) of the TCP sockets in LISTEN state on the asked ports."""
    found: dict[str, tuple[int, str]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as f:
                next(f, None)
                for line in f:
                    parts = line.split()
                    if len(parts) < 10 or parts[3] != "0A":
                        continue
                    addr, _, port_hex = parts[1].rpartition(":")
                    port = int(port_hex, 16)
                    if port in ports:
                        found[parts[9]] = (port, addr)
        except OSError:
            continue
    return found


def _unit_of(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
            for line in f:
                path = line.strip().split(":", 2)[-1]
                for part in reversed(path.split("/")):
                    if part.endswith((".service", ".scope")):
                        return part
    except OSError:
        pass
    return ""


def _process(pid: str) -> dict:
    info: dict = {"pid": int(pid), "process": "", "user": "", "unit": _unit_of(pid)}
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as f:
            info["process"] = f.read().strip()
        uid = os.stat(f"/proc/{pid}").st_uid
        try:
            info["user"] = pwd.getpwuid(uid).pw_name
        except KeyError:
            info["user"] = str(uid)
    except OSError:
        pass
    return info


def listeners(ports: set[int]) -> dict[str, list[dict]]:
    inodes = _listening_inodes(ports)
    out: dict[str, list[dict]] = {}
    seen: set[tuple[int, int]] = set()
    owners: dict[str, str] = {}
    if inodes:
        for pid in (p for p in os.listdir("/proc") if p.isdigit()):
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    owners.setdefault(target[8:-1], pid)
    for inode, (port, _addr) in inodes.items():
        pid = owners.get(inode)
        entry = _process(pid) if pid else {"pid": None, "process": "", "user": "", "unit": ""}
        key = (port, entry["pid"] or 0)
        if key in seen:
            continue
        seen.add(key)
        out.setdefault(str(port), []).append(entry)
    return out


def resolve(names: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for name in names:
        try:
            addrs = sorted({str(a[4][0]) for a in socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)})
            out[name] = {"addresses": addrs}
        except (OSError, UnicodeError) as exc:
            out[name] = {"addresses": [], "error": str(exc)}
    return out


def probe_url(url: str, timeout: int) -> dict:
    for method in ("HEAD", "GET"):
        try:
            req = urllib.request.Request(url, method=method, headers={"Range": "bytes=0-0"})
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return {"status": resp.status}
        except urllib.error.HTTPError as exc:
            if method == "HEAD" and exc.code in (403, 405, 501):
                continue
            return {"status": exc.code}
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return {"error": str(getattr(exc, "reason", exc))}
    return {"error": "no answer"}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "paths": {"type": "list", "elements": "str", "default": []},
            "ports": {"type": "list", "elements": "int", "default": []},
            "names": {"type": "list", "elements": "str", "default": []},
            "urls": {"type": "list", "elements": "str", "default": []},
            "timeout": {"type": "int", "default": 10},
        },
        supports_check_mode=True,
    )
    now = time.time()
    p = module.params
    urls = [u for u in p["urls"] if u.startswith(("http://", "https://"))]
    module.exit_json(
        changed=False,
        time=now,
        uid=os.geteuid(),
        os=os_release(),
        arch=os.uname().machine,
        cpus=cpus(),
        memory_mb=memory_mb(),
        disks={path: disk(path) for path in p["paths"]},
        listeners=listeners(set(p["ports"])),
        resolved=resolve(p["names"]),
        urls={u: probe_url(u, p["timeout"]) for u in urls},
    )


if __name__ == "__main__":
    main()
