"""Every configuration file a deploy would write, rendered without contacting any host (`plan --files`).

The files come from the roles' own `template` tasks, found by following each role's task files from
`tasks/main.yml` the way the playbooks include them, and rendered with Ansible's own templating (its filters,
lookups and lazy role variables), so the plan shows what the roles write, not a copy of their logic. A file
whose content or condition needs something only the host knows (its memory, a registered result) is listed
with that reason instead of a guess: `nxprovision drift` shows those files as the host has them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nxprovision.model.cluster import Cluster
from nxprovision.model.roledefaults import project_root
from nxprovision.plan import MASK
from nxprovision.rotation import masked_names

TEMPLATE_MODULES = ("ansible.builtin.template", "template")
INCLUDE_MODULES = ("ansible.builtin.include_tasks", "ansible.builtin.import_tasks", "include_tasks", "import_tasks")
_UNDEFINED = re.compile(r"'([A-Za-z_][A-Za-z0-9_]*)' is undefined")


@dataclass
class PlannedFile:
    host: str
    role: str
    task: str
    path: str
    content: str | None = None  # None when `pending` says why it could not be rendered here
    pending: str = ""


@dataclass
class _TemplateTask:
    role: str
    name: str
    src: str
    dest: str
    when: list[str]
    loop: list[Any] | None


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _task_files(role_dir: Path, file: str, when: list[str], seen: set[str]) -> list[_TemplateTask]:
    """Template tasks of one task file and of what it includes, each with the conditions around it."""
    path = role_dir / "tasks" / file
    if file in seen or not path.is_file():
        return []
    seen = seen | {file}
    return _walk(role_dir, yaml.safe_load(path.read_text()) or [], when, seen)


def _walk(role_dir: Path, tasks: list[Any], when: list[str], seen: set[str]) -> list[_TemplateTask]:
    out: list[_TemplateTask] = []
    for task in tasks:
        if not isinstance(task, dict):
            continue
        cond = when + _as_list(task.get("when"))
        if "block" in task:
            for key in ("block", "rescue", "always"):
                out += _walk(role_dir, task.get(key) or [], cond, seen)
            continue
        for module in INCLUDE_MODULES:
            if module in task:
                arg = task[module]
                file = arg.get("file") if isinstance(arg, dict) else arg
                if isinstance(file, str) and "{{" not in file:
                    out += _task_files(role_dir, file, cond, seen)
        for module in TEMPLATE_MODULES:
            arg = task.get(module)
            if isinstance(arg, dict) and "src" in arg and "dest" in arg:
                loop = task.get("loop")
                out.append(_TemplateTask(role_dir.name, str(task.get("name", "")), str(arg["src"]),
                                         str(arg["dest"]), cond, loop if isinstance(loop, list) else None))
    return out


def role_templates(role: str) -> list[_TemplateTask]:
    return _task_files(project_root() / "roles" / role, "main.yml", [], set())


def _role_vars(role: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for folder in ("defaults", "vars"):
        p = project_root() / "roles" / role / folder / "main.yml"
        if p.is_file():
            out.update(yaml.safe_load(p.read_text()) or {})
    return out


def _trusted(value: Any) -> Any:
    from ansible.template import trust_as_template

    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {k: _trusted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_trusted(v) for v in value]
    return value


def _why(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    m = _UNDEFINED.search(text)
    if m and m.group(1).startswith("ansible_"):
        return f"needs the host's facts ({m.group(1)})"
    if m:
        return f"needs a value only the run has ({m.group(1)})"
    return f"cannot be rendered here: {text[:160]}"


class _HostTemplar:
    """Ansible's templating with what a host of one role sees: role defaults and vars, settings, host vars, nx."""

    def __init__(self, cluster: Cluster, facts: dict[str, Any], role: str, host: str, role_vars: dict[str, Any]):
        from ansible.parsing.dataloader import DataLoader
        from ansible.template import Templar

        variables: dict[str, Any] = dict(_trusted(role_vars))
        variables.update(_trusted(dict(cluster.settings)))
        variables.update(_trusted(dict(cluster.hosts[host].vars)) if host in cluster.hosts else {})
        variables.update(nx=facts, inventory_hostname=host, inventory_hostname_short=host.split(".")[0],
                         groups={k: list(v) for k, v in cluster.view.groups.items()}, role_name=role)
        self.variables = variables
        self.templar = Templar(loader=DataLoader(), variables=variables)

    def condition(self, expr: str) -> bool:
        from ansible.template import trust_as_template

        return bool(self.templar.template(trust_as_template("{{ (" + expr + ") | bool }}")))

    def render(self, text: str, extra: dict[str, Any] | None = None) -> str:
        from ansible.template import trust_as_template

        templar = self.templar.copy_with_new_env(available_variables={**self.variables, **(extra or {})}) \
            if extra else self.templar
        return str(templar.template(trust_as_template(text)))


def _play_hosts(cluster: Cluster, pattern: str) -> list[str]:
    if pattern == "all":
        return list(cluster.hosts)
    return [h for h in cluster.view.groups.get(pattern, []) if h in cluster.hosts]


def site_roles() -> list[tuple[str, str, list[str]]]:
    """(role, hosts pattern, the role's `when`) in site.yml's order."""
    site = project_root() / "playbooks" / "site.yml"
    out = []
    for play in yaml.safe_load(site.read_text()) or []:
        if not isinstance(play, dict) or "roles" not in play:
            continue
        for r in play["roles"]:
            name = r["role"] if isinstance(r, dict) else r
            when = _as_list(r.get("when") if isinstance(r, dict) else None)
            out.append((str(name), str(play.get("hosts", "")), when))
    return out


_PLUGINS: list[bool] = []


def _plugins_ready() -> None:
    """Ansible's filters and lookups, loaded once per process (a second load only warns)."""
    if not _PLUGINS:
        from ansible.plugins.loader import init_plugin_loader

        init_plugin_loader()
        _PLUGINS.append(True)


def planned_files(cluster: Cluster, reveal: bool = False) -> list[PlannedFile]:
    """Every file the roles' template tasks would write, per host, in the order a deploy writes them."""
    _plugins_ready()
    facts = cluster.to_facts()
    secrets = sorted({str(cluster.settings.get(n) or "") for n in masked_names()} - {""}, key=len, reverse=True)
    secrets = [s for s in secrets if len(s) >= 6]
    out: list[PlannedFile] = []
    seen: set[tuple[str, str]] = set()
    for role, pattern, role_when in site_roles():
        tasks = role_templates(role)
        if not tasks:
            continue
        role_vars = _role_vars(role)
        for host in _play_hosts(cluster, pattern):
            t = _HostTemplar(cluster, facts, role, host, role_vars)
            try:
                if not all(t.condition(c) for c in role_when):
                    continue
            except Exception:  # a role condition on facts of the host: the role may apply, list its files
                pass
            for task in tasks:
                for item in task.loop if task.loop is not None else [None]:
                    extra = {"item": item} if task.loop is not None else None
                    out.extend(_one(t, host, task, extra, seen, secrets, reveal))
    return out


def _one(t: _HostTemplar, host: str, task: _TemplateTask, extra: dict[str, Any] | None,
         seen: set[tuple[str, str]], secrets: list[str], reveal: bool) -> list[PlannedFile]:
    try:
        dest = t.render(task.dest, extra)
    except Exception as exc:
        return [PlannedFile(host, task.role, task.name, task.dest, pending=_why(exc))]
    if (host, dest) in seen:  # the same file written again later (e.g. with access control on): first wins
        return []
    pending = ""
    for cond in task.when:
        try:
            if not t.condition(cond):
                return []
        except Exception as exc:
            pending = f"written only if `{cond}` holds on the host ({_why(exc)})"
    seen.add((host, dest))
    try:
        src = project_root() / "roles" / task.role / "templates" / t.render(task.src, extra)
        content = t.render(src.read_text(), extra)
    except Exception as exc:
        return [PlannedFile(host, task.role, task.name, dest, pending=_why(exc))]
    if not reveal:
        for secret in secrets:
            content = content.replace(secret, MASK)
    return [PlannedFile(host, task.role, task.name, dest, content=content, pending=pending)]
