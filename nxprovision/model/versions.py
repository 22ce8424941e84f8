"""Nuxeo's compatibility matrix (nuxeo-facts.md section 2.1) and version arithmetic."""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUXEO_RE = re.compile(r"^(20\d\d)\.(\d+)$")


@dataclass(frozen=True, order=True)
class NuxeoVersion:
    lts: int  # 2021, 2023
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


MATRIX: dict[int, LtsMatrix] = {
    2021: LtsMatrix(
        java="11",
        postgresql=("11", "12", "13"),
        mongodb=("4.0", "4.2", "4.4", "5.0", "6.0"),
        elasticsearch=("7",),
        opensearch=(),
        kafka=("1", "2", "3"),
        kraft_from_hotfix=None,
    ),
    2023: LtsMatrix(
        java="17",
        postgresql=("11", "12", "13"),
        mongodb=("4.0", "4.2", "4.4", "5.0", "6.0", "7.0", "8.0", "8.1"),
        elasticsearch=("7.17", "8.7"),
        opensearch=("1.3",),
        kafka=("3",),
        kraft_from_hotfix=33,
    ),
}

KRAFT_MIN_KAFKA = (3, 6)


def matches(version: str, accepted: tuple[str, ...]) -> bool:
    """'7.17.9' matches '7.17' and '7'; '15' matches '15'."""
    v = str(version).strip()
    return any(v == a or v.startswith(a + ".") for a in accepted)


def supports_kraft(nuxeo: NuxeoVersion) -> bool:
    m = MATRIX.get(nuxeo.lts)
    return bool(m and m.kraft_from_hotfix is not None and nuxeo.hotfix >= m.kraft_from_hotfix)


def java_for(nuxeo: NuxeoVersion) -> str:
    m = MATRIX.get(nuxeo.lts)
    return m.java if m else "17"
