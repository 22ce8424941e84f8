"""Role shape checks: argument specs match defaults, phase files and service handlers exist, lint passes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES_DIR = ROOT / "roles"
ROLES = (
    "common",
    "haproxy",
    "postgresql",
    "mongodb",
    "opensearch",
    "kafka",
    "zookeeper",
    "seaweedfs",
    "nuxeo",
    "keepalived",
    "etcd",
    "patroni",
    "pgbackrest",
    "tls",
    "monitoring",
    "firewall",
)
PHASES = ("preflight.yml", "install.yml", "configure.yml", "service.yml")
# Handlers each role must offer, named for the service and the action.
HANDLERS = {
    "common": {"Reexec systemd"},
    "haproxy": {"Reload haproxy"},
    "postgresql": {"Restart postgresql", "Reload postgresql"},
    "mongodb": {"Restart mongodb"},
    "opensearch": {"Restart opensearch"},
    "kafka": {"Restart kafka"},
    "zookeeper": {"Restart zookeeper"},
    "seaweedfs": {"Restart seaweedfs"},
    "nuxeo": {"Restart nuxeo"},
    "keepalived": {"Reload keepalived"},
    "etcd": {"Restart etcd"},
    "patroni": {"Reload patroni"},
    "pgbackrest": {"Restart pgbackrest-tls-proxy"},
    "tls": set(),  # no service: each component role reloads its own
    "monitoring": {"Reload prometheus", "Restart prometheus", "Restart prometheus-alertmanager",
                   "Restart prometheus-node-exporter"},
    "firewall": {"Reload nxprovision-firewall"},
}


def _load(path: Path):
    return yaml.safe_load(path.read_text())


def test_every_role_is_checked():
    on_disk = {p.name for p in ROLES_DIR.iterdir() if (p / "tasks" / "main.yml").exists()}
    assert set(ROLES) <= on_disk
    assert on_disk <= set(ROLES) | {"keepalived", "patroni", "etcd"}, "add new roles to ROLES and HANDLERS"


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_match_defaults(role):
    defaults = _load(ROLES_DIR / role / "defaults" / "main.yml") or {}
    specs = _load(ROLES_DIR / role / "meta" / "argument_specs.yml")
    options = specs["argument_specs"]["main"].get("options") or {}
    assert set(options) == set(defaults), "meta/argument_specs.yml doesn't match defaults/main.yml"
    for name, opt in options.items():
        assert opt.get("description"), f"{role}: option {name} has no description"
        assert opt.get("type"), f"{role}: option {name} has no type"
        assert name.startswith(role + "_"), f"{role}: public variable {name} lacks the role prefix"


@pytest.mark.parametrize("role", ROLES)
def test_meta_has_no_dependencies(role):
    meta = _load(ROLES_DIR / role / "meta" / "main.yml")
    assert meta["dependencies"] == []
    assert meta["galaxy_info"]["platforms"]


@pytest.mark.parametrize("role", ROLES)
def test_main_only_dispatches_to_phases(role):
    tasks = _load(ROLES_DIR / role / "tasks" / "main.yml")
    included = []
    for t in tasks:
        # an unconditional phase may be imported (static: no task start per host); a conditional one must be an
        # include, whose `when` skips the whole phase in one step instead of once per task
        imp = t.get("ansible.builtin.import_tasks")
        if imp:
            assert "when" not in t, f"{role}: a conditional phase must be an include, not an import ({imp})"
            assert role in t.get("tags", []), f"{role}: phase import without the role tag"
            included.append(imp)
            continue
        inc = t.get("ansible.builtin.include_tasks")
        assert inc, f"{role}: tasks/main.yml must only include or import phase files, found {t.get('name')}"
        included.append(inc["file"])
        assert role in t.get("tags", []), f"{role}: phase include without the role tag"
        assert inc.get("apply", {}).get("tags"), f"{role}: phase tags must be applied to the included tasks"
    assert tuple(included) == PHASES
    for phase in PHASES:
        assert (ROLES_DIR / role / "tasks" / phase).exists()


@pytest.mark.parametrize("role", ROLES)
def test_handlers_named_for_the_service(role):
    handlers = _load(ROLES_DIR / role / "handlers" / "main.yml")
    names = {h["name"] for h in handlers}
    assert HANDLERS[role] <= names


@pytest.mark.parametrize("role", ROLES)
def test_role_records_a_local_fact(role):
    text = "\n".join(p.read_text() for p in (ROLES_DIR / role / "tasks").glob("*.yml"))
    assert f"/etc/ansible/facts.d/{role}.fact" in text


def test_template_paths_mirror_targets():
    for tpl in ROLES_DIR.glob("*/templates/**/*.j2"):
        role = tpl.relative_to(ROLES_DIR).parts[0]
        rel = tpl.relative_to(ROLES_DIR / role / "templates")
        assert rel.parts[0] in ("etc", "opt", "usr", "var"), f"{tpl}: templates mirror target paths"


def test_secret_handling_tasks_use_no_log():
    """A task whose arguments look a secret up must hide its output."""
    for f in ROLES_DIR.glob("*/tasks/*.yml"):
        for task in _flatten(_load(f) or []):
            skip = ("name", "when", "vars", "loop", "block", "rescue", "always")
            args = yaml.safe_dump({k: v for k, v in task.items() if k not in skip})
            # nx_masked_diff takes the secrets to mask them: its output holds none (tests/unit/test_drift.py)
            if "nx_secret_" in args and "ansible.builtin.assert" not in task and "nx_masked_diff" not in task:
                assert task.get("no_log") is True, f"{f}: task '{task.get('name')}' handles a secret without no_log"


def _flatten(tasks):
    for t in tasks:
        yield t
        for key in ("block", "rescue", "always"):
            yield from _flatten(t.get(key, []))


def test_site_playbook_order():
    plays = _load(ROOT / "playbooks" / "site.yml")
    assert plays[0].get("ansible.builtin.import_playbook") == "validate.yml"
    order = [r["role"] if isinstance(r, dict) else r for p in plays for r in p.get("roles", [])]
    assert order == [
        "common",
        "firewall",
        "tls",
        "etcd",
        "postgresql",
        "patroni",
        "mongodb",
        "opensearch",
        "zookeeper",
        "seaweedfs",
        "pgbackrest",
        "kafka",
        "nuxeo",
        "haproxy",
        "keepalived",
        "monitoring",
    ]
    for p in plays[1:]:
        for r in p.get("roles", []):
            name = r["role"] if isinstance(r, dict) else r
            assert f"role::{name}" in p.get("tags", [])


def _tool(name: str) -> str | None:
    candidate = ROOT / ".venv" / "bin" / name
    return str(candidate) if candidate.exists() else shutil.which(name)


def test_site_syntax_check():
    ap = _tool("ansible-playbook")
    if not ap:
        pytest.skip("ansible-playbook not installed")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    proc = subprocess.run(
        [ap, "--syntax-check", "-i", "inventories/compact", "playbooks/site.yml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
