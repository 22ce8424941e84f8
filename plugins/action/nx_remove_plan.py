"""Action plugin: what remove_node.yml runs for the host being removed (nxprovision.daytwo.removal_plan).

Sets the `nx_remove_plan` fact: the host's components in remove-node's fixed order, the task file of each,
and which of them have a check/ or after/ hook under the hooks folder.
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
        from nxprovision.daytwo import removal_plan

        host = str(self._task.args.get("host") or "")
        hooks = Path(str(self._task.args.get("hooks_dir") or ""))
        nx = task_vars.get("nx") or {}
        if host not in (nx.get("hosts") or {}):
            result.update(failed=True, msg=f"{host or '(no host)'} is not a host of this cluster's model")
            return result
        plan = removal_plan(nx, host, hooks)
        result["changed"] = False
        result["ansible_facts"] = {"nx_remove_plan": plan}
        result["msg"] = f"{host}: " + (", ".join(plan["components"]) or "no component")
        return result
