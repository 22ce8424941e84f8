"""The roles' own argument specs, applied by validate: a value a role would refuse at run time is refused here.

Each role validates its variables against `meta/argument_specs.yml` when it starts (Ansible does that for every
role with a spec), which is after the hosts were touched. The same specs, read with Ansible's own validator (the
same type coercion: "8080" is an int, "yes" a bool), run here on every value the inventory sets, for each host
the role runs on. Ranges the specs cannot say (ports, counts that cannot be negative) are added below.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

import yaml

from nxprovision.model.cluster import Cluster
from nxprovision.model.ports import PORTS
from nxprovision.model.roledefaults import project_root
from nxprovision.rules._where import of_setting
from nxprovision.rules.finding import Finding, error

# The ports rule judges these (range and clashes per host), with its own wording.
_PORTS_RULE = {key for entries in PORTS.values() for _label, key in entries} | {"haproxy_http_port"}

# Options whose value must fall in a range; every other int or float option must not be negative.
_RANGES: dict[str, tuple[int, int]] = {"keepalived_virtual_router_id": (1, 255), "keepalived_priority_base": (1, 254),
                                       # a poll every 0 s divides the wait by zero
                                       "nuxeo_gate_interval_s": (1, 300)}
_PORT = (1, 65535)


@cache
def role_options() -> dict[str, dict[str, dict[str, Any]]]:
    """role -> option -> spec, every entry point's options together."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for path in sorted((project_root() / "roles").glob("*/meta/argument_specs.yml")):
        specs = (yaml.safe_load(path.read_text()) or {}).get("argument_specs") or {}
        options: dict[str, dict[str, Any]] = {}
        for entry in specs.values():
            options.update((entry or {}).get("options") or {})
        out[path.parent.parent.name] = options
    return out


@cache
def _role_groups() -> dict[str, set[str]]:
    """role -> the host patterns of the site.yml plays that run it (the walk `plan --files` uses too)."""
    from nxprovision.planfiles import site_roles

    out: dict[str, set[str]] = {}
    for role, pattern, _when in site_roles():
        out.setdefault(role, set()).add(pattern)
    return out


def _hosts_of(c: Cluster, role: str) -> list[str]:
    patterns = _role_groups().get(role, set())
    if "all" in patterns:
        return list(c.hosts)
    return [h for h in c.hosts if any(h in c.view.groups.get(p, []) for p in patterns)]


def _templated(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _range_problem(key: str, spec: dict[str, Any], value: Any) -> str:
    if spec.get("type") not in ("int", "float") or isinstance(value, bool) or key in _PORTS_RULE:
        return ""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""  # the type check reports it
    low, high = _RANGES.get(key, _PORT if key.endswith("_port") else (0, 0))
    if high and not low <= number <= high:
        return f"{value} is out of range (allowed: {low}-{high})"
    if not high and number < 0:
        return f"{value} is negative (allowed: 0 or more)"
    return ""


def _spec_problem(key: str, spec: dict[str, Any], value: Any) -> str:
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    one = {k: v for k, v in spec.items() if k in ("type", "choices", "elements", "options", "no_log")}
    result = ArgumentSpecValidator({key: one}).validate({key: value})
    if result.error_messages:
        if spec.get("no_log"):
            return f"is not a valid {spec.get('type', 'value')} (value hidden: it is a secret)"
        return str(result.error_messages[0]).replace(f"argument '{key}' ", "").replace(f"'{key}' ", "")
    return ""


def check(c: Cluster) -> Iterator[Finding]:
    seen: set[tuple[str, str]] = set()
    typed = {key for key, _expected in c.settings.get("_type_problems", [])}  # settings.py reports those
    for role, options in role_options().items():
        for host in _hosts_of(c, role):
            values = c.view.hostvars.get(host, {})
            for key, spec in options.items():
                if key in typed or key not in values or _templated(values[key]) or values[key] is None:
                    continue
                value = values[key]
                marker = (key, repr(value))
                if marker in seen:
                    continue
                seen.add(marker)
                what = f" ({spec['description']})" if isinstance(spec.get("description"), str) else ""
                problem = _spec_problem(key, spec, value)
                if problem:
                    choices = spec.get("choices")
                    fix = (f"use one of {', '.join(map(str, choices))}" if choices
                           else f"write {key} as {spec.get('type', 'str')}{what}")
                    yield error(f"settings.spec.{key}", f"setting {key}", f"{problem} (the {role} role's argument "
                                "spec would refuse it at run time)", fix, of_setting(c, key, host))
                    continue
                problem = _range_problem(key, spec, value)
                if problem:
                    yield error(f"settings.range.{key}", f"setting {key}", problem,
                                f"set {key} within that range{what}", of_setting(c, key, host))
