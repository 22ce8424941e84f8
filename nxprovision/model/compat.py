"""Nuxeo's compatibility matrix as data: compatibility.yml beside this module, loaded into typed records.

Each record keeps the documentation page it comes from, so findings and docs/compatibility.md can cite it.
The file ships with the package; a malformed file is a bug of the package, reported as CompatDataError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

DATA_FILE = Path(__file__).with_name("compatibility.yml")

_PATTERN_RE = re.compile(r"^>?\d+(\.\d+)*$")
JAVA_SOURCES = ("archive", "mirror", "operator")
PRODUCTS = ("opensearch", "elasticsearch")
PRODUCT_LABELS = {"opensearch": "OpenSearch", "elasticsearch": "Elasticsearch"}


class CompatDataError(ValueError):
    """compatibility.yml does not have the expected shape."""


def _dotted(text: str) -> tuple[int, ...] | None:
    parts = str(text).strip().split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else None


@dataclass(frozen=True)
class Versions:
    """A list of version patterns: "13" (13 and 13.x), ">11" (above 11 on the parts it names)."""

    patterns: tuple[str, ...]

    def matches(self, version: str) -> bool:
        v = str(version).strip()
        parsed = _dotted(v)
        for p in self.patterns:
            if p.startswith(">"):
                bound = _dotted(p[1:])
                if parsed is not None and bound is not None and parsed[:len(bound)] > bound:
                    return True
            elif v == p or v.startswith(p + "."):
                return True
        return False

    def describe(self) -> str:
        if not self.patterns:
            return "none"
        return ", ".join(f"greater than {p[1:]}" if p.startswith(">") else p for p in self.patterns)


@dataclass(frozen=True)
class Entry:
    versions: Versions
    source: str
    recommended: str = ""
    product: str = ""
    note: str = ""

    def describe(self) -> str:
        listed = self.versions.describe()
        return f"{listed} ({self.recommended} recommended)" if self.recommended else listed


@dataclass(frozen=True)
class SearchClient:
    key: str  # "builtin" before LTS 2025, else the package's client key (nuxeo.<key>.client.*)
    package: str  # "" when built into the server
    audit_package: str
    products: dict[str, Versions]  # opensearch / elasticsearch -> versions this client talks to
    source: str
    note: str = ""

    def covers(self, product: str, version: str) -> bool:
        spec = self.products.get(product)
        return bool(spec and spec.matches(version))

    def describe(self) -> str:
        return ", ".join(f"{PRODUCT_LABELS[p]} {spec.describe()}" for p, spec in self.products.items()
                         if spec.patterns)


@dataclass(frozen=True)
class AuditBackend:
    key: str
    package: str
    needs: str  # the database flavour it stores into
    source: str


@dataclass(frozen=True)
class Audit:
    source: str
    note: str = ""
    required_in_cluster: bool = False
    backends: tuple[AuditBackend, ...] = ()  # besides the search clients' audit packages


@dataclass(frozen=True)
class Kafka:
    versions: Versions
    tested: str
    kraft_from_hotfix: int | None
    source: str
    kraft_min_kafka: str = ""


@dataclass(frozen=True)
class OsSupport:
    release: str
    java: str  # archive (the release's own OpenJDK) | mirror (a JDK archive on the operator's mirror) | operator
    source: str
    note: str = ""


@dataclass(frozen=True)
class OsRelease:
    name: str
    label: str
    openjdk: tuple[str, ...]
    source: str
    postgresql: tuple[str, ...] = ()
    postgresql_source: str = ""


@dataclass(frozen=True)
class Lts:
    lts: int
    deployable: bool
    java: Entry
    app_server: Entry
    postgresql: Entry
    mongodb: Entry
    search_clients: tuple[SearchClient, ...]
    audit: Audit
    kafka: Kafka
    os: tuple[OsSupport, ...]

    @property
    def packaged_search(self) -> bool:
        """From LTS 2025 the search client (and the audit store) are packages the operator chooses."""
        return any(sc.package for sc in self.search_clients)

    def search_client(self, key: str) -> SearchClient | None:
        return next((sc for sc in self.search_clients if sc.key == key), None)

    def pick_search_client(self, chosen: str, product: str, version: str) -> SearchClient | None:
        """The client a node uses: the one chosen (LTS 2025 on), else the first that supports the search cluster."""
        if chosen != "auto" and self.packaged_search:
            return self.search_client(chosen)
        return next((sc for sc in self.search_clients if sc.covers(product, version)), None)

    def audit_backends(self) -> dict[str, tuple[str, str]]:
        """key -> (package, what it needs: 'search' or a database flavour)."""
        out = {sc.key: (sc.audit_package, "search") for sc in self.search_clients if sc.audit_package}
        out.update({b.key: (b.package, b.needs) for b in self.audit.backends})
        return out

    def os_support(self, release: str) -> OsSupport | None:
        return next((o for o in self.os if o.release == release), None)


@dataclass(frozen=True)
class Matrix:
    lts: dict[int, Lts]
    os_releases: dict[str, OsRelease]

    def deployable(self) -> list[int]:
        return [k for k, v in self.lts.items() if v.deployable]


# --------------------------------------------------------------------------- loading


def _req(d: dict[str, Any], key: str, where: str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise CompatDataError(f"{where}: missing '{key}'")
    return d[key]


def _url(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.startswith("https://"):
        raise CompatDataError(f"{where}: source must be an https:// URL, got {value!r}")
    return value


def _versions(value: Any, where: str) -> Versions:
    if not isinstance(value, list) or not all(isinstance(p, str) and _PATTERN_RE.match(p) for p in value):
        raise CompatDataError(f"{where}: versions must be a list of quoted patterns like \"13\" or \">11\"")
    return Versions(tuple(value))


def _entry(d: Any, where: str) -> Entry:
    return Entry(_versions(_req(d, "versions", where), where), _url(_req(d, "source", where), where),
                 str(d.get("recommended") or ""), str(d.get("product") or ""), str(d.get("note") or ""))


def _lts(lts: int, d: Any) -> Lts:
    w = f"lts {lts}"
    clients = []
    for i, c in enumerate(_req(_req(d, "search", w), "clients", f"{w}.search") or []):
        cw = f"{w}.search.clients[{i}]"
        clients.append(SearchClient(
            str(_req(c, "key", cw)), str(c.get("package") or ""), str(c.get("audit_package") or ""),
            {p: _versions(c.get(p) or [], f"{cw}.{p}") for p in PRODUCTS}, _url(_req(c, "source", cw), cw),
            str(c.get("note") or "")))
    if not clients:
        raise CompatDataError(f"{w}.search: no client")
    a = _req(d, "audit", w)
    backends = tuple(AuditBackend(str(_req(b, "key", f"{w}.audit")), str(_req(b, "package", f"{w}.audit")),
                                  str(_req(b, "needs", f"{w}.audit")), _url(_req(b, "source", f"{w}.audit"),
                                                                             f"{w}.audit"))
                     for b in a.get("backends") or [])
    audit = Audit(_url(_req(a, "source", f"{w}.audit"), f"{w}.audit"), " ".join(str(a.get("note") or "").split()),
                  bool(a.get("required_in_cluster")), backends)
    k = _req(d, "kafka", w)
    kraft = k.get("kraft_from_hotfix")
    if kraft is not None and not isinstance(kraft, int):
        raise CompatDataError(f"{w}.kafka: kraft_from_hotfix must be a hotfix number or null")
    kmin = str(k.get("kraft_min_kafka") or "")
    if kmin and _dotted(kmin) is None:
        raise CompatDataError(f"{w}.kafka: kraft_min_kafka must be a version")
    kafka = Kafka(_versions(_req(k, "versions", f"{w}.kafka"), f"{w}.kafka"), str(k.get("tested") or ""), kraft,
                  _url(_req(k, "source", f"{w}.kafka"), f"{w}.kafka"), kmin)
    oses = []
    for o in _req(d, "os", w) or []:
        java = str(_req(o, "java", f"{w}.os"))
        if java not in JAVA_SOURCES:
            raise CompatDataError(f"{w}.os: java must be one of {', '.join(JAVA_SOURCES)}")
        oses.append(OsSupport(str(_req(o, "release", f"{w}.os")), java, _url(_req(o, "source", f"{w}.os"), f"{w}.os"),
                              str(o.get("note") or "")))
    return Lts(lts, bool(_req(d, "deployable", w)), _entry(_req(d, "java", w), f"{w}.java"),
               _entry(_req(d, "app_server", w), f"{w}.app_server"), _entry(_req(d, "postgresql", w), f"{w}.postgresql"),
               _entry(_req(d, "mongodb", w), f"{w}.mongodb"), tuple(clients), audit, kafka, tuple(oses))


def parse(data: Any) -> Matrix:
    releases = {}
    for name, r in (_req(data, "os_releases", "top level") or {}).items():
        w = f"os_releases.{name}"
        jdks = _req(r, "openjdk", w)
        if not isinstance(jdks, list):
            raise CompatDataError(f"{w}: openjdk must be a list")
        pgs = _req(r, "postgresql", w)
        if not isinstance(pgs, list):
            raise CompatDataError(f"{w}: postgresql must be a list")
        releases[str(name)] = OsRelease(str(name), str(_req(r, "label", w)), tuple(str(j) for j in jdks),
                                        _url(_req(r, "source", w), w), tuple(str(v) for v in pgs),
                                        _url(_req(r, "postgresql_source", w), w))
    table = {}
    for key, d in (_req(data, "lts", "top level") or {}).items():
        if not isinstance(key, int):
            raise CompatDataError(f"lts: '{key}' is not an LTS year")
        table[key] = _lts(key, d)
        unknown = [o.release for o in table[key].os if o.release not in releases]
        if unknown:
            raise CompatDataError(f"lts {key}.os: {', '.join(unknown)} not in os_releases")
    return Matrix(table, releases)


@cache
def load() -> Matrix:
    return parse(yaml.safe_load(DATA_FILE.read_text()))
