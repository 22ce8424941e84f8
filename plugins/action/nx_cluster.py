"""Action plugin: build the nxprovision cluster model from the inventory and run its rules.

The first play of every playbook calls it (with run_once), so `ansible-playbook` and AWX runs get the
same validation and the same derived values (the `nx` fact) as `nxprovision deploy`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from ansible.plugins.action import ActionBase

# AWX projects run from the checkout without installing the package: find it beside the plugins.
_REPO = Path(__file__).resolve().parents[2]
if (_REPO / "nxprovision" / "__init__.py").exists() and str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))
# Run from an installed collection (AWX): the model reads the defaults of the roles beside this plugin.
if not (_REPO / "nxprovision").is_dir() and (_REPO / "roles").is_dir():
    os.environ.setdefault("NXPROVISION_HOME", str(_REPO))


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        try:
            from nxprovision.inventory import view_from_ansible_vars
            from nxprovision.model.cluster import build_cluster
            from nxprovision.rules import run_rules
        except ImportError as exc:
            result.update(
                failed=True,
                msg=f"nxprovision package not importable: {exc}; install it "
                "(pip install -e .) in the Python that runs ansible-playbook",
            )
            return result
        view = view_from_ansible_vars(task_vars.get("groups", {}), task_vars.get("hostvars", {}))
        # remove-node computes the cluster as it will be without the host being removed
        exclude = self._task.args.get("exclude") or []
        if exclude:
            from nxprovision.daytwo import view_without

            for host in exclude:
                view = view_without(view, str(host))
        cluster = build_cluster(view)
        findings = run_rules(cluster)
        errors = [f.line() for f in findings if f.severity == "error"]
        warnings = [f.line() for f in findings if f.severity == "warning"]
        ignore = bool(self._task.args.get("ignore_errors_of_rules", False))
        result["changed"] = False
        result["findings"] = [f.to_dict() for f in findings]
        if warnings:
            result["warnings"] = warnings
        if errors and not ignore:
            result["failed"] = True
            result["msg"] = f"the inventory breaks {len(errors)} rule(s); nothing was changed:\n" + "\n".join(errors)
            return result
        result["ansible_facts"] = {"nx": cluster.to_facts()}
        result["msg"] = f"{cluster.architecture}: {len(cluster.hosts)} hosts valid, {len(warnings)} warning(s)"
        return result
