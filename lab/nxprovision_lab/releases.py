"""The Debian releases a lab host can run, and how `lab up --os` chooses them per host.

A lab may mix releases (some hosts on Debian 12, some on Debian 13) to rehearse a cluster moving from one
release to the next host by host. Each release has its own cached base image; the machine's Debian mirror
serves every release, so no other mirror is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

from nxprovision.errors import NxError
from nxprovision.model.defaults import SAMPLE_GROUP_VARS


@dataclass(frozen=True)
class Release:
    os: str  # the name the CLI and the lab state use: debian12
    suite: str  # the archive's codename: bookworm
    version: str  # /etc/os-release VERSION_ID


RELEASES: dict[str, Release] = {
    r.os: r for r in (Release("debian12", "bookworm", "12"), Release("debian13", "trixie", "13"))
}
# The release `init` writes into new inventories (with LTS 2025): a lab boots the hosts its inventory describes.
DEFAULT_OS = str(SAMPLE_GROUP_VARS["nx_os_release"][0])


def get(os_name: str) -> Release:
    try:
        return RELEASES[os_name]
    except KeyError:
        raise NxError(
            f"unknown lab OS '{os_name}'", f"use one of: {', '.join(RELEASES)}"
        ) from None


def parse_os_options(values: list[str] | None, default: str = DEFAULT_OS) -> tuple[str, dict[str, str]]:
    """`--os debian13` sets every host's release, `--os HOST=debian13` one host's (repeatable, any order).

    Returns (release of the hosts not named, {host: release}).
    """
    lab_os = default
    per_host: dict[str, str] = {}
    whole_lab: list[str] = []
    for value in values or []:
        host, sep, os_name = value.partition("=")
        if not sep:
            whole_lab.append(get(value.strip()).os)
            continue
        host, os_name = host.strip(), os_name.strip()
        if not host:
            raise NxError(f"--os '{value}' names no host", "write --os HOST=RELEASE, e.g. --os host2=debian13")
        if host in per_host and per_host[host] != os_name:
            raise NxError(f"--os gives host {host} two releases", f"keep one --os {host}=RELEASE")
        per_host[host] = get(os_name).os
    if len(set(whole_lab)) > 1:
        raise NxError(
            f"--os names two releases for the whole lab ({', '.join(whole_lab)})",
            "give one --os RELEASE, and --os HOST=RELEASE for the hosts that differ",
        )
    if whole_lab:
        lab_os = whole_lab[0]
    return lab_os, per_host


def plan_os(hosts: list[str], lab_os: str, per_host: dict[str, str]) -> dict[str, str]:
    """Each planned host's release; a per-host choice for a host the lab does not have is refused."""
    unknown = sorted(set(per_host) - set(hosts))
    if unknown:
        raise NxError(
            f"--os names host(s) the lab does not have: {', '.join(unknown)}",
            f"use one of: {', '.join(hosts)}",
        )
    return {h: per_host.get(h, lab_os) for h in hosts}
