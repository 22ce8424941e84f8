"""Which Debian mirror the machine itself uses, read from its apt sources.

The lab never names a mirror host of its own: debootstrap, apt-cacher-ng's backend and the lab hosts'
sources all use the mirror the machine's apt configuration already points at.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nxprovision.errors import NxError

APT_DIR = Path("/etc/apt")


@dataclass(frozen=True)
class SourceEntry:
    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]


@dataclass(frozen=True)
class DebianMirrors:
    """The archive mirror (suite and -updates) and the security mirror, if the machine has one."""

    archive: str
    security: str | None


def parse_deb822(text: str) -> list[SourceEntry]:
    entries: list[SourceEntry] = []
    for stanza in _stanzas(text):
        if stanza.get("enabled", "yes").lower() == "no":
            continue
        entries.append(
            SourceEntry(
                types=tuple(stanza.get("types", "").split()),
                uris=tuple(stanza.get("uris", "").split()),
                suites=tuple(stanza.get("suites", "").split()),
                components=tuple(stanza.get("components", "").split()),
            )
        )
    return entries


def _stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                stanzas.append(current)
            current, key = {}, ""
            continue
        if line[0] in " \t" and key:
            # folded continuation of the previous field (Signed-By blocks, long URI lists)
            current[key] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def parse_one_line(text: str) -> list[SourceEntry]:
    entries: list[SourceEntry] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        kind, rest = words[0], words[1:]
        if kind not in ("deb", "deb-src"):
            continue
        if rest and rest[0].startswith("["):
            # options such as [arch=amd64 signed-by=...] may contain spaces until the closing bracket
            while rest and not rest[0].endswith("]"):
                rest = rest[1:]
            rest = rest[1:]
        if len(rest) < 2:
            continue
        entries.append(
            SourceEntry(types=(kind,), uris=(rest[0],), suites=(rest[1],), components=tuple(rest[2:]))
        )
    return entries


def read_sources(apt_dir: Path = APT_DIR) -> list[SourceEntry]:
    entries: list[SourceEntry] = []
    main_list = apt_dir / "sources.list"
    if main_list.is_file():
        entries += parse_one_line(main_list.read_text())
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        for f in sorted(parts.iterdir()):
            # anything not named *.list / *.sources is ignored by apt too (e.g. disabled copies)
            if f.suffix == ".list":
                entries += parse_one_line(f.read_text())
            elif f.suffix == ".sources":
                entries += parse_deb822(f.read_text())
    return entries


def debian_mirrors(entries: list[SourceEntry], codename: str) -> DebianMirrors:
    """Pick the archive and security mirrors among the entries for `codename` (e.g. bookworm)."""
    archive: str | None = None
    security: str | None = None
    for e in entries:
        if "deb" not in e.types or "main" not in e.components:
            continue
        http_uris = [u for u in e.uris if u.startswith(("http://", "https://"))]
        if not http_uris:
            continue
        uri = http_uris[0].rstrip("/")
        if archive is None and codename in e.suites:
            archive = uri
        if security is None and any(s in (f"{codename}-security", f"{codename}/updates") for s in e.suites):
            security = uri
    if archive is None:
        raise NxError(
            f"no Debian mirror for '{codename}' (main) found in the machine's apt sources",
            "add the Debian archive to /etc/apt/sources.list.d/debian.sources (Suites: "
            f"{codename}, Components: main) and run `apt-get update`",
        )
    return DebianMirrors(archive=archive, security=security)


def machine_codename(os_release: Path = Path("/etc/os-release")) -> str:
    for line in os_release.read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    raise NxError("cannot tell the machine's Debian release", "run the lab on Debian 12 (bookworm)")


def machine_mirrors() -> DebianMirrors:
    return debian_mirrors(read_sources(), machine_codename())


def host_sources_list(mirrors: DebianMirrors, suite: str) -> str:
    """sources.list for a lab host: the machine's mirrors, reached through the lab's apt cache."""
    lines = [
        "# Written by nxprovision lab: the machine's own Debian mirrors, through the lab's apt cache.",
        f"deb {mirrors.archive} {suite} main",
        f"deb {mirrors.archive} {suite}-updates main",
    ]
    if mirrors.security:
        lines.append(f"deb {mirrors.security} {suite}-security main")
    return "\n".join(lines) + "\n"
