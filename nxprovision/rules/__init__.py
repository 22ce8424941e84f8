"""Nuxeo's rules as validation: one module per concern, each yielding findings.

The CLI prints the findings; the first play of every playbook runs the very same rules through the
`nx_cluster` action plugin, so AWX users get them too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from nxprovision.model.cluster import Cluster
from nxprovision.rules import (
    argspecs,
    counts,
    downloads,
    hostnames,
    placement,
    platforms,
    ports,
    secrets_present,
    settings,
    tls,
    topology,
    versionlock,
    versions,
)
from nxprovision.rules.finding import Finding

RuleFn = Callable[[Cluster], Iterable[Finding]]

RULES: tuple[RuleFn, ...] = (
    settings.check,
    hostnames.check,
    counts.check,
    topology.check,
    placement.check,
    versions.check,
    versionlock.check,
    ports.check,
    secrets_present.check,
    tls.check,
    downloads.check,
    platforms.check,
    argspecs.check,
)


def run_rules(cluster: Cluster) -> list[Finding]:
    findings: list[Finding] = []
    for rule in RULES:
        findings.extend(rule(cluster))
    # Once the architecture is unknown, count rules have nothing to stand on; settings said so already.
    seen: set[tuple[str, str, str]] = set()
    unique = []
    for f in findings:
        key = (f.rule, f.subject, f.message)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return sorted(unique, key=lambda f: (f.severity != "error", f.rule))


__all__ = ["Finding", "run_rules"]
