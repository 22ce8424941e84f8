"""`nxprovision prechecks`: what the hosts must offer before a deploy, judged from what they report.

The facts are read by the `nx_host_facts` module (read-only) through the `nx_prechecks` action plugin of
playbooks/prechecks.yml; this module decides what each host needs (from the cluster model) and turns the facts
into rows. Pure functions: the unit tests feed them facts.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from nxprovision.model.cluster import Cluster, host_platform, host_setting
from nxprovision.model.ports import host_ports


def _supported_os() -> tuple[tuple[str, str], ...]:
    """(os-release ID, VERSION_ID major) of every release the compatibility matrix lists (`debian12` ...)."""
    from nxprovision.model.compat import load

    out = []
    for name in load().os_releases:
        m = re.fullmatch(r"([a-z]+)(\d+)", name)
        if m:
            out.append((m.group(1), m.group(2)))
    return tuple(out)


# Operating systems the roles are written for, from the compatibility matrix (nxprovision/model/compatibility.yml).
SUPPORTED_OS: tuple[tuple[str, str], ...] = _supported_os()

# Per-component minimums. A host running several components needs the largest CPU count among them, the sum of
# their memory, and on each filesystem the sum of the disk space of the components whose data lives there.
# Override any of them with `nxprovision_prechecks_minimums: {<group>: {cpus: N, memory_mb: N, disk_mb: N}}`.
DEFAULT_MINIMUMS: dict[str, dict[str, int]] = {
    "nuxeo": {"cpus": 2, "memory_mb": 4096, "disk_mb": 10240},
    "opensearch": {"cpus": 2, "memory_mb": 4096, "disk_mb": 20480},
    "postgresql": {"cpus": 2, "memory_mb": 2048, "disk_mb": 20480},
    "mongodb": {"cpus": 2, "memory_mb": 2048, "disk_mb": 20480},
    "kafka": {"cpus": 1, "memory_mb": 2048, "disk_mb": 10240},
    "zookeeper": {"cpus": 1, "memory_mb": 1024, "disk_mb": 2048},
    "s3": {"cpus": 1, "memory_mb": 1024, "disk_mb": 20480},
    "etcd": {"cpus": 1, "memory_mb": 512, "disk_mb": 2048},
    "loadbalancers": {"cpus": 1, "memory_mb": 512, "disk_mb": 1024},
}
MINIMUMS_SETTING = "nxprovision_prechecks_minimums"
# Clock offset from the controller above which a host is reported (seconds, after the measuring error).
CLOCK_SETTING = "nxprovision_prechecks_clock_max_offset_s"
DEFAULT_CLOCK_MAX_OFFSET_S = 1.0

# group -> (setting naming the data directory, its default when the roles derive it): where the disk goes.
_DATA_DIRS: dict[str, str] = {
    "nuxeo": "nuxeo_data_dir", "opensearch": "opensearch_data_dir", "mongodb": "mongodb_data_dir",
    "kafka": "kafka_data_dir", "zookeeper": "zookeeper_data_dir", "s3": "seaweedfs_data_dir",
    "etcd": "etcd_data_dir",
}
_FALLBACK_DIRS = {"postgresql": "/var/lib/postgresql", "loadbalancers": "/etc/haproxy"}

# group -> systemd units of ours that may hold its ports, and the setting naming the service's user.
_UNITS: dict[str, tuple[str, ...]] = {
    "nuxeo": ("nuxeo.service",),
    "postgresql": ("postgresql.service", "postgresql@*.service", "patroni.service"),
    "mongodb": ("mongod.service",),
    "opensearch": ("opensearch.service", "elasticsearch.service"),
    "kafka": ("kafka.service",),
    "zookeeper": ("zookeeper.service",),
    "s3": ("seaweedfs.service", "seaweedfs-*.service"),
    "loadbalancers": ("haproxy.service",),
    "monitoring": ("prometheus.service", "prometheus-alertmanager.service"),
}
_USERS: dict[str, str] = {"nuxeo": "nuxeo_user", "opensearch": "opensearch_user", "kafka": "kafka_user",
                          "mongodb": "mongodb_user", "s3": "seaweedfs_user"}
_FIXED_USERS: dict[str, str] = {"postgresql": "postgres", "loadbalancers": "haproxy", "zookeeper": "zookeeper",
                                "monitoring": "prometheus"}

# Settings `init` writes with a placeholder the operator must replace.
PLACEHOLDER_DOMAINS = ("example.com", "example.org", "example.net", "example.invalid")

OK, WARN, ERROR, SKIP = "ok", "warn", "error", "skip"
INVENTORY = "(inventory)"  # the host column of rows about the inventory as a whole


@dataclass
class Row:
    host: str
    check: str
    status: str
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class HostPlan:
    """What one host must offer, from the model; also the arguments of the `nx_host_facts` module."""

    host: str
    components: list[str]
    cpus: int
    memory_mb: int
    paths: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> {groups, disk_mb}
    ports: list[dict[str, Any]] = field(default_factory=list)  # {port, group, label, key, units, users}
    peers: dict[str, str] = field(default_factory=dict)  # other host -> the address the cluster uses for it
    urls: dict[str, str] = field(default_factory=dict)  # url -> what it is
    clock_max_offset_s: float = DEFAULT_CLOCK_MAX_OFFSET_S
    # what the inventory says the host is (nx_os_release, nx_cpu_arch): the model named its archives after it
    platform: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostPlan:
        return cls(**data)


def minimums(c: Cluster, host: str) -> dict[str, dict[str, int]]:
    """The defaults, overridden per group and per key by nxprovision_prechecks_minimums (host or group vars)."""
    merged = {g: dict(v) for g, v in DEFAULT_MINIMUMS.items()}
    override = host_setting(c.view, c.settings, host, MINIMUMS_SETTING) or {}
    if isinstance(override, dict):
        for group, values in override.items():
            if isinstance(values, dict):
                for k, v in values.items():
                    try:
                        merged.setdefault(str(group), {})[str(k)] = int(v)
                    except (TypeError, ValueError):
                        continue
    return merged


def _groups_of(c: Cluster, host: str) -> list[str]:
    groups = set(c.hosts[host].groups)
    if groups & {"nuxeo_front", "nuxeo_worker"}:
        groups.add("nuxeo")
    if c.settings.get("s3_mode") == "external":
        groups.discard("s3")
    if c.derived.get("kafka", {}).get("mode") == "kraft":
        groups.discard("zookeeper")
    if c.derived.get("db", {}).get("manager") != "patroni":
        groups.discard("etcd")
    return [g for g in DEFAULT_MINIMUMS if g in groups]


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


def _download_urls(c: Cluster, host: str, groups: list[str]) -> dict[str, str]:
    d = c.derived
    urls: dict[str, str] = {}
    if "nuxeo" in groups:
        urls[str(d.get("nuxeo", {}).get("distribution_url") or "")] = "Nuxeo distribution"
        for name, url in (d.get("nuxeo", {}).get("package_urls") or {}).items():
            urls[str(url)] = f"Nuxeo package {name}"
    def own(part: str) -> str:  # this host's archive of a per-platform product
        return str(((d.get(part, {}).get("archives") or {}).get(host) or {}).get("url") or "")

    if "opensearch" in groups:
        urls[own("search")] = "search archive"
    if "kafka" in groups:
        urls[str(d.get("kafka", {}).get("archive_url") or "")] = "Kafka archive"
    if "mongodb" in groups and c.database == "mongodb":
        urls[own("db")] = "MongoDB archive"
    if "s3" in groups:
        urls[own("s3")] = "SeaweedFS archive"
    return {u: what for u, what in urls.items() if u.startswith(("http://", "https://"))}


def host_plan(c: Cluster, host: str) -> HostPlan:
    groups = _groups_of(c, host)
    mins = minimums(c, host)
    paths: dict[str, dict[str, Any]] = {}
    for g in groups:
        key = _DATA_DIRS.get(g)
        path = str(host_setting(c.view, c.settings, host, key) or "") if key else ""
        if g == "postgresql" and c.database == "postgresql":
            path = str(c.derived.get("backup", {}).get("data_dir") or "") or _FALLBACK_DIRS[g]
        path = path or _FALLBACK_DIRS.get(g, "/var/lib")
        entry = paths.setdefault(path, {"groups": [], "disk_mb": 0})
        entry["groups"].append(g)
        entry["disk_mb"] += int(mins.get(g, {}).get("disk_mb", 0))
    ports = []
    for group, label, key, value in host_ports(c, host):
        if group in groups:
            try:
                port = int(str(value))
            except ValueError:
                continue  # validate reports it
            user_key = _USERS.get(group)
            user = (str(host_setting(c.view, c.settings, host, user_key) or "") if user_key
                    else _FIXED_USERS.get(group, ""))
            ports.append({"port": port, "group": group, "label": label, "key": key,
                          "units": list(_UNITS.get(group, ())), "users": [user] if user else []})
    try:
        max_offset = float(host_setting(c.view, c.settings, host, CLOCK_SETTING) or DEFAULT_CLOCK_MAX_OFFSET_S)
    except (TypeError, ValueError):
        max_offset = DEFAULT_CLOCK_MAX_OFFSET_S
    return HostPlan(
        host=host, components=groups,
        cpus=max([int(mins.get(g, {}).get("cpus", 0)) for g in groups] or [0]),
        memory_mb=sum(int(mins.get(g, {}).get("memory_mb", 0)) for g in groups),
        paths=paths, ports=ports,
        peers={h.name: h.address for h in c.hosts.values() if h.name != host},
        urls=_download_urls(c, host, groups), clock_max_offset_s=max_offset,
        platform={"os_release": (p := host_platform(c, host)).os_release, "cpu_arch": p.cpu_arch},
    )


def module_args(plan: HostPlan) -> dict[str, Any]:
    """What nx_host_facts reads on the host: only what the plan needs."""
    return {
        "paths": sorted(plan.paths),
        "ports": sorted({p["port"] for p in plan.ports}),
        "names": sorted({a for a in plan.peers.values() if not _is_address(a)}),
        "urls": sorted(plan.urls),
    }


# -- judging the facts --------------------------------------------------------------------------------------


def _mb(value: float) -> str:
    return f"{value / 1024:.1f} GB" if value >= 1024 else f"{int(value)} MB"


def _unit_matches(unit: str, patterns: Iterable[str]) -> bool:
    import fnmatch

    return any(fnmatch.fnmatchcase(unit, p) for p in patterns)


def _holder(listener: dict[str, Any]) -> str:
    proc = listener.get("process") or "?"
    pid = listener.get("pid")
    user = listener.get("user")
    unit = listener.get("unit")
    bits = [f"pid {pid}" if pid else "", f"user {user}" if user else "", f"unit {unit}" if unit else ""]
    return f"{proc} ({', '.join(b for b in bits if b)})"


def port_rows(plan: HostPlan, listeners: dict[str, list[dict[str, Any]]]) -> list[Row]:
    """One row per port: free, held by the component's own service, or held by something else (error)."""
    rows = []
    for p in plan.ports:
        port = int(p["port"])
        held = listeners.get(str(port)) or listeners.get(port) or []  # type: ignore[call-overload]
        what = f"port {port} ({p['label']})"
        if not held:
            rows.append(Row(plan.host, f"port {port}", OK, f"{what} free"))
            continue
        foreign = [h for h in held
                   if not (_unit_matches(str(h.get("unit") or ""), p["units"])
                           or (h.get("user") and h.get("user") in p["users"]))]
        if not foreign:
            rows.append(Row(plan.host, f"port {port}", OK, f"{what} held by our {p['group']} service: "
                                                           f"{_holder(held[0])}"))
        else:
            rows.append(Row(plan.host, f"port {port}", ERROR,
                            f"{what} is held by {', '.join(dict.fromkeys(_holder(h) for h in foreign))}",
                            f"stop or move that process on {plan.host}, or set {p['key']} to a free port"))
    return rows


def os_row(host: str, os_facts: dict[str, Any]) -> Row:
    os_id = str(os_facts.get("id") or "").lower()
    version = str(os_facts.get("version_id") or "").split(".")[0]
    name = os_facts.get("pretty_name") or f"{os_id} {version}".strip() or "unknown"
    supported = ", ".join(f"{i.capitalize()} {v}" for i, v in SUPPORTED_OS)
    if (os_id, version) in SUPPORTED_OS:
        return Row(host, "os", OK, str(name))
    return Row(host, "os", ERROR, f"{name} is not a supported OS release (supported: {supported})",
               f"install {host} with one of: {supported}")


def platform_row(plan: HostPlan, facts: dict[str, Any]) -> Row | None:
    """The host is what the inventory says (nx_os_release, nx_cpu_arch): the model named the vendor archives after
    it on the controller, so a host of another release or architecture would unpack binaries that cannot run."""
    if not plan.platform:
        return None
    want_arch, want_release = plan.platform.get("cpu_arch", ""), plan.platform.get("os_release", "")
    arch = str(facts.get("arch") or "")
    os_facts = facts.get("os") or {}
    release = f"{str(os_facts.get('id') or '').lower()}{str(os_facts.get('version_id') or '').split('.')[0]}"
    wrong = []
    if arch and arch != want_arch:
        wrong.append(f"its CPU is {arch}, the inventory says nx_cpu_arch: {want_arch}")
    if release and want_release and release != want_release:
        wrong.append(f"it runs {release}, the inventory says nx_os_release: {want_release}")
    if wrong:
        return Row(plan.host, "platform", ERROR, "; ".join(wrong) + ": the archives would be built for the "
                   "inventory's platform", f"set nx_cpu_arch / nx_os_release of {plan.host} to what it runs "
                   f"({arch or want_arch}, {release or want_release}), or use a host of the inventory's platform")
    return Row(plan.host, "platform", OK, f"{release or '?'} on {arch or '?'} as the inventory says")


def resource_rows(plan: HostPlan, facts: dict[str, Any]) -> list[Row]:
    rows = []
    comps = ", ".join(plan.components) or "no component"
    cpus = int(facts.get("cpus") or 0)
    if plan.cpus and cpus < plan.cpus:
        rows.append(Row(plan.host, "cpu", ERROR, f"{cpus} CPU(s), {comps} need {plan.cpus}",
                        f"give {plan.host} {plan.cpus} CPUs, or lower {MINIMUMS_SETTING}.<group>.cpus"))
    else:
        rows.append(Row(plan.host, "cpu", OK, f"{cpus} CPU(s) (needs {plan.cpus})"))
    mem = int(facts.get("memory_mb") or 0)
    if plan.memory_mb and mem < plan.memory_mb:
        rows.append(Row(plan.host, "memory", ERROR, f"{_mb(mem)}, {comps} need {_mb(plan.memory_mb)}",
                        f"give {plan.host} {_mb(plan.memory_mb)} of memory, or lower "
                        f"{MINIMUMS_SETTING}.<group>.memory_mb"))
    else:
        rows.append(Row(plan.host, "memory", OK, f"{_mb(mem)} (needs {_mb(plan.memory_mb)})"))
    # paths on one filesystem share its free space
    by_mount: dict[str, dict[str, Any]] = {}
    disks = facts.get("disks") or {}
    for path, need in plan.paths.items():
        d = disks.get(path) or {}
        if "free_mb" not in d:
            rows.append(Row(plan.host, f"disk {path}", WARN, f"could not read: {d.get('error', 'no answer')}"))
            continue
        m = by_mount.setdefault(str(d.get("mount") or path), {"free_mb": int(d["free_mb"]), "need": 0,
                                                             "groups": [], "paths": []})
        m["need"] += int(need["disk_mb"])
        m["groups"] += list(need["groups"])
        m["paths"].append(path)
    for mount, m in sorted(by_mount.items()):
        what = f"{_mb(m['free_mb'])} free on {mount} for {', '.join(m['paths'])}"
        if m["free_mb"] < m["need"]:
            rows.append(Row(plan.host, f"disk {mount}", ERROR, f"{what}; {', '.join(m['groups'])} need "
                                                               f"{_mb(m['need'])}",
                            f"free or add space on {plan.host}:{mount}, or lower {MINIMUMS_SETTING}.<group>.disk_mb"))
        else:
            rows.append(Row(plan.host, f"disk {mount}", OK, f"{what} (needs {_mb(m['need'])})"))
    return rows


def clock_row(plan: HostPlan, host_time: float, controller_time: float, uncertainty: float) -> Row:
    offset = host_time - controller_time
    detail = f"{offset:+.2f}s from the controller (measured to +/-{uncertainty:.2f}s)"
    if abs(offset) - uncertainty > plan.clock_max_offset_s:
        return Row(plan.host, "clock", WARN, detail + f", more than {plan.clock_max_offset_s:g}s",
                   f"synchronise {plan.host}'s clock (NTP: systemd-timesyncd or chrony); clustered services and "
                   "TLS need agreeing clocks")
    return Row(plan.host, "clock", OK, detail)


def resolve_rows(plan: HostPlan, resolved: dict[str, Any]) -> list[Row]:
    names = {h: a for h, a in plan.peers.items() if not _is_address(a)}
    if not plan.peers:
        return []
    if not names:
        return [Row(plan.host, "resolve", OK, f"skipped: the inventory gives its {len(plan.peers)} peer(s) "
                                              "by address")]
    bad = []
    for peer, name in sorted(names.items()):
        r = resolved.get(name) or {}
        if not r.get("addresses"):
            bad.append(f"{name if name == peer else f'{name} ({peer})'}: {r.get('error') or 'no address'}")
    if bad:
        more = f"; and {len(bad) - 3} more" if len(bad) > 3 else ""
        return [Row(plan.host, "resolve", ERROR, "does not resolve " + "; ".join(bad[:3]) + more,
                    f"add the names to {plan.host}'s DNS or /etc/hosts, or set ansible_host to the peers' "
                    "addresses")]
    return [Row(plan.host, "resolve", OK, f"resolves its {len(names)} peer name(s)")]


def url_rows(plan: HostPlan, checked: dict[str, Any]) -> list[Row]:
    rows = []
    for url, what in sorted(plan.urls.items()):
        r = checked.get(url) or {}
        status = r.get("status")
        if status and 200 <= int(status) < 400:
            rows.append(Row(plan.host, "mirror", OK, f"{what}: {url} ({status})"))
        else:
            why = f"HTTP {status}" if status else (r.get("error") or "no answer")
            rows.append(Row(plan.host, "mirror", ERROR, f"{what}: {url} not reachable from the host: {why}",
                            f"put the file on the mirror, or let {plan.host} reach {urlsplit(url).netloc} "
                            "(proxy, firewall)"))
    return rows


def evaluate(plan: HostPlan, facts: dict[str, Any], controller_time: float, uncertainty: float) -> list[Row]:
    """Every row of one host that answered."""
    rows = [Row(plan.host, "ssh", OK, "connected")]
    if facts.get("uid") == 0:
        rows.append(Row(plan.host, "become", OK, "runs as root"))
    else:
        rows.append(Row(plan.host, "become", ERROR, f"runs as uid {facts.get('uid')}, not root: the roles need root",
                        "the plays become root: give the SSH user sudo rights (-K when sudo asks a password) and "
                        "drop any ansible_become: false from the inventory, or log in as root"))
    rows.append(os_row(plan.host, facts.get("os") or {}))
    platform = platform_row(plan, facts)
    if platform:
        rows.append(platform)
    rows += resource_rows(plan, facts)
    rows += port_rows(plan, facts.get("listeners") or {})
    if facts.get("time"):
        rows.append(clock_row(plan, float(facts["time"]), controller_time, uncertainty))
    rows += resolve_rows(plan, facts.get("resolved") or {})
    rows += url_rows(plan, facts.get("urls") or {})
    return rows


def fast_rows(plan: HostPlan, facts: dict[str, Any], placeholders: list[Row] | None = None) -> list[Row]:
    """The cheap subset: connection, privileges, OS, platform, ports, and the placeholders (errors only) of the
    inventory and of this host."""
    rows = evaluate(plan, facts, float(facts.get("time") or 0), 0)
    rows = [r for r in rows if r.check in ("ssh", "become", "os", "platform") or r.check.startswith("port ")]
    return [r for r in placeholders or [] if r.status == ERROR and r.host in (plan.host, INVENTORY)] + rows


def failed_host_rows(host: str, message: str, unreachable: bool) -> list[Row]:
    first = (message.strip().splitlines() or ["no answer"])[0][:300]
    if unreachable:
        return [Row(host, "ssh", ERROR, f"unreachable: {first}",
                    "check the host is up, its address (ansible_host) and that SSH accepts the key/user")]
    return [Row(host, "ssh", OK, "connected"),
            Row(host, "become", ERROR, f"could not run as root: {first}",
                "give the SSH user sudo rights (passwordless, or pass -K), or log in as root")]


# -- on the controller, before connecting ---------------------------------------------------------------------


def _placeholder_in(value: Any) -> bool:
    if isinstance(value, str):
        low = value.lower()
        return any(re.search(r"(^|[./@])" + re.escape(d) + r"($|[/:])", low) for d in PLACEHOLDER_DOMAINS)
    if isinstance(value, dict):
        return any(_placeholder_in(v) for v in value.values())
    if isinstance(value, list):
        return any(_placeholder_in(v) for v in value)
    return False


def placeholder_rows(c: Cluster, resolve: Callable[[str], bool] | None = None) -> list[Row]:
    """Settings still holding init's example.com values, and hosts without an address that do not resolve."""
    from nxprovision.rotation import masked_names

    resolve = resolve or _resolves
    secret = masked_names()
    rows = []
    for key, value in sorted(c.settings.items()):
        if key in secret or key.startswith("ansible_") or not _placeholder_in(value):
            continue
        rows.append(Row(INVENTORY, "placeholder", ERROR, f"{key}: {value} is init's placeholder",
                        f"set {key} to the real value in group_vars"))
    for name, host in sorted(c.hosts.items()):
        address = str(host.vars.get("ansible_host") or "")
        if str(host.vars.get("ansible_connection") or "ssh") not in ("ssh", "smart", "ansible.builtin.ssh"):
            continue
        if _placeholder_in(address) or (not address and _placeholder_in(name)):
            rows.append(Row(name, "placeholder", ERROR, f"address {address or name} is a placeholder",
                            f"set ansible_host of {name} to its real address"))
        elif not address and not _is_address(name) and not resolve(name):
            # a warning: SSH may still reach it through ~/.ssh/config or a jump host
            rows.append(Row(name, "placeholder", WARN, f"no ansible_host and {name} does not resolve here",
                            f"set ansible_host of {name} to its address (or make the name resolve)"))
    return rows


def _resolves(name: str) -> bool:
    try:
        return bool(socket.getaddrinfo(name, None))
    except (OSError, UnicodeError):
        return False


def exit_code(rows: list[Row]) -> int:
    return 1 if any(r.status == ERROR for r in rows) else 0
