"""validate applies every role's argument spec: no value a role would refuse at run time passes validate."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from nxprovision.inventory import load_inventory
from nxprovision.model.cluster import build_cluster
from nxprovision.rules import run_rules
from nxprovision.rules.argspecs import _hosts_of, role_options

# The sample whose hosts run each role (the role's play targets a group with hosts there).
INVENTORY_OF = {"etcd": ("distributed", "postgresql"), "patroni": ("distributed", "postgresql"),
                "keepalived": ("distributed", "postgresql"), "mongodb": ("compact", "mongodb")}
# Roles no sample runs: ZooKeeper only serves Kafka before KRaft, which no sample uses.
NO_SAMPLE = {"zookeeper"}


def _bad_value(spec: dict[str, Any]) -> Any:
    """A value Ansible's own validator refuses for this option, or None when every value converts (str, path)."""
    kind = spec.get("type", "str")
    if spec.get("choices"):
        candidate: Any = "not-one-of-the-choices"
    elif kind in ("int", "float"):
        candidate = "not-a-number"
    elif kind == "bool":
        candidate = "perhaps"
    elif kind == "list":
        candidate = ["not-a-number"] if spec.get("elements") in ("int", "float") else {"a": "mapping"}
    elif kind == "dict":
        candidate = "not a mapping"
    else:
        return None
    result = ArgumentSpecValidator({"x": {k: v for k, v in spec.items() if k in ("type", "choices", "elements")}})
    return candidate if result.validate({"x": candidate}).error_messages else None


def _refusable() -> list[tuple[str, str, Any]]:
    out = []
    for role, options in sorted(role_options().items()):
        for key, spec in sorted(options.items()):
            bad = _bad_value(spec)
            if bad is not None:
                out.append((role, key, bad))
    return out


def test_every_role_spec_is_walked() -> None:
    cases = _refusable()
    assert {role for role, _k, _v in cases} >= set(role_options()) - {"tls"} - NO_SAMPLE
    assert len(cases) > 80


@pytest.mark.parametrize("role", sorted(set(role_options()) - NO_SAMPLE))
def test_validate_refuses_every_value_the_role_spec_refuses(role: str, make_inv) -> None:
    cases = [(k, v) for r, k, v in _refusable() if r == role]
    if not cases:
        pytest.skip(f"the {role} role's spec has only str/path options, which take any value")
    arch, database = INVENTORY_OF.get(role, ("compact", "postgresql"))
    inv = make_inv(arch, database=database, set=dict(cases))
    cluster = build_cluster(load_inventory(inv))
    assert _hosts_of(cluster, role), f"no host of {arch}/{database} runs {role}"
    findings = run_rules(cluster)
    errors = {f.subject for f in findings if f.severity == "error"}
    missing = [k for k, _v in cases if f"setting {k}" not in errors]
    assert not missing, f"validate lets through values the {role} role refuses: {missing}"


def test_the_roles_own_samples_pass_their_specs() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "inventories"
    for sample in ("single", "compact", "distributed", "compact-mongodb"):
        findings = run_rules(build_cluster(load_inventory(root / sample)))
        assert not [f.line() for f in findings if f.rule.startswith(("settings.spec.", "settings.range."))]


def test_ranges_the_specs_cannot_say(make_inv) -> None:
    inv = make_inv("distributed", set={"nuxeo_heap_mb": -5, "keepalived_virtual_router_id": 300,
                                       "haproxy_timeout_server_s": 0, "nuxeo_gate_interval_s": 0})
    findings = {f.subject: f for f in run_rules(build_cluster(load_inventory(inv))) if f.severity == "error"}
    assert "negative" in findings["setting nuxeo_heap_mb"].message
    assert "1-255" in findings["setting keepalived_virtual_router_id"].message
    assert "1-300" in findings["setting nuxeo_gate_interval_s"].message
    assert "setting haproxy_timeout_server_s" not in findings
