"""Each host's vendor archives exist for its OS release and CPU architecture (nx_os_release, nx_cpu_arch).

The model names the archives on the controller, before any fact (nxprovision/model/artifacts.py); these rules
refuse, before any host is touched, a platform the inventory cannot declare or a vendor does not publish for.
"""

from __future__ import annotations

from collections.abc import Iterator

from nxprovision.model.artifacts import (
    ARCH_SINCE,
    CPU_ARCHES,
    MONGODB_BUILDS,
    archive_problem,
    artifact_path,
    mongodb_build,
)
from nxprovision.model.cluster import Cluster, host_platform, host_setting, search_product
from nxprovision.rules._where import of_setting
from nxprovision.rules.finding import Finding, error, warning


def _names(hosts: list[str]) -> str:
    return ", ".join(hosts[:5]) + (f" and {len(hosts) - 5} more" if len(hosts) > 5 else "")


def _downloads(c: Cluster) -> dict[str, tuple[str, list[str]]]:
    """product -> (version, the hosts that download its archive), for the archives built per platform."""
    out: dict[str, tuple[str, list[str]]] = {}
    if c.database == "mongodb" and c.db_hosts:
        out["mongodb"] = (str(c.settings.get("mongodb_version") or ""), list(c.db_hosts))
    if c.search_hosts:
        out[search_product(c.settings)] = (str(c.settings.get("search_version") or ""), list(c.search_hosts))
    if c.s3_hosts and str(c.settings.get("s3_mode", "seaweedfs")) == "seaweedfs":
        out["seaweedfs"] = (str(c.settings.get("seaweedfs_version") or ""), list(c.s3_hosts))
    java = {h: j["archive"] for h, j in (c.derived.get("java") or {}).items() if j.get("archive")}
    if java:
        out["java"] = (str(next(iter(java.values())).get("version") or ""), sorted(java))
    return out


def _archives(c: Cluster, product: str) -> dict[str, str]:
    """host -> its archive URL, as the model gives it to the roles."""
    if product == "java":
        return {h: str(j["archive"].get("url") or "") for h, j in (c.derived.get("java") or {}).items()
                if j.get("archive")}
    part = {"mongodb": "db", "seaweedfs": "s3"}.get(product, "search")
    return {h: str(a.get("url") or "") for h, a in (c.derived.get(part, {}).get("archives") or {}).items()}


def check(c: Cluster) -> Iterator[Finding]:
    bad_arch: dict[str, list[str]] = {}
    for h in c.hosts:
        arch = host_platform(c, h).cpu_arch
        if arch not in CPU_ARCHES:
            bad_arch.setdefault(arch, []).append(h)
    for arch, hosts in bad_arch.items():
        hint = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}.get(arch.lower())
        yield error("settings.cpu_arch", f"hosts {_names(hosts)}",
                    f"nx_cpu_arch '{arch}' is not a CPU architecture nxprovision provisions",
                    (f"set nx_cpu_arch to {hint} ('{arch}' is what some vendors call it)" if hint else
                     f"set nx_cpu_arch to one of {', '.join(CPU_ARCHES)}")
                    + " (the kernel's name, `uname -m` on the host)", of_setting(c, "nx_cpu_arch", hosts[0]))
    if bad_arch:
        return  # the archive names below would be built on it

    for product, (version, hosts) in _downloads(c).items():
        refused: dict[str, list[str]] = {}
        fallback: dict[str, list[str]] = {}
        for h in hosts:
            platform = host_platform(c, h)
            problem = archive_problem(product, version, platform)
            if problem:
                refused.setdefault(problem, []).append(h)
            elif product == "mongodb":
                build = mongodb_build(platform)
                if build and not build.native:
                    name = artifact_path("mongodb", version, platform=platform)
                    fallback.setdefault(f"{platform.os_release}\0{build.name}\0{name}", []).append(h)
        for problem, where in refused.items():
            yield error(f"downloads.platform.{product}", f"hosts {_names(where)}",
                        f"{problem}: the deploy would find no archive to download", _fix(product, version, where[0], c),
                        of_setting(c, "nx_cpu_arch", where[0]))
        for key, where in fallback.items():
            release, build, name = key.split("\0")
            yield warning("downloads.platform.mongodb", f"hosts {_names(where)}",
                          f"MongoDB publishes no {release} build: these hosts get the {build} build ({name}), which "
                          f"runs on {release} but which MongoDB does not support there",
                          f"accept it, or run the MongoDB hosts on {build} (MongoDB's Debian builds: "
                          + ", ".join(sorted({b.name for b in MONGODB_BUILDS.values() if b.native})) + ")",
                          of_setting(c, "nx_os_release", where[0]))
        yield from _one_pin(c, product)


def _fix(product: str, version: str, host: str, c: Cluster) -> str:
    platform = host_platform(c, host)
    since = ""
    if product == "mongodb":
        build = mongodb_build(platform)
        if build is not None:
            since = build.since
        else:
            arches = sorted({a for (_r, a) in MONGODB_BUILDS})
            releases = sorted({r for (r, a) in MONGODB_BUILDS if a == platform.cpu_arch})
            where = (f"{', '.join(releases)} hosts" if releases
                     else f"{' or '.join(arches)} hosts (nx_cpu_arch), where MongoDB publishes Debian builds")
            return f"run the MongoDB hosts on {where}, or set nx_os_release / nx_cpu_arch of {host} to what it runs"
    else:
        since = ARCH_SINCE.get(product, {}).get(platform.cpu_arch, "")
    if since:
        return f"use a {product}_version / search_version of {since} or later, or hosts of another architecture"
    return f"set nx_cpu_arch of {host} to what it runs ({', '.join(CPU_ARCHES)})"


def _one_pin(c: Cluster, product: str) -> Iterator[Finding]:
    """A pinned checksum matches one archive: hosts of different platforms download different ones."""
    key = f"{product}_archive_checksum"
    by_pin: dict[str, set[str]] = {}
    hosts_of: dict[str, list[str]] = {}
    for h, url in _archives(c, product).items():
        pin = str(host_setting(c.view, c.settings, h, key) or "").strip()
        if pin:
            by_pin.setdefault(pin, set()).add(url)
            hosts_of.setdefault(pin, []).append(h)
    for pin, urls in by_pin.items():
        if len(urls) > 1:
            names = ", ".join(sorted(u.rsplit("/", 1)[-1] for u in urls))
            yield error("downloads.checksum", f"setting {key}",
                        f"one checksum is pinned for {len(urls)} different archives ({names}) on hosts "
                        f"{_names(hosts_of[pin])} of different platforms: all but one would fail their check",
                        f"pin {key} per group of hosts of one nx_cpu_arch / nx_os_release (group_vars of that "
                        "group), or remove it to use the checksum published beside each archive",
                        of_setting(c, key, hosts_of[pin][0]))
