"""The install stamp: a local fact that answers the stamp only while the install is in place; roles gate on it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "plugins" / "modules"))
from nx_install_stamp import script  # noqa: E402

GATED = ["common", "nuxeo", "opensearch", "pgbackrest", "postgresql", "seaweedfs", "tls"]


def answer(tmp_path: Path, text: str) -> dict[str, str]:
    fact = tmp_path / "x.fact"
    fact.write_text(text)
    return json.loads(subprocess.run(["sh", str(fact)], capture_output=True, text=True, check=True).stdout)


def test_stamp_answered_while_everything_is_in_place(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    assert answer(tmp_path, script("abc1", [str(tmp_path / "bin")], ["root"], [])) == {"stamp": "abc1"}


@pytest.mark.parametrize("paths,users", [(["/nonexistent/nx"], ["root"]), ([], ["no-such-user-nx"])])
def test_stamp_withdrawn_when_a_path_or_user_is_gone(tmp_path: Path, paths: list[str], users: list[str]) -> None:
    assert answer(tmp_path, script("abc1", paths, users, [])) == {"stamp": ""}


def test_stamp_withdrawn_when_a_package_is_gone(tmp_path: Path) -> None:
    assert answer(tmp_path, script("abc1", [], [], ["no-such-package-nx"])) == {"stamp": ""}


def test_quoting_keeps_odd_paths_as_data(tmp_path: Path) -> None:
    odd = tmp_path / "a b;touch x"
    odd.mkdir()
    assert answer(tmp_path, script("s1", [str(odd)], [], [])) == {"stamp": "s1"}
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("role", GATED)
def test_role_gates_its_install_on_its_own_stamp(role: str) -> None:
    main = yaml.safe_load((ROOT / "roles" / role / "tasks" / "main.yml").read_text())
    install = next(t for t in main if t["name"] == "Install")
    assert f"ansible_local.nx_install_{role}.stamp" in install["when"]
    assert f"'{role}_install' in ansible_run_tags" in install["when"]
    tasks = yaml.safe_load((ROOT / "roles" / role / "tasks" / "install.yml").read_text())
    last = tasks[-1]
    assert last["nx_install_stamp"]["name"] == role
    assert f"__{role}_install_stamp" in last["nx_install_stamp"]["stamp"]
    role_vars = yaml.safe_load((ROOT / "roles" / role / "vars" / "main.yml").read_text())
    # the stamp hashes the phase's own task file: a new release of the role runs the phase again
    assert "tasks/install.yml" in role_vars[f"__{role}_install_stamp"]
