"""Load an inventory exactly as ansible-playbook sees it, into a neutral view the model reads.

Ansible's own InventoryManager/VariableManager do the loading, so group_vars/host_vars folders, INI and
YAML sources, vaulted files and values behave as they do for ansible-playbook. The action plugin that runs
the same model inside playbooks builds the same InventoryView from `groups` and `hostvars` instead.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nxprovision.errors import NxError
from nxprovision.secrets import VAULT_PASS_NAME, read_vault_password


@dataclass
class InventoryView:
    """Groups and host variables, plain Python values, plus where each value came from."""

    source: str
    groups: dict[str, list[str]]
    hostvars: dict[str, dict[str, Any]]
    # (host, variable) -> "file:line" where the loader can tell
    origins: dict[tuple[str, str], str] = field(default_factory=dict)
    # group -> file defining it (best effort, for messages)
    group_sources: dict[str, str] = field(default_factory=dict)

    def hosts_in(self, group: str) -> list[str]:
        return list(self.groups.get(group, []))

    def origin(self, host: str, var: str) -> str | None:
        return self.origins.get((host, var))


def inventory_dir(inventory: str | Path) -> Path:
    """The inventory's folder: the -i path itself, or the folder of an inventory file."""
    p = Path(inventory)
    return p if p.is_dir() else p.parent


def find_vault_password_file(inventory: Path, explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    env = os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
    if env:
        return Path(env)
    candidate = inventory_dir(inventory) / VAULT_PASS_NAME
    return candidate if candidate.exists() else None


def _origin_text(value: Any) -> str | None:
    try:
        from ansible._internal._datatag._tags import Origin
    except ImportError:  # internal API; locations are a nicety, never a requirement
        return None
    tag = Origin.get_tag(value)
    if tag is None or not tag.path:
        return None
    path = _display_path(tag.path)
    return f"{path}:{tag.line_num}" if tag.line_num else path


def _display_path(path: str) -> str:
    cwd = os.getcwd()
    return os.path.relpath(path, cwd) if path.startswith(cwd + os.sep) else path


def plain(value: Any) -> Any:
    """Strip Ansible's tagged/lazy containers down to builtin types."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [plain(v) for v in value]
    if value is None:
        return None
    return str(value)


def _needs_templating(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value or "{%" in value or type(value).__name__ == "EncryptedString"
    if isinstance(value, Mapping):
        return any(_needs_templating(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_needs_templating(v) for v in value)
    return False


# Variables Ansible adds on its own; they are not the operator's settings.
_MAGIC = frozenset(
    {"inventory_file", "inventory_dir", "inventory_hostname", "inventory_hostname_short", "group_names",
     "groups", "omit", "playbook_dir", "ansible_playbook_python", "ansible_config_file", "ansible_version",
     "ansible_check_mode", "ansible_diff_mode", "ansible_forks", "ansible_inventory_sources",
     "ansible_verbosity", "ansible_run_tags", "ansible_skip_tags", "ansible_limit", "ansible_play_batch",
     "ansible_play_hosts", "ansible_play_hosts_all", "ansible_play_name", "ansible_play_role_names",
     "ansible_role_names", "ansible_dependent_role_names", "role_names", "hostvars", "environment",
     "vars", "ansible_collection_name", "ansible_search_path"}
)


def load_inventory(path: str | Path, vault_password_file: str | None = None) -> InventoryView:
    """Load with Ansible's API. Problems come back as NxError naming the file."""
    inv_path = Path(path)
    if not inv_path.exists():
        raise NxError(f"{inv_path}: no such inventory file or directory", "pass -i with an existing inventory")

    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    from ansible.utils.display import Display
    from ansible.vars.manager import VariableManager

    Display().verbosity = 0
    _precheck_yaml(inv_path)
    loader = DataLoader()
    vpf = find_vault_password_file(inv_path, vault_password_file)
    if vpf is not None:
        from ansible.constants import DEFAULT_VAULT_ID_MATCH
        from ansible.parsing.vault import VaultSecret

        loader.set_vault_secrets([(DEFAULT_VAULT_ID_MATCH, VaultSecret(read_vault_password(vpf)))])

    try:
        with warnings.catch_warnings(), _quiet_display():
            warnings.simplefilter("ignore")
            inventory = _parse_strictly(InventoryManager, loader, inv_path)
            vm = VariableManager(loader=loader, inventory=inventory)
            groups: dict[str, list[str]] = {}
            for name, group in inventory.groups.items():
                groups[name] = [h.name for h in group.get_hosts()]
            hostvars: dict[str, dict[str, Any]] = {}
            origins: dict[tuple[str, str], str] = {}
            for host in inventory.get_hosts(ignore_limits=True, ignore_restrictions=True):
                raw = vm.get_vars(host=host, include_hostvars=False)
                templar: Any = None
                values: dict[str, Any] = {}
                for key, value in raw.items():
                    if key in _MAGIC:
                        continue
                    where = _origin_text(value)
                    if where:
                        origins[(host.name, key)] = where
                    if _needs_templating(value):
                        if templar is None:
                            templar = Templar(loader=loader, variables=raw)
                        try:
                            value = templar.template(value)
                        except AnsibleError as exc:
                            loc = f"{where}: " if where else ""
                            raise NxError(
                                f"{loc}host {host.name}: variable '{key}' cannot be resolved: "
                                f"{_first_line(exc)}",
                                "fix the Jinja expression or provide the variables it uses "
                                "(for vaulted values pass --vault-password-file)",
                            ) from None
                    values[key] = plain(value)
                hostvars[host.name] = values
    except NxError:
        raise
    except AnsibleError as exc:
        raise NxError(f"{inv_path}: {_first_line(exc)}", _fix_for(exc)) from None
    return InventoryView(source=str(inv_path), groups=groups, hostvars=hostvars, origins=origins)


class _TolerantLoader(yaml.SafeLoader):
    """Safe YAML that accepts Ansible's tags (!vault, !unsafe) without interpreting them."""


def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


_TolerantLoader.add_multi_constructor("!", _any_tag)


def _vars_files(folder: Path) -> list[Path]:
    return [p for sub in ("group_vars", "host_vars") if (folder / sub).is_dir()
            for p in sorted((folder / sub).rglob("*"))
            if p.is_file() and p.suffix in (".yml", ".yaml") and not p.name.startswith(".")]


def _precheck_yaml(inv_path: Path) -> None:
    """Name the file, line and column of a YAML syntax error or a wrong shape (Ansible buries either under a
    screen of warnings, or reads a misspelt key as nothing at all)."""
    files = [inv_path, *_vars_files(inv_path.parent)] if inv_path.is_file() else [
        p for p in sorted(inv_path.rglob("*"))
        if p.is_file() and (p.suffix in (".yml", ".yaml") or (p.parent == inv_path and p.suffix == ""))
        and not p.name.startswith(".")
    ]
    for f in files:
        if f.suffix not in (".yml", ".yaml") and not _looks_like_yaml(f):
            continue
        try:
            raw = f.read_bytes()
        except OSError as exc:
            raise NxError(f"{_display_path(str(f))}: cannot read ({exc.strerror})", "check the file's permissions") \
                from None
        if raw.lstrip().startswith(b"$ANSIBLE_VAULT;"):
            continue
        try:
            yaml.load(raw, Loader=_TolerantLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            where = f"{_display_path(str(f))}:{mark.line + 1}:{mark.column + 1}" if mark else _display_path(str(f))
            problem = exc.problem or exc.context or "invalid YAML"
            raise NxError(f"{where}: YAML syntax error: {problem}",
                          "fix the YAML at that line (indentation, a missing colon, quote or bracket)") from None
        except yaml.YAMLError as exc:
            raise NxError(f"{_display_path(str(f))}: YAML error: {exc}", "fix the file's YAML") from None
        node = yaml.compose(raw, Loader=_TolerantLoader)
        folder = inv_path.parent if inv_path.is_file() else inv_path
        try:
            rel = f.relative_to(folder).parts
        except ValueError:
            rel = ()
        if rel and rel[0] in ("group_vars", "host_vars"):
            _check_vars_file(f, node, rel[0])
        else:
            _check_inventory_source(f, node)


_NULL = "tag:yaml.org,2002:null"
_GROUP_KEYS = ("hosts", "children", "vars")


def _is_null(node: yaml.Node | None) -> bool:
    return node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL)


def _where(f: Path, node: yaml.Node) -> str:
    return f"{_display_path(str(f))}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.ScalarNode):
        return f"the value '{node.value}'" if len(node.value) <= 40 else "a string"
    return "a mapping"


def _check_vars_file(f: Path, node: yaml.Node | None, folder: str) -> None:
    if _is_null(node) or isinstance(node, yaml.MappingNode):
        return
    assert node is not None
    raise NxError(f"{_where(f, node)}: this {folder} file holds {_kind(node)}; Ansible expects a mapping of "
                  "variable names to values",
                  "write one `name: value` per line (no leading dash), like group_vars/all/main.yml")


def _check_inventory_source(f: Path, node: yaml.Node | None) -> None:
    """The shape Ansible's YAML inventory plugin reads: groups -> {hosts, children, vars}."""
    if _is_null(node):
        return
    assert node is not None
    if not isinstance(node, yaml.MappingNode):
        raise NxError(f"{_where(f, node)}: the inventory holds {_kind(node)}; Ansible expects a mapping of groups",
                      "start with `all:`, then `children:` with one group per component and `hosts:` under each, "
                      "as `nxprovision init` writes them (see inventories/compact/hosts.yml)")
    if any(isinstance(k, yaml.ScalarNode) and k.value == "plugin" for k, _v in node.value):
        return  # an inventory plugin's configuration, not hosts
    for key, value in node.value:
        _check_group(f, str(key.value), key, value)


def _check_group(f: Path, group: str, key: yaml.Node, node: yaml.Node) -> None:
    import difflib

    if _is_null(node):
        return
    if not isinstance(node, yaml.MappingNode):
        raise NxError(f"{_where(f, node)}: group '{group}' is given as {_kind(node)}; a group is a mapping with "
                      "`hosts:` (and `children:`, `vars:`)",
                      f"write `{group}:`, then `hosts:` indented below it, then each host as `<name>:` "
                      "indented below that")
    for k, v in node.value:
        name = str(k.value)
        if name not in _GROUP_KEYS:
            guess = difflib.get_close_matches(name, _GROUP_KEYS, n=1, cutoff=0.6)
            fix = (f"rename `{name}:` to `{guess[0]}:`" if guess else
                   f"put host {name} under `hosts:` (or a child group under `children:`, a variable under "
                   "`vars:`)")
            raise NxError(f"{_where(f, k)}: group '{group}' has the key '{name}', which Ansible ignores (a group "
                          "holds only hosts, children and vars)", fix)
        if _is_null(v):
            continue
        if name == "hosts":
            if not isinstance(v, yaml.MappingNode):
                raise NxError(f"{_where(f, v)}: `hosts:` of group '{group}' is {_kind(v)}; Ansible expects a "
                              "mapping of host names",
                              "write each host as `<name>:` on its own line (a colon after the name, no dash)")
            for hk, hv in v.value:
                if not _is_null(hv) and not isinstance(hv, yaml.MappingNode):
                    host = str(hk.value)
                    example = (f"`ansible_host: {hv.value}`" if isinstance(hv, yaml.ScalarNode) and hv.value
                               else "`ansible_host: 10.0.0.5`")
                    raise NxError(f"{_where(f, hv)}: host '{host}' in group '{group}' has {_kind(hv)}; host "
                                  "variables are a mapping of names to values",
                                  f"write `{host}:` and its variables indented below it, e.g. {example}")
        elif name == "children":
            if not isinstance(v, yaml.MappingNode):
                raise NxError(f"{_where(f, v)}: `children:` of group '{group}' is {_kind(v)}; Ansible expects a "
                              "mapping of groups",
                              "write each child group as `<group>:` on its own line (a colon after the name, "
                              "no dash), with its `hosts:` below it")
            for ck, cv in v.value:
                _check_group(f, str(ck.value), ck, cv)
        elif not isinstance(v, yaml.MappingNode):
            raise NxError(f"{_where(f, v)}: `vars:` of group '{group}' is {_kind(v)}; Ansible expects a mapping",
                          "write one `name: value` per line under `vars:`")


def _looks_like_yaml(path: Path) -> bool:
    try:
        head = path.read_text(errors="replace")[:200].lstrip()
    except OSError:
        return False
    return head.startswith(("all:", "---"))


class _quiet_display:
    """Ansible prints parse warnings itself (a failed source gives one per plugin tried, with its cause chain);
    the operator gets our one-line error instead."""

    _SILENCED = ("warning", "error_as_warning", "_warning")

    def __enter__(self) -> _quiet_display:
        from ansible.utils.display import Display

        self._cls = Display
        self._saved = {name: getattr(Display, name) for name in self._SILENCED if hasattr(Display, name)}
        for name in self._saved:
            setattr(Display, name, lambda *a, **k: None)
        return self

    def __exit__(self, *exc: object) -> None:
        for name, fn in self._saved.items():
            setattr(self._cls, name, fn)


def _parse_strictly(manager_cls: Any, loader: Any, inv_path: Path) -> Any:
    """Parse with Ansible, but fail on a source no inventory plugin could read (Ansible only warns)."""
    from ansible import constants as C

    saved = C.INVENTORY_UNPARSED_IS_FAILED, C.INVENTORY_ANY_UNPARSED_IS_FAILED
    C.INVENTORY_UNPARSED_IS_FAILED = True
    C.INVENTORY_ANY_UNPARSED_IS_FAILED = True
    try:
        return manager_cls(loader=loader, sources=[str(inv_path)])
    finally:
        C.INVENTORY_UNPARSED_IS_FAILED, C.INVENTORY_ANY_UNPARSED_IS_FAILED = saved


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", "") or exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " ".join(lines[:2]) if lines else exc.__class__.__name__


def _fix_for(exc: BaseException) -> str:
    text = str(exc).lower()
    if "vault" in text and ("secret" in text or "decrypt" in text or "password" in text):
        return "pass --vault-password-file with the password that encrypted the secrets file"
    if "yaml" in text or "syntax" in text or "parse" in text:
        return "fix the file's syntax (indentation and colons), comparing it with the samples in inventories/"
    return "check the inventory file against the samples in inventories/"


def view_from_ansible_vars(groups: Mapping[str, Any], hostvars: Mapping[str, Any]) -> InventoryView:
    """The same view, built inside a play from the `groups` and `hostvars` magic variables."""
    g = {str(k): [str(h) for h in v] for k, v in groups.items()}
    hv: dict[str, dict[str, Any]] = {}
    for host in g.get("all", []):
        hv[host] = {}
        src = hostvars[host]
        for key in list(src.keys()):
            if key in _MAGIC or key.startswith("ansible_facts") or key == "nx":
                continue
            try:
                hv[host][key] = plain(src[key])
            except Exception:  # an unresolvable var the model never reads must not break the play
                continue
    return InventoryView(source="ansible", groups=g, hostvars=hv)


def host_setting(view: InventoryView, settings: dict[str, Any], host: str, key: str) -> Any:
    """A host's value of a setting: its own host variable wins over the cluster-wide one."""
    hv = view.hostvars.get(host, {})
    return hv[key] if key in hv else settings.get(key)
