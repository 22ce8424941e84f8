"""The version lock: the exact version of every package the cluster's hosts were asked to install, kept beside the
inventory so that a later deploy (a new node months on, a rebuilt environment) installs the same versions.

The lock is an inventory variable (`nx_version_lock` in group_vars/all/version_lock.yml), so that plain
ansible-playbook and AWX read it as the CLI does. Its packages are grouped by Debian release, then by the host's
set of components (its profile: `haproxy`, `nuxeo`, `kafka+opensearch+postgresql+...`): a new host takes the
versions its peers have. Packages with one version in every profile of a release are listed once, under `all`.

Pure functions: `nxprovision lock` feeds them what the nx_apt_lock module read on each host; the common role
reads the same structure through the nx_lock_pins filter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nxprovision.errors import NxError

FORMAT = 1
VARIABLE = "nx_version_lock"
FILE = Path("group_vars") / "all" / "version_lock.yml"
ALL = "all"


def profile(components: Iterable[str]) -> str:
    """The lock's key for a host's components: sorted, joined by '+' (roles/common computes the same)."""
    return "+".join(sorted(set(components))) or "none"


@dataclass
class Reading:
    host: str
    release: str
    profile: str
    packages: dict[str, str]


@dataclass
class Conflict:
    release: str
    profile: str
    package: str
    versions: dict[str, str] = field(default_factory=dict)  # host -> version

    def text(self) -> str:
        hosts = ", ".join(f"{h} {v}" for h, v in sorted(self.versions.items()))
        return f"{self.package} ({self.release}, {self.profile}): {hosts}"


def build(readings: Iterable[Reading]) -> tuple[dict[str, Any], list[Conflict]]:
    """The lock of these hosts, and the packages whose version differs between hosts of one profile (a lock
    cannot hold both: the caller refuses)."""
    seen: dict[tuple[str, str], dict[str, dict[str, str]]] = {}  # (release, profile) -> package -> host -> version
    for r in readings:
        per = seen.setdefault((r.release, r.profile), {})
        for name, version in r.packages.items():
            per.setdefault(name, {})[r.host] = str(version)
    conflicts = [Conflict(rel, prof, name, hosts) for (rel, prof), per in sorted(seen.items())
                 for name, hosts in sorted(per.items()) if len(set(hosts.values())) > 1]
    releases: dict[str, dict[str, dict[str, str]]] = {}
    for (rel, prof), per in seen.items():
        releases.setdefault(rel, {})[prof] = {name: next(iter(hosts.values())) for name, hosts in per.items()}
    return {"format": FORMAT, "releases": {rel: _shared(profiles) for rel, profiles in sorted(releases.items())}}, \
        conflicts


def _shared(profiles: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Packages with one version in every profile of a release move to `all`; each profile keeps the rest."""
    if len(profiles) < 2:
        return {prof: dict(sorted(pkgs.items())) for prof, pkgs in profiles.items()}
    first = next(iter(profiles.values()))
    common = {n: first[n] for n in set.intersection(*(set(p) for p in profiles.values()))
              if len({p[n] for p in profiles.values()}) == 1}
    out = {ALL: dict(sorted(common.items()))}
    for prof, pkgs in sorted(profiles.items()):
        out[prof] = {n: v for n, v in sorted(pkgs.items()) if n not in common}
    return out


def pins(lock: Mapping[str, Any] | None, release: str, host_profile: str) -> dict[str, str] | None:
    """What a host of this release and profile is held to; None when the lock has no entry for its profile (a
    new kind of host: only the release's shared packages are held)."""
    if not lock:
        return None
    rel = (lock.get("releases") or {}).get(release) or {}
    shared = dict(rel.get(ALL) or {})
    if host_profile not in rel:
        return shared or None
    return {**shared, **(rel.get(host_profile) or {})}


def flat(lock: Mapping[str, Any] | None) -> dict[str, str]:
    """`release/profile/package` -> version, with `all` expanded into each profile: what a diff compares."""
    out: dict[str, str] = {}
    for rel, profiles in sorted(((lock or {}).get("releases") or {}).items()):
        shared = {str(n): str(v) for n, v in (profiles.get(ALL) or {}).items()}
        named = [p for p in profiles if p != ALL] or [ALL]
        for prof in named:
            for name, version in {**shared, **(profiles.get(prof) or {})}.items():
                out[f"{rel}/{prof}/{name}"] = str(version)
    return out


def changes(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    """One line per package whose locked version a rewrite would change: `+` new, `-` gone, `~` other version."""
    a, b = flat(old), flat(new)
    lines = [f"~ {k}: {a[k]} -> {b[k]}" for k in sorted(a.keys() & b.keys()) if a[k] != b[k]]
    lines += [f"+ {k}: {b[k]}" for k in sorted(b.keys() - a.keys())]
    lines += [f"- {k}: {a[k]}" for k in sorted(a.keys() - b.keys())]
    return lines


def render(lock: Mapping[str, Any]) -> str:
    head = ("# The version lock of this cluster, written by `nxprovision lock` (review and commit it with the\n"
            "# inventory). Every deploy holds each host's packages to these versions (apt pins) and refuses, naming\n"
            "# them, when a host can get neither the version nor has it. `nxprovision lock --update` rewrites it\n"
            "# from the hosts and shows what changed. Grouped by Debian release, then by each host's components.\n")
    return head + yaml.safe_dump({VARIABLE: dict(lock)}, sort_keys=False, default_flow_style=False, width=120)


def write(path: Path, lock: Mapping[str, Any]) -> None:
    """Whole or not at all (pki's atomic write): a deploy reading the inventory meanwhile sees the old lock or the
    new one."""
    from nxprovision.pki import _write_private

    _write_private(path, render(lock).encode(), 0o644)


def path_of(inventory_dir: Path) -> Path:
    return inventory_dir / FILE


def load(path: Path) -> dict[str, Any] | None:
    """The lock in PATH, None when there is none; a lock that is not one is refused with the fix."""
    if not path.exists():
        return None
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise NxError(f"{path}: the version lock cannot be read: {e}",
                      "restore it from version control, or delete it and run `nxprovision lock`") from None
    problem = shape_problem((doc or {}).get(VARIABLE) if isinstance(doc, dict) else None)
    if problem:
        raise NxError(f"{path}: not a version lock: {problem}",
                      "restore it from version control, or delete it and run `nxprovision lock`")
    return doc[VARIABLE]


def shape_problem(lock: object) -> str | None:
    """What is wrong with a lock's structure, None when it is one."""
    if not isinstance(lock, dict):
        return f"no `{VARIABLE}` mapping"
    if lock.get("format") != FORMAT:
        return f"format is {lock.get('format')!r}, this nxprovision reads format {FORMAT}"
    releases = lock.get("releases")
    if not isinstance(releases, dict):
        return "`releases` is not a mapping of Debian releases"
    for rel, profiles in releases.items():
        if not isinstance(profiles, dict):
            return f"release {rel}: not a mapping of host profiles"
        for prof, pkgs in profiles.items():
            if not isinstance(pkgs, dict) or not all(isinstance(n, str) and isinstance(v, (str, int, float))
                                                     and str(v).strip() for n, v in pkgs.items()):
                return f"release {rel}, profile {prof}: not a mapping of package name to version"
    return None
