"""Action plugin: refuse to put an older Nuxeo version on nodes than the one they record.

Each Nuxeo node records the version it serves in /etc/ansible/facts.d/nuxeo.fact (`ansible_local.nuxeo.version`,
written by the nuxeo role once the node serves it). Facts must be gathered first (the `local` subset is enough).
Arguments: `target` (the version this run installs), `allow_downgrade` (bool), `nodes` (default: the play's hosts).
A refusal fails the task with `nx_refused: true`, which `nxprovision` reports as a refusal, not as a broken task.
The comparison lives in nxprovision/nodeversions.py.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

# AWX projects run from the checkout without installing the package: find it beside the plugins.
_REPO = Path(__file__).resolve().parents[2]
if (_REPO / "nxprovision" / "__init__.py").exists() and str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))
# Run from an installed collection (AWX): the model reads the defaults of the roles beside this plugin.
if not (_REPO / "nxprovision").is_dir() and (_REPO / "roles").is_dir():
    os.environ.setdefault("NXPROVISION_HOME", str(_REPO))


def _recorded(hostvars: Any, host: str) -> object:
    try:
        local = hostvars[host].get("ansible_local") or {}
    except KeyError:
        return None
    fact = local.get("nuxeo") if isinstance(local, Mapping) else None
    return fact.get("version") if isinstance(fact, Mapping) else None


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        from nxprovision.nodeversions import check

        args = self._task.args
        target = str(args.get("target") or "")
        nodes = args.get("nodes")
        if nodes is None:
            nodes = task_vars.get("ansible_play_hosts") or []
        allow = boolean(args.get("allow_downgrade", False), strict=False)
        hostvars = task_vars.get("hostvars") or {}
        try:
            verdict = check(target, {str(h): _recorded(hostvars, str(h)) for h in nodes}, allow)
        except ValueError as exc:
            result.update(failed=True, msg=str(exc))
            return result
        result["changed"] = False
        result["versions"] = {**verdict.newer, **verdict.older, **verdict.unreadable,
                              **dict.fromkeys(verdict.same, target), **dict.fromkeys(verdict.unrecorded)}
        warnings = verdict.warnings()
        if warnings:
            result["warnings"] = warnings
        if verdict.refused:
            result.update(failed=True, nx_refused=True, msg=verdict.message(), newer=verdict.newer)
            return result
        result["msg"] = verdict.message()
        return result
