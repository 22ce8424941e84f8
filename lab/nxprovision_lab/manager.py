"""Lab life cycle: up, down, status and the failure verbs (kill, start, partition, heal)."""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nxprovision.errors import NxError
from nxprovision.hostkeys import KNOWN_HOSTS_NAME
from nxprovision.model import architectures
from nxprovision_lab import (
    addressing,
    aptsources,
    cgroups,
    hosts,
    image,
    mounts,
    network,
    preflight,
    procs,
    releases,
    services,
)
from nxprovision_lab.naming import STATE_ROOT, LabNames, check_host, check_name, valid_name
from nxprovision_lab.standins import jre as standin_jre
from nxprovision_lab.standins import kafka as standin_kafka
from nxprovision_lab.standins import mongodb as standin_mongodb
from nxprovision_lab.state import LEGACY_OS, LabHost, LabState, lab_names_on_disk


@dataclass
class UpTimings:
    base_build: float | None = None
    total: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)


@contextlib.contextmanager
def lab_lock(name: str) -> Iterator[None]:
    """One lab command at a time per lab; a second one is refused rather than left waiting."""
    STATE_ROOT.mkdir(parents=True, exist_ok=True)
    with open(LabNames(name).lock_file, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise NxError(
                f"another `nxprovision lab` command is working on lab '{name}'",
                "wait for it to finish (or stop it), then try again",
            ) from None
        yield


@contextlib.contextmanager
def _alloc_lock() -> Iterator[None]:
    STATE_ROOT.mkdir(parents=True, exist_ok=True)
    with open(STATE_ROOT / ".alloc.lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def plan_hosts(
    architecture: str | None, count: int | None, database: str
) -> tuple[str, dict[str, tuple[str, ...]], list[tuple[str, list[str]]]]:
    """(architecture, layout, [(host, groups)]) for `up --architecture A` or `up --hosts N`."""
    from nxprovision.init import _sample_layout

    if count is not None:
        if not 1 <= count <= addressing.MAX_HOSTS:
            raise NxError(f"--hosts {count} is out of range", f"ask for 1 to {addressing.MAX_HOSTS} hosts")
        names = tuple(f"host{i}" for i in range(1, count + 1))
        return "single", {"lab": names}, [(h, ["lab"]) for h in names]
    arch = architecture or "compact"
    if arch not in architectures.ARCHITECTURES:
        raise NxError(
            f"unknown architecture '{arch}'", f"use one of: {', '.join(architectures.ARCHITECTURES)}"
        )
    layout = _sample_layout(arch, database)
    order: dict[str, list[str]] = {}
    for group, members in layout.items():
        for h in members:
            order.setdefault(check_host(h), []).append(group)
    return arch, layout, list(order.items())


def traces(names: LabNames) -> list[str]:
    """What of a lab exists on the machine: state, processes, namespaces, links, mounts."""
    found: list[str] = []
    if names.state_dir.exists():
        found.append(f"state directory {names.state_dir}")
    if hosts.all_nspawns(names):
        found.append("running hosts")
    if procs.find(lambda c: services.is_lab_daemon(c, names)):
        found.append("lab daemons")
    if any(n.startswith(names.netns_prefix) for n in network.netns_names()):
        found.append("network namespaces")
    for link in network.link_names():
        if link == names.bridge or link.startswith(names.veth_prefix):
            alias = network.link_alias(link)
            if alias and alias != network.ALIAS_PREFIX + names.name:
                raise NxError(
                    f"lab '{names.name}' would reuse interface {link} of another lab ({alias})",
                    "pick another lab name with --name",
                )
            found.append(f"interface {link}")
    if mounts.mounts_under(names.state_dir):
        found.append("mounts")
    if any(d.is_dir() for d in cgroups.lab_dirs(names.name)):
        found.append("control groups")
    return found


def up(
    name: str, *, architecture: str | None = None, count: int | None = None, database: str = "postgresql",
    force_build: bool = False, log: Any = print, os_name: str = releases.DEFAULT_OS,
    host_os: dict[str, str] | None = None,
) -> tuple[LabState, UpTimings]:
    """`os_name` is every host's release but those `host_os` names (a mixed lab rehearses an OS migration)."""
    check_name(name)
    arch, layout, plan = plan_hosts(architecture, count, database)
    os_of = releases.plan_os([h for h, _ in plan], releases.get(os_name).os, host_os or {})
    preflight.check_all()
    names = LabNames(name)
    timings = UpTimings()
    started = time.monotonic()
    with lab_lock(name):
        existing = traces(names)
        if existing:
            st = LabState.load(name)
            what = "is running" if st and st.phase == "running" else f"has leftovers ({', '.join(existing)})"
            raise NxError(
                f"lab '{name}' {what}",
                f"run `nxprovision lab down --name {name}` first, or pick another --name",
            )
        mirrors = aptsources.machine_mirrors()
        with _alloc_lock():
            used = [ipaddress.IPv4Network(s.subnet) for n in lab_names_on_disk() if (s := LabState.load(n))]
            net = addressing.allocate(used, addressing.machine_networks(network.lab_devices()))
            bridge = addressing.bridge_ip(net)
            state = LabState(
                name=name, subnet=str(net), bridge_ip=str(bridge), architecture=arch, database=database,
                hosts=[
                    LabHost(name=h, index=i, ip=str(addressing.host_ip(net, i)), groups=g, os=os_of[h])
                    for i, (h, g) in enumerate(plan, start=1)
                ],
            )
            # recorded before any kernel object exists, so `down` after a crash knows the subnet
            state.save()
        try:
            _bring_up(state, mirrors, layout, force_build, timings, log)
        except BaseException:
            log(f"lab {name}: up failed, removing what was created")
            _teardown(names, state)
            raise
    timings.total = time.monotonic() - started
    return state, timings


def _phase(timings: UpTimings, label: str, t0: float) -> float:
    now = time.monotonic()
    timings.phases[label] = round(now - t0, 3)
    return now


def _bring_up(
    state: LabState, mirrors: aptsources.DebianMirrors, layout: dict[str, tuple[str, ...]], force_build: bool,
    timings: UpTimings, log: Any,
) -> None:
    names = state.names
    t = time.monotonic()
    names.ssh_key.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"nxprovision-lab-{state.name}",
         "-f", str(names.ssh_key)],
        check=True, capture_output=True,
    )
    pubkey = names.ssh_key.with_suffix(".pub").read_text()

    net = ipaddress.IPv4Network(state.subnet)
    network.create_bridge(names, ipaddress.IPv4Interface(f"{state.bridge_ip}/{net.prefixlen}"))
    for h in state.hosts:
        network.add_host(names, h.name, h.index, ipaddress.IPv4Interface(f"{h.ip}/{net.prefixlen}"))
    t = _phase(timings, "network", t)

    # the daemons first: a base image is built through the lab's apt cache, and the stand-in archives get
    # ready meanwhile
    state.apt_cache_dir = str(services.start_apt_cache(names, state.bridge_ip, mirrors))
    services.start_mirror(names, state.bridge_ip)
    mirror_error: list[BaseException] = []
    builder = threading.Thread(target=_build_mirror, args=(names.mirror_dir, mirror_error), daemon=True)
    builder.start()
    services.wait_listening(names, state.bridge_ip)
    t = _phase(timings, "services", t)

    state.base_images = _ensure_bases(state, mirrors, force_build, timings, log)
    state.base_image = state.base_images.get(LEGACY_OS, "")
    t = _phase(timings, "base_image", t)

    with ThreadPoolExecutor(max_workers=8) as pool:
        for f in [
            pool.submit(hosts.prepare, names, Path(state.base_for(h.os)), h, state.hosts, pubkey, state.bridge_ip,
                        mirrors)
            for h in state.hosts
        ]:
            f.result()
    t = _phase(timings, "overlays", t)

    for h in state.hosts:
        hosts.boot(names, h)
    hosts.wait_ssh(names, state.hosts)
    services.check_running(names)
    t = _phase(timings, "boot_ssh", t)
    for problem in hosts.refresh_package_lists(names, state.hosts):
        # not fatal: the deploy refreshes stale lists itself, only more slowly
        log(f"lab {state.name}: {problem}")
    t = _phase(timings, "package_lists", t)
    builder.join()
    if mirror_error:
        raise mirror_error[0]
    t = _phase(timings, "mirror", t)

    write_lab_inventory(state, layout)
    _phase(timings, "inventory", t)
    state.phase = "running"
    state.pids = current_pids(state)
    state.save()


def _ensure_bases(
    state: LabState, mirrors: aptsources.DebianMirrors, force_build: bool, timings: UpTimings, log: Any,
) -> dict[str, str]:
    """The cached base image of each release the lab's hosts run (built once per release)."""
    bases: dict[str, str] = {}
    proxy = f"http://{state.bridge_ip}:{services.APT_PORT}"
    for os_name in sorted({h.os for h in state.hosts}):
        suite = releases.get(os_name).suite
        if not image.image_path(suite).is_dir() or force_build:
            log(f"lab {state.name}: building the {os_name} ({suite}) base image (once; a minute or two)")
        # the build log lives with the image cache: a failed up removes the lab directory
        base, took = image.ensure_base(
            mirrors.archive, suite=suite, force=force_build, log=image.build_log(suite), proxy=proxy
        )
        if took is not None:
            timings.base_build = (timings.base_build or 0.0) + took
        bases[os_name] = str(base)
    return bases


def _build_mirror(mirror_dir: Path, errors: list[BaseException]) -> None:
    try:
        from nxprovision_lab import standins  # another part of the lab, optional until it lands
    except ImportError:
        return
    build = getattr(standins, "build_mirror", None)
    if build is None:
        return
    try:
        mirror_dir.mkdir(parents=True, exist_ok=True)
        build(mirror_dir)
    except BaseException as exc:  # re-raised in the main thread
        errors.append(exc)


def mirror_url(bridge_ip: str) -> str:
    return f"http://{bridge_ip}:{services.MIRROR_PORT}"


LAB_KAFKA_BUCKET = "kafka"


def lab_release(state: LabState) -> str:
    """The release most of the lab's hosts run (the inventory's nx_os_release; the others say theirs)."""
    counts: dict[str, int] = {}
    for h in state.hosts:
        counts[h.os] = counts.get(h.os, 0) + 1
    return max(sorted(counts), key=lambda r: counts[r]) if counts else releases.DEFAULT_OS


def lab_group_vars(state: LabState) -> dict[str, Any]:
    """Inventory settings that point the roles at the lab's mirror and load balancer."""
    base = mirror_url(state.bridge_ip)
    values: dict[str, Any] = {
        f"{product}_download_base_url": f"{base}/{product}"
        for product in ("nuxeo", "kafka", "opensearch", "mongodb", "seaweedfs", "java")
    }
    # taken only by Nuxeo nodes whose OS release ships no OpenJDK of Nuxeo's Java (LTS 2025 on Debian 12)
    values["java_version"] = standin_jre.VERSION
    # the hosts' release as the lab booted them (per host where a mixed lab differs), and the PostgreSQL major
    # that release's archive ships: the inventory says what the hosts are
    release = lab_release(state)
    values["nx_os_release"] = release
    from nxprovision.model.compat import load as load_compat

    known = load_compat().os_releases.get(release)
    if known and known.postgresql:
        values["postgresql_version"] = known.postgresql[0]
    lbs = [h for h in state.hosts if "loadbalancers" in h.groups]
    if lbs:
        values = {"nx_public_url": f"https://{lbs[0].ip}/nuxeo", **values}
    if len(lbs) > 1:
        # the sample's virtual IP lies outside the lab: give keepalived a free lab address instead, and
        # send users to it (keepalived moves it to the surviving load balancer)
        vip = str(addressing.vip(ipaddress.IPv4Network(state.subnet)))
        values["nx_vip"] = vip
        values["nx_public_url"] = f"https://{vip}/nuxeo"
    if state.architecture == "distributed" and any("s3" in h.groups for h in state.hosts):
        s3 = next(h for h in state.hosts if "s3" in h.groups)
        values.update(standin_kafka.shared_log_settings(s3.ip, LAB_KAFKA_BUCKET))
    if state.database == "mongodb":
        values.update(standin_mongodb.INVENTORY_SETTINGS)
    return values


def lab_connection_vars(state: LabState) -> dict[str, Any]:
    names = state.names
    return {
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(names.ssh_key),
        # The lab made each host's key (hosts.prepare) and recorded it beside the inventory: lab runs check host
        # keys like production ones, and plain `ansible` runs against the lab find the file here.
        "ansible_ssh_common_args": (
            f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={names.inventory_dir.resolve() / KNOWN_HOSTS_NAME} "
            "-o ControlMaster=auto -o ControlPersist=60s "
            # failure tests kill and partition hosts: a persisted connection to one must not hang a run
            "-o ServerAliveInterval=5 -o ServerAliveCountMax=3"
        ),
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_pipelining": True,
    }


def write_known_hosts(state: LabState, directory: Path) -> Path:
    """The lab's hosts' keys, read from their own disks (the lab generated them): nothing to scan, nothing to
    confirm. A host powered off and on keeps its disk, hence its key."""
    lines = []
    for h in state.hosts:
        pub = state.names.host_root(h.name) / "etc/ssh/ssh_host_ed25519_key.pub"
        if pub.exists():  # a host without one is refused by SSH, with the fix
            kind, blob = pub.read_text().split()[:2]
            lines.append(f"{h.ip} {kind} {blob}")
    path = directory / KNOWN_HOSTS_NAME
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o644)
    return path


def write_lab_inventory(
    state: LabState, layout: dict[str, tuple[str, ...]], directory: Path | None = None
) -> Path:
    from nxprovision.init import write_inventory

    directory = directory or state.names.inventory_dir
    release = lab_release(state)
    hostvars: dict[str, dict[str, Any]] = {
        h.name: {"ansible_host": h.ip, **({"nx_os_release": h.os} if h.os != release else {})} for h in state.hosts}
    plain = "lab" in layout
    write_inventory(
        directory, state.architecture, database=state.database,
        layout=None if plain else dict(layout), hostvars=hostvars,
        group_vars=lab_group_vars(state), extra_group_vars_files={"lab": lab_connection_vars(state)},
        overwrite_layout=True,
    )
    write_known_hosts(state, directory)
    if plain:
        # `--hosts N`: a plain group of hosts, no architecture roles
        hosts_yaml = {"all": {"children": {"lab": {"hosts": hostvars}}}}
        text = yaml.safe_dump(hosts_yaml, default_flow_style=False, sort_keys=False)
        (directory / "hosts.yml").write_text(text)
    return directory


def current_pids(state: LabState) -> dict[str, int]:
    names = state.names
    pids: dict[str, int] = {}
    for h in state.hosts:
        if (p := hosts.nspawn_pid(names, h.name)) is not None:
            pids[f"host-{h.name}"] = p
    for what in (services.ACNG, services.MIRROR):
        p = procs.read_pid_file(names.pid_file(what))
        if p and services.is_lab_daemon(procs.cmdline(p), names):
            pids[what] = p
    return pids


# -- down -------------------------------------------------------------------------------------------


def down(name: str) -> bool:
    """Remove a lab and all its leftovers; False when there was nothing to remove."""
    check_name(name)
    preflight.require_root()
    names = LabNames(name)
    with lab_lock(name):
        if not traces(names):
            return False
        _teardown(names, LabState.load(name))
    return True


def _teardown(names: LabNames, state: LabState | None) -> None:
    host_names = [h.name for h in state.hosts] if state else []
    # hosts found by namespace too: the state may predate them, or be gone
    host_names += [
        ns[len(names.netns_prefix):] for ns in network.netns_names()
        if ns.startswith(names.netns_prefix) and ns[len(names.netns_prefix):] not in host_names
    ]
    hosts.poweroff_all(names, host_names)
    cgroups.remove_lab(names.name)
    services.stop_daemons(names)
    mounts.unmount_under(names.state_dir)
    subnet = ipaddress.IPv4Network(state.subnet) if state else None
    network.remove(names, subnet)
    left = mounts.mounts_under(names.state_dir)
    if left:
        raise NxError(
            f"cannot unmount {left[0]} of lab '{names.name}'",
            f"find what uses it with `fuser -vm {left[0]}`, stop it, then run `nxprovision lab down` again",
        )
    if names.state_dir.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", str(names.state_dir)], check=False)
        shutil.rmtree(names.state_dir, ignore_errors=True)


def all_lab_names() -> list[str]:
    """Every lab with any trace: state directories, and namespaces or links of labs without one."""
    found = set(lab_names_on_disk())
    for ns in network.netns_names():
        if ns.startswith("nx-"):
            found.add(ns[3:].split("-", 1)[0])
    for link in network.link_names():
        alias = network.link_alias(link) or ""
        if alias.startswith(network.ALIAS_PREFIX):
            found.add(alias[len(network.ALIAS_PREFIX):])
    return sorted(n for n in found if valid_name(n))


def down_all() -> list[str]:
    preflight.require_root()
    removed = [n for n in all_lab_names() if down(n)]
    # unreachable routes whose lab left no other trace (its bridge and state were already gone)
    in_use = {ipaddress.IPv4Network(s.subnet) for n in lab_names_on_disk() if (s := LabState.load(n))}
    for net in network.unreachable_routes():
        if net not in in_use and net.subnet_of(addressing.LAB_RANGE):
            network.ip("route", "del", "unreachable", str(net), "metric", str(addressing.UNREACHABLE_METRIC),
                       check=False)
    return removed


# -- the running lab --------------------------------------------------------------------------------


def require_state(name: str) -> LabState:
    check_name(name)
    state = LabState.load(name)
    if state is None:
        raise NxError(
            f"no lab named '{name}' on this machine", f"start one with `nxprovision lab up --name {name}`"
        )
    return state


def require_host(state: LabState, host: str) -> LabHost:
    h = state.host(host)
    if h is None:
        raise NxError(
            f"lab '{state.name}' has no host '{host}'",
            f"use one of: {', '.join(x.name for x in state.hosts)}",
        )
    return h


def host_status(state: LabState) -> list[dict[str, Any]]:
    names = state.names
    rows = []
    for h in state.hosts:
        link = network.link_is_up(names, h.index)
        rows.append({
            "host": h.name, "ip": h.ip, "groups": h.groups, "os": h.os,
            "state": "running" if hosts.running(names, h.name) else "stopped",
            "partitioned": link is False,
        })
    return rows


def kill(name: str, host: str) -> None:
    preflight.require_root()
    state = require_state(name)
    require_host(state, host)
    with lab_lock(name):
        hosts.hard_kill(state.names, host)
        state.pids = current_pids(state)
        state.save()


def start(name: str, host: str) -> None:
    preflight.require_root()
    state = require_state(name)
    h = require_host(state, host)
    names = state.names
    with lab_lock(name):
        if hosts.running(names, host):
            raise NxError(
                f"lab host {host} is already running", f"power it off first: `nxprovision lab kill {host}`"
            )
        # a stale nspawn whose host died on its own: clear it before a new boot takes the overlay
        hosts.hard_kill(names, host)
        hosts.boot(names, h)
        hosts.wait_ssh(names, [h])
        state.pids = current_pids(state)
        state.save()


def reboot(name: str, host: str) -> float:
    """A clean reboot: the host's systemd stops every service in order, powers off, and boots again.

    Returns the seconds until the host answered SSH again.
    """
    preflight.require_root()
    state = require_state(name)
    h = require_host(state, host)
    names = state.names
    with lab_lock(name):
        if not hosts.running(names, host):
            raise NxError(f"lab host {host} is not running", f"boot it instead: `nxprovision lab start {host}`")
        t0 = time.monotonic()
        hosts.poweroff(names, host, timeout=90)  # what systemd gives a unit to stop
        hosts.boot(names, h)
        hosts.wait_ssh(names, [h])
        state.pids = current_pids(state)
        state.save()
        return time.monotonic() - t0


def add_host(name: str, host: str, groups: list[str], os_name: str | None = None) -> LabHost:
    """Boot one more host in a running lab and add it to the lab inventory's groups, to rehearse add-node.

    `os_name` (default: the release of the lab's first host) may differ from the other hosts', to rehearse a
    cluster moving to the next Debian release host by host."""
    from nxprovision.init import render_hosts_yaml
    from nxprovision.model.architectures import GROUPS

    preflight.require_root()
    check_host(host)
    unknown = [g for g in groups if (g not in GROUPS and g != "lab") or g == "nuxeo"]
    if not groups or unknown:
        raise NxError(f"cannot add {host} to group(s) {', '.join(unknown) or '(none)'}",
                      f"pass --group with one of: {', '.join(g for g in GROUPS if g != 'nuxeo')}")
    state = require_state(name)
    if any(h.name == host for h in state.hosts):
        raise NxError(f"lab {name} already has a host {host}", "pick another host name")
    os_name = releases.get(os_name or (state.hosts[0].os if state.hosts else releases.DEFAULT_OS)).os
    names = state.names
    net = ipaddress.IPv4Network(state.subnet)
    with lab_lock(name):
        mirrors = aptsources.machine_mirrors()
        if not state.base_for(os_name):
            suite = releases.get(os_name).suite
            base, _ = image.ensure_base(mirrors.archive, suite=suite, log=image.build_log(suite),
                                        proxy=f"http://{state.bridge_ip}:{services.APT_PORT}")
            state.base_images[os_name] = str(base)
        index = max(h.index for h in state.hosts) + 1
        new = LabHost(name=host, index=index, ip=str(addressing.host_ip(net, index)), groups=list(groups),
                      os=os_name)
        network.add_host(names, host, index, ipaddress.IPv4Interface(f"{new.ip}/{net.prefixlen}"))
        pubkey = names.ssh_key.with_suffix(".pub").read_text()
        hosts.prepare(names, Path(state.base_for(os_name)), new, [*state.hosts, new], pubkey, state.bridge_ip,
                      mirrors)
        hosts.boot(names, new)
        hosts.wait_ssh(names, [new])
        hosts.refresh_package_lists(names, [new])  # not fatal, as at `up`
        state.hosts.append(new)
        state.pids = current_pids(state)
        state.save()
        inv = names.inventory_dir / "hosts.yml"
        layout: dict[str, list[str]] = {}
        for h in state.hosts:
            for g in h.groups:
                layout.setdefault(g, []).append(h.name)
        hostvars = {h.name: {"ansible_host": h.ip} for h in state.hosts}
        # what the operator added to the inventory since `up` (a monitoring host, a host's own variables) stays
        kept_layout, kept_vars = inventory_layout(inv.read_text() if inv.exists() else "")
        for g, members in kept_layout.items():
            if g in GROUPS:
                layout.setdefault(g, []).extend(m for m in members if m not in layout.get(g, []))
        hostvars = {h: {**kept_vars.get(h, {}), **v} for h, v in hostvars.items()}
        if set(layout) <= set(GROUPS):
            inv.write_text(render_hosts_yaml(layout, hostvars))
        else:  # a `--hosts N` lab: plain groups
            plain = {"all": {"children": {g: {"hosts": {h: hostvars[h] for h in members}}
                                          for g, members in layout.items()}}}
            inv.write_text(yaml.safe_dump(plain, default_flow_style=False, sort_keys=False))
        write_known_hosts(state, names.inventory_dir)
    return new


def inventory_layout(text: str) -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
    """({group: hosts}, {host: its variables}) of a hosts.yml: every group that lists hosts, at any depth."""
    layout: dict[str, list[str]] = {}
    hostvars: dict[str, dict[str, Any]] = {}

    def walk(group: str, node: Any) -> None:
        if not isinstance(node, dict):
            return
        for host, values in (node.get("hosts") or {}).items():
            layout.setdefault(group, []).append(str(host))
            if isinstance(values, dict):
                hostvars.setdefault(str(host), {}).update(values)
        for child, sub in (node.get("children") or {}).items():
            walk(str(child), sub)

    data = yaml.safe_load(text) if text.strip() else None
    if isinstance(data, dict):
        walk("all", data.get("all"))
    return layout, hostvars


def partition(name: str, host: str, *, heal: bool = False) -> None:
    preflight.require_root()
    state = require_state(name)
    h = require_host(state, host)
    with lab_lock(name):
        network.set_link(state.names, h.index, up=heal)


def pids_of_lab(names: LabNames) -> list[int]:
    """Every live process that belongs to the lab: nspawns, their hosts' processes, daemons."""
    found = set(hosts.all_nspawns(names))
    found |= set(procs.find(lambda c: services.is_lab_daemon(c, names)))
    for ns in network.netns_names():
        if ns.startswith(names.netns_prefix):
            found |= set(network.netns_pids(ns))
    return sorted(p for p in found if procs.alive(p) and p != os.getpid())
