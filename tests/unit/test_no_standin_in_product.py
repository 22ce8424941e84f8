"""Production code never branches on a stand-in: the product package and the collection name none.

The lab is a distribution of its own (lab/: nxprovision_lab), which builds the stand-ins and may name them; the
stand-ins answer the products' own APIs, so nxprovision/, roles, playbooks, plugins and the collection's metadata have
no reason to know one is there. The built wheel is checked the same way in test_wheel.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCOPES = ("nxprovision", "roles", "playbooks", "plugins", "meta", "galaxy.yml", "requirements.yml",
          "execution-environment.yml", "ansible.cfg", "pyproject.toml", "setup.py", "MANIFEST.in")
PATTERN = re.compile(r"stand[\s_-]?ins?\b|standin|stand_in", re.IGNORECASE)


def hits(root: Path = ROOT) -> list[str]:
    found = []
    for scope in SCOPES:
        top = root / scope
        for path in sorted(top.rglob("*")) if top.is_dir() else [top]:
            rel = path.relative_to(root).as_posix()
            if not path.is_file() or "__pycache__" in rel:
                continue
            try:
                text = path.read_text()
            except UnicodeDecodeError:
                continue
            for n, line in enumerate(text.splitlines(), 1):
                if PATTERN.search(line):
                    found.append(f"{rel}:{n}: {line.strip()}")
    return found


def test_no_stand_in_reference_outside_the_lab() -> None:
    assert hits() == []


@pytest.mark.parametrize("line", ["when: 'mongodb' in nx.standins", "# the stand-in answers alone",
                                  "__x_stand_in: true", "STANDIN marker", "stand in for the product"])
def test_the_guard_finds_a_reference(tmp_path: Path, line: str) -> None:
    (tmp_path / "roles" / "x" / "tasks").mkdir(parents=True)
    (tmp_path / "roles" / "x" / "tasks" / "main.yml").write_text(f"---\n{line}\n")
    (tmp_path / "lab" / "nxprovision_lab").mkdir(parents=True)
    (tmp_path / "lab" / "nxprovision_lab" / "ok.py").write_text("# the lab may say stand-in\n")
    (tmp_path / "nxprovision" / "lab").mkdir(parents=True)
    (tmp_path / "nxprovision" / "lab" / "x.py").write_text("# no stand-in in the product package\n")
    (tmp_path / "galaxy.yml").write_text("description: no standin here\n")
    assert hits(tmp_path) == ["nxprovision/lab/x.py:1: # no stand-in in the product package",
                              f"roles/x/tasks/main.yml:2: {line}", "galaxy.yml:1: description: no standin here"]
