"""Production code never branches on a stand-in: the product and its Ansible content name none.

The lab (nxprovision/lab) builds the stand-ins and may name them; the stand-ins answer the products' own APIs, so
roles, playbooks, plugins and the rest of nxprovision/ have no reason to know one is there.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCOPES = ("nxprovision", "roles", "playbooks", "plugins")
PATTERN = re.compile(r"stand[\s_-]?ins?\b|standin|stand_in", re.IGNORECASE)
# Nothing may be added here.
ALLOWED = {
    "playbooks/site.yml": {"stand-in"},
}


def hits(root: Path = ROOT) -> list[str]:
    found = []
    for scope in SCOPES:
        for path in sorted((root / scope).rglob("*")):
            rel = path.relative_to(root).as_posix()
            if not path.is_file() or rel.startswith("nxprovision/lab/") or "__pycache__" in rel:
                continue
            try:
                text = path.read_text()
            except UnicodeDecodeError:
                continue
            for n, line in enumerate(text.splitlines(), 1):
                words = {m.group(0).lower() for m in PATTERN.finditer(line)}
                if words - ALLOWED.get(rel, set()):
                    found.append(f"{rel}:{n}: {line.strip()}")
    return found


def test_no_stand_in_reference_outside_the_lab() -> None:
    assert hits() == []


@pytest.mark.parametrize("line", ["when: 'mongodb' in nx.standins", "# the stand-in answers alone",
                                  "__x_stand_in: true", "STANDIN marker", "stand in for the product"])
def test_the_guard_finds_a_reference(tmp_path: Path, line: str) -> None:
    (tmp_path / "roles" / "x" / "tasks").mkdir(parents=True)
    (tmp_path / "roles" / "x" / "tasks" / "main.yml").write_text(f"---\n{line}\n")
    (tmp_path / "nxprovision" / "lab").mkdir(parents=True)
    (tmp_path / "nxprovision" / "lab" / "ok.py").write_text("# the lab may say stand-in\n")
    assert hits(tmp_path) == [f"roles/x/tasks/main.yml:2: {line}"]
