"""A finding: one broken rule, where it is, and how to fix it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" | "warning"
    rule: str  # stable id, e.g. "counts.opensearch"
    subject: str  # "group opensearch", "host front1", "setting nx_public_url"
    message: str
    fix: str
    where: str = ""  # file[:line] when the loader can tell

    def line(self) -> str:
        loc = f"{self.where}: " if self.where else ""
        return f"{self.severity.upper()} {loc}{self.subject}: {self.message} [{self.rule}] Fix: {self.fix}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def error(rule: str, subject: str, message: str, fix: str, where: str = "") -> Finding:
    return Finding("error", rule, subject, message, fix, where)


def warning(rule: str, subject: str, message: str, fix: str, where: str = "") -> Finding:
    return Finding("warning", rule, subject, message, fix, where)
