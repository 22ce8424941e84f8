"""The Nuxeo version each node records (its local fact) against the version a run would put on it.

Pure functions: the action plugin `nx_nuxeo_versions` feeds them the nodes' `ansible_local.nuxeo.version`, so the
refusal of a downgrade is decided (and unit-tested) here, not in Jinja.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

# 2023.10, 2025.0, 2023.10-HF03, 10.10-HF45, 2023.10.1: dotted numbers, then an optional hotfix suffix
_VERSION_RE = re.compile(r"(\d+(?:\.\d+)*)(?:[-_.]?HF(\d+))?", re.IGNORECASE)

VersionKey = tuple[tuple[int, ...], int]


def version_key(text: object) -> VersionKey | None:
    """An ordering key (LTS 2023.9 < 2023.10 < 2025.0; a hotfix suffix after its base), or None when the text
    is no version."""
    if text is None or isinstance(text, bool):
        return None
    m = _VERSION_RE.fullmatch(str(text).strip())
    if not m:
        return None
    numbers = [int(p) for p in m.group(1).split(".")]
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()  # 2025.0 == 2025.0.0
    return tuple(numbers), int(m.group(2) or 0)


def compare(a: object, b: object) -> int | None:
    """-1, 0 or 1 as version a is older than, the same as, or newer than b; None when either is no version."""
    ka, kb = version_key(a), version_key(b)
    if ka is None or kb is None:
        return None
    return (ka > kb) - (ka < kb)


@dataclass
class Verdict:
    target: str
    newer: dict[str, str] = field(default_factory=dict)  # node -> recorded version newer than the target
    same: list[str] = field(default_factory=list)
    older: dict[str, str] = field(default_factory=dict)  # node -> recorded version the target replaces
    unrecorded: list[str] = field(default_factory=list)  # no fact yet: a new node, or one never deployed
    unreadable: dict[str, str] = field(default_factory=dict)  # a fact whose version is no version
    allow_downgrade: bool = False

    @property
    def refused(self) -> bool:
        return bool(self.newer) and not self.allow_downgrade

    @property
    def newest(self) -> str:
        return max(self.newer.values(), key=lambda v: version_key(v) or ((), 0)) if self.newer else self.target

    def nodes_text(self, nodes: Mapping[str, str]) -> str:
        return ", ".join(f"{h} ({v})" for h, v in sorted(nodes.items()))

    def message(self) -> str:
        """What was refused, on the first line; then how to proceed."""
        if not self.newer:
            return f"every Nuxeo node records {self.target} or older (or nothing yet)"
        n = len(self.newer)
        what = (f"Nuxeo {self.target} is older than the version {'this node runs' if n == 1 else f'{n} nodes run'}: "
                f"{self.nodes_text(self.newer)}; putting {self.target} there would downgrade "
                f"{'it' if n == 1 else 'them'} (an earlier upgrade went further than the inventory's nuxeo_version)")
        if self.allow_downgrade:
            return f"{what}; allowed by nuxeo_allow_downgrade"
        return (f"{what}.\n"
                f"Fix: finish the upgrade with `nxprovision upgrade -i INVENTORY --nuxeo-version {self.newest}` "
                "(nodes already on it are skipped), or, to go back on purpose, run again with --allow-downgrade "
                "(nuxeo_allow_downgrade: true), after restoring a backup taken before the upgrade if the database "
                "was migrated.")

    def warnings(self) -> list[str]:
        out = []
        if self.newer and self.allow_downgrade:
            out.append(f"downgrading {self.nodes_text(self.newer)} to Nuxeo {self.target} (nuxeo_allow_downgrade)")
        if self.unreadable:
            out.append(f"the recorded Nuxeo version of {self.nodes_text(self.unreadable)} is not a version: not "
                       "compared (the node's /etc/ansible/facts.d/nuxeo.fact is rewritten once it serves)")
        return out


def check(target: str, recorded: Mapping[str, object], allow_downgrade: bool = False) -> Verdict:
    """Sort the nodes by their recorded version (None: no fact) against the target version."""
    if version_key(target) is None:
        raise ValueError(f"the target Nuxeo version '{target}' is not a version")
    v = Verdict(target=str(target), allow_downgrade=allow_downgrade)
    for host, raw in recorded.items():
        if raw is None or str(raw).strip() == "":
            v.unrecorded.append(host)
            continue
        c = compare(raw, target)
        if c is None:
            v.unreadable[host] = str(raw)
        elif c > 0:
            v.newer[host] = str(raw)
        elif c == 0:
            v.same.append(host)
        else:
            v.older[host] = str(raw)
    return v
