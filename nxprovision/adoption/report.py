"""The adoption report: what was mapped, what differs between nodes, what could not be mapped, what the first deploy
will change on each host. Written beside the new inventory (adopt-report.md for people, adopt-report.json for
tools and tests). Secrets appear by name only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nxprovision.adoption.mapping import Adoption, Item
from nxprovision.rules.finding import Finding

REPORT_MD = "adopt-report.md"
REPORT_JSON = "adopt-report.json"


def as_dict(a: Adoption, findings: list[Finding]) -> dict[str, Any]:
    return {
        "architecture": a.architecture, "database": a.database,
        "groups": {g: m for g, m in a.layout.items() if m},
        "mapped": [i.to_dict() for i in a.mapped],
        "secrets": sorted(a.secrets),
        "differences": [i.to_dict() for i in a.differences],
        "unmapped": [i.to_dict() for i in a.unmapped],
        "problems": [i.to_dict() for i in a.problems],
        "validation": [{"severity": f.severity, "line": f.line()} for f in findings],
        # host -> role -> reasons: the deploy changes nothing outside these roles on that host
        "changes": {h: _by_role(items) for h, items in sorted(a.changes.items())},
    }


def _by_role(items: list[Item]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for i in items:
        out.setdefault(i.where, []).append(i.what)
    return out


def _section(title: str, items: list[Item], empty: str) -> list[str]:
    lines = [f"## {title}", ""]
    if not items:
        return [*lines, empty, ""]
    for i in items:
        lines.append(f"- **{i.where}**: {i.what}" + (f" ({i.why})" if i.why else ""))
    return [*lines, ""]


def markdown(a: Adoption, findings: list[Finding], inventory: Path) -> str:
    groups = ", ".join(f"{g} {', '.join(m)}" for g, m in a.layout.items() if m)
    lines = [
        f"# Adoption report: {inventory}",
        "",
        f"Architecture **{a.architecture}**, database **{a.database}**. Hosts by group: {groups}.",
        "",
        "Next: read the sections below (the last one is what the first deploy changes, host by host), then "
        f"`nxprovision deploy -i {inventory}`. The first deploy restarts every component once. From then on "
        f"`nxprovision drift -i {inventory}` shows file by file what differs from the model (before the first "
        "deploy, check mode stops where the roles have not installed their tools yet).",
        "",
    ]
    lines += _section("Problems to settle before the first deploy", a.problems, "None.")
    lines += _section("Mapped", a.mapped, "Nothing.")
    lines += ["## Secrets", "", "Put into the new inventory's vault (group_vars/all/secrets.yml), never shown: "
              + (", ".join(sorted(a.secrets)) or "none") + ". The others are generated. The Nuxeo Administrator "
              "password is not in any file: the first deploy tries the product's default and replaces it with the "
              "vault's; if it was changed, put it into the vault first (`ansible-vault edit`).", ""]
    lines += _section("Differences between nodes", a.differences, "None: the nodes of each group are alike.")
    lines += _section("Not carried over", a.unmapped, "Nothing.")
    lines += ["## Validation of the new inventory", ""]
    lines += [f"- {f.line()}" for f in findings] or ["Valid."]
    lines += ["", "## What the first deploy changes, host by host", ""]
    for h, items in sorted(a.changes.items()):
        lines.append(f"### {h}")
        for role, whys in _by_role(items).items():
            lines.append(f"- {role}: " + "; ".join(whys))
        lines.append("")
    return "\n".join(lines)


def write(a: Adoption, findings: list[Finding], directory: Path) -> tuple[Path, Path]:
    md, js = directory / REPORT_MD, directory / REPORT_JSON
    md.write_text(markdown(a, findings, directory))
    js.write_text(json.dumps(as_dict(a, findings), indent=2) + "\n")
    return md, js
