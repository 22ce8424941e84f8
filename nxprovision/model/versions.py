"""Nuxeo versions and their arithmetic; the deployable LTS lines of the compatibility matrix (compatibility.yml)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from nxprovision.model.compat import Lts, load

_NUXEO_RE = re.compile(r"^(20\d\d)\.(\d+)$")


@dataclass(frozen=True, order=True)
class NuxeoVersion:
    lts: int  # 2021, 2023, 2025
    hotfix: int

    @classmethod
    def parse(cls, text: str) -> NuxeoVersion | None:
        m = _NUXEO_RE.match(str(text).strip())
        return cls(int(m.group(1)), int(m.group(2))) if m else None

    def __str__(self) -> str:
        return f"{self.lts}.{self.hotfix}"


def parse_dotted(text: str) -> tuple[int, ...] | None:
    parts = str(text).strip().split(".")
    if not parts or not all(p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


@dataclass(frozen=True)
class LtsMatrix:
    java: str
    postgresql: tuple[str, ...]  # major versions
    mongodb: tuple[str, ...]  # major.minor
    elasticsearch: tuple[str, ...]  # major or major.minor prefixes
    opensearch: tuple[str, ...]
    kafka: tuple[str, ...]  # major prefixes
    kraft_from_hotfix: int | None  # KRaft supported from this hotfix on (None: never)


def _lts_matrix(lts: Lts) -> LtsMatrix:
    client = lts.search_clients[0]
    return LtsMatrix(
        java=lts.java.versions.patterns[0], postgresql=lts.postgresql.versions.patterns,
        mongodb=lts.mongodb.versions.patterns, elasticsearch=client.products["elasticsearch"].patterns,
        opensearch=client.products["opensearch"].patterns, kafka=lts.kafka.versions.patterns,
        kraft_from_hotfix=lts.kafka.kraft_from_hotfix)


# The LTS lines nxprovision deploys (compatibility.yml, `deployable: true`); the whole matrix is compat.load().
MATRIX: dict[int, LtsMatrix] = {k: _lts_matrix(v) for k, v in load().lts.items() if v.deployable}

KRAFT_MIN_KAFKA = (3, 6)


def matches(version: str, accepted: tuple[str, ...]) -> bool:
    """'7.17.9' matches '7.17' and '7'; '15' matches '15'."""
    v = str(version).strip()
    return any(v == a or v.startswith(a + ".") for a in accepted)


def supports_kraft(nuxeo: NuxeoVersion) -> bool:
    m = load().lts.get(nuxeo.lts)
    kraft = m.kafka.kraft_from_hotfix if m else None
    return kraft is not None and nuxeo.hotfix >= kraft


def java_for(nuxeo: NuxeoVersion) -> str:
    m = load().lts.get(nuxeo.lts)
    return m.java.versions.patterns[0] if m else "17"
