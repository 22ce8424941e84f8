"""The Grafana dashboards kept in the monitoring role (roles/monitoring/files/dashboards/) and the metric names
they read, checked against what the scraped targets export (roles/monitoring/files/exported_metrics/*.txt, and in
the lab against the names Prometheus knows)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROLE_FILES = Path(__file__).resolve().parent.parent / "roles" / "monitoring" / "files"
DASHBOARDS = ROLE_FILES / "dashboards"
EXPORTED = ROLE_FILES / "exported_metrics"

# PromQL words that look like names but are not metrics (aggregation modifiers, set operators, ...)
_KEYWORDS = frozenset({
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
    "inf", "nan",
})
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_VARIABLE = re.compile(r"\$\{?\w+\}?")
_NAME = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (with Grafana's $variables) reads: identifiers that are neither
    functions, keywords, label names nor durations."""
    text = _VARIABLE.sub("1", expr)
    text = _STRING.sub('""', text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for m in _NAME.finditer(text):
        if m.group(2) or m.group(1).lower() in _KEYWORDS:
            continue  # a function call, or an operator word
        names.add(m.group(1))
    return names


def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def dashboard_files(where: Path = DASHBOARDS) -> list[Path]:
    return sorted(where.glob("*.json"))


def expressions(dashboard: dict[str, Any]) -> Iterator[str]:
    """Every PromQL expression of a dashboard: its panels' queries (rows' panels too) and its query variables."""
    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for p in items:
            yield p
            yield from panels(p.get("panels") or [])

    for p in panels(dashboard.get("panels") or []):
        for t in p.get("targets") or []:
            if t.get("expr"):
                yield str(t["expr"])
    for v in (dashboard.get("templating") or {}).get("list") or []:
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if v.get("type") == "query" and q:
            # label_values(metric, label) / query_result(expr): the metric selector is PromQL
            m = re.fullmatch(r"\s*(?:label_values|query_result)\((.*?)(?:,\s*\w+)?\)\s*", str(q))
            yield m.group(1) if m else str(q)


def used_names(where: Path = DASHBOARDS) -> dict[str, set[str]]:
    """{dashboard file name: metric names it reads}."""
    return {f.name: set().union(*(metric_names(e) for e in expressions(load(f))), set())
            for f in dashboard_files(where)}


def exported_names(where: Path = EXPORTED) -> dict[str, set[str]]:
    """{exporter: names it serves}, from the lists kept beside the dashboards (comments start with #)."""
    out: dict[str, set[str]] = {}
    for f in sorted(where.glob("*.txt")):
        out[f.stem] = {ln.strip() for ln in f.read_text().splitlines() if ln.strip() and not ln.startswith("#")}
    return out
