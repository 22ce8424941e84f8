"""The role variable reference (docs/roles.md), generated from each role's meta/argument_specs.yml.

`python -m nxprovision.roledocs` rewrites it; a unit test fails when it is out of date.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from nxprovision.model.roledefaults import project_root


def _text(value: Any) -> str:
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    return " ".join(str(value or "").split()).replace("|", "\\|")


def _default(value: Any) -> str:
    if value is None:
        return ""
    dumped = yaml.safe_dump(value, default_flow_style=True, width=100000).strip()
    dumped = dumped.removesuffix("...").strip()
    return f"`{dumped}`" if dumped else ""


def render() -> str:
    root = project_root()
    out = ["# Role variable reference", "",
           "Generated from each role's `meta/argument_specs.yml` by `python -m nxprovision.roledocs`;",
           "defaults are those of `defaults/main.yml`. Cluster-wide values (node ids, endpoints, quorum lists) are",
           "not role variables: the model computes them (see `nxprovision plan`).", ""]
    for spec_file in sorted(root.glob("roles/*/meta/argument_specs.yml")):
        role = spec_file.parts[-3]
        specs = (yaml.safe_load(spec_file.read_text()) or {}).get("argument_specs", {})
        defaults_file = root / "roles" / role / "defaults" / "main.yml"
        defaults = yaml.safe_load(defaults_file.read_text()) or {} if defaults_file.exists() else {}
        main = specs.get("main", {})
        out += [f"## {role}", "", _text(main.get("short_description") or main.get("description")), ""]
        options = main.get("options") or {}
        if not options:
            out += ["No variables.", ""]
        else:
            out += ["| variable | type | default | description |", "|---|---|---|---|"]
            for name in sorted(options):
                o = options[name] or {}
                out.append(f"| `{name}` | {o.get('type', 'str')} | {_default(defaults.get(name))} | "
                           f"{_text(o.get('description'))} |")
            out.append("")
        # the role's other entry points: what day-2 playbooks may call (`tasks_from`), and nothing else
        others = {k: v or {} for k, v in specs.items() if k != "main"}
        if others:
            out += ["Entry points for playbooks (`include_role` with `tasks_from`):", ""]
            out += [f"- `{name}`: {_text(e.get('short_description'))}. {_text(e.get('description'))}"
                    for name, e in sorted(others.items())]
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    target = project_root() / "docs" / "roles.md"
    target.write_text(render())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
