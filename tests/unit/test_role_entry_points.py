"""Day-2 playbooks call role entry points, never a role's private task files.

Every `tasks_from` in playbooks/ names an entry point the role declares in meta/argument_specs.yml (so that Ansible
checks its variables, and the role's reference lists it), every declared entry point has its task file, and the
rolling restart has one engine: the role's `restart_one` step (drain, restart, health gate, back in) is what the
handler and `nxprovision restart` both run, and every roll gates through the role's `health_gate`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
INCLUDES = ("ansible.builtin.include_role", "ansible.builtin.import_role", "include_role", "import_role")


def _calls(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        for key in INCLUDES:
            if isinstance(node.get(key), dict):
                yield node[key]
        for value in node.values():
            yield from _calls(value)
    elif isinstance(node, list):
        for value in node:
            yield from _calls(value)


def _tasks(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "name" in node and any(k.startswith("ansible.builtin.") for k in node):
            yield node
        for value in node.values():
            yield from _tasks(value)
    elif isinstance(node, list):
        for value in node:
            yield from _tasks(value)


def role_calls(root: Path = ROOT) -> list[tuple[str, str, str]]:
    """(playbook file, role, entry point) of every include/import_role with tasks_from under playbooks/."""
    out = []
    for f in sorted((root / "playbooks").rglob("*.yml")):
        for call in _calls(yaml.safe_load(f.read_text())):
            if "tasks_from" in call:
                entry = str(call["tasks_from"]).removesuffix(".yml").removesuffix(".yaml")
                out.append((f.relative_to(root).as_posix(), str(call["name"]), entry))
    return out


def entry_points(role: str, root: Path = ROOT) -> dict[str, Any]:
    spec = yaml.safe_load((root / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return spec["argument_specs"]


def test_playbooks_call_declared_entry_points_only() -> None:
    calls = role_calls()
    assert calls, "the playbooks call no role entry point: the walk is broken"
    undeclared = [f"{f}: {role} tasks_from {entry}" for f, role, entry in calls if entry not in entry_points(role)]
    assert undeclared == []


def test_every_entry_point_has_its_task_file_and_a_description() -> None:
    for spec_file in sorted((ROOT / "roles").glob("*/meta/argument_specs.yml")):
        role = spec_file.parts[-3]
        for entry, spec in entry_points(role).items():
            assert (ROOT / "roles" / role / "tasks" / f"{entry}.yml").is_file(), f"{role}: no tasks/{entry}.yml"
            assert spec.get("short_description"), f"{role}.{entry}: no short_description"


def test_no_playbook_reaches_into_a_role_folder() -> None:
    hits = [f"{f.relative_to(ROOT)}:{n}" for f in sorted((ROOT / "playbooks").rglob("*.yml"))
            for n, line in enumerate(f.read_text().splitlines(), 1)
            if "roles/" in line and not line.lstrip().startswith("#")]
    assert hits == []


def test_one_rolling_engine() -> None:
    restart = yaml.safe_load((ROOT / "playbooks" / "restart_nuxeo.yml").read_text())
    assert [c for c in _calls(restart) if c.get("tasks_from") == "restart_one.yml"], "restart does not use restart_one"
    step = (ROOT / "roles" / "nuxeo" / "tasks" / "restart_one.yml").read_text()
    for part in ("lb_out.yml", "health_gate.yml", "lb_in.yml"):
        assert part in step
    assert not (ROOT / "playbooks" / "tasks" / "nuxeo_health_gate.yml").exists()
    # every roll in a day-2 playbook gates through the role's health gate, nothing of its own
    gates = [f for f, role, entry in role_calls() if role == "nuxeo" and entry == "health_gate"]
    assert {"playbooks/upgrade_nuxeo.yml", "playbooks/rotate_secret.yml", "playbooks/certs_renew.yml",
            "playbooks/restore.yml", "playbooks/upgrade_nuxeo_full_stop.yml"} <= set(gates)
    # no playbook waits for a restarted node with a poll of its own (an `until` on a node's runningstatus)
    for f in (ROOT / "playbooks").rglob("*.yml"):
        for task in _tasks(yaml.safe_load(f.read_text())):
            uri = task.get("ansible.builtin.uri") or {}
            assert not ("until" in task and "nx.nodes[" in str(uri.get("url", ""))), f"{f.name}: {task.get('name')}"


def test_the_walk_finds_an_undeclared_call(tmp_path: Path) -> None:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "roles" / "x" / "meta").mkdir(parents=True)
    (tmp_path / "roles" / "x" / "meta" / "argument_specs.yml").write_text("argument_specs:\n  main: {}\n")
    (tmp_path / "playbooks" / "p.yml").write_text(
        "- hosts: all\n  tasks:\n    - block:\n        - ansible.builtin.include_role:\n"
        "            name: x\n            tasks_from: private.yml\n")
    assert role_calls(tmp_path) == [("playbooks/p.yml", "x", "private")]
    assert "private" not in entry_points("x", tmp_path)


def test_no_role_default_read_through_hostvars_without_a_fallback() -> None:
    """hostvars hold the inventory and facts, never a role's defaults: `hostvars[node].nuxeo_start_max_wait` fails
    on any host whose inventory does not set it (a day-2 roll's health gate did), unless a default follows."""
    import re

    defaults: set[str] = set()
    for f in (ROOT / "roles").glob("*/defaults/main.yml"):
        defaults |= set(yaml.safe_load(f.read_text()) or {})
    read = re.compile(r"hostvars\[[^\[\]]+\]\.([A-Za-z_]\w*)(\s*\|\s*default\b)?")
    hits = []
    for top in ("roles", "playbooks"):
        for f in sorted((ROOT / top).rglob("*")):
            if f.is_file() and f.suffix in (".yml", ".j2"):
                for n, line in enumerate(f.read_text().splitlines(), 1):
                    hits += [f"{f.relative_to(ROOT)}:{n}: {m.group(0)}" for m in read.finditer(line)
                             if m.group(1) in defaults and not m.group(2)]
    assert hits == []
