"""Action plugin: read a host's facts with `nx_host_facts` and judge them with nxprovision.prechecks.

Measures the host's clock against the controller's around the module call. Returns `rows` (host, check, status,
detail, fix) and fails the host when a row is an error, so plain `ansible-playbook` runs stop there too.
Option `fast: true` keeps the cheap subset (SSH, become, OS, ports, init's placeholders): the deploy's first check.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.plugins.action import ActionBase

_REPO = Path(__file__).resolve().parents[2]
if (_REPO / "nxprovision" / "__init__.py").exists() and str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))
# Run from an installed collection (AWX): the model reads the defaults of the roles beside this plugin.
if not (_REPO / "nxprovision").is_dir() and (_REPO / "roles").is_dir():
    os.environ.setdefault("NXPROVISION_HOME", str(_REPO))


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        from nxprovision import prechecks
        from nxprovision.inventory import view_from_ansible_vars
        from nxprovision.model.cluster import build_cluster

        host = str(task_vars.get("inventory_hostname"))
        fast = bool(self._task.args.get("fast", False))
        cluster = build_cluster(view_from_ansible_vars(task_vars.get("groups", {}), task_vars.get("hostvars", {})))
        plan = prechecks.host_plan(cluster, host)
        args = prechecks.module_args(plan)
        if fast:
            args.update(paths=[], names=[], urls=[])
        started = time.time()
        try:
            facts = self._execute_module(module_name="nx_host_facts", module_args=args, task_vars=task_vars)
        except AnsibleConnectionFailure:
            raise
        except AnsibleError as exc:
            facts = {"failed": True, "msg": str(exc)}
        ended = time.time()
        if facts.get("failed") or "uid" not in facts:
            why = " ".join(str(facts.get(k) or "").strip() for k in ("module_stderr", "msg")).strip()
            rows = prechecks.failed_host_rows(host, why, unreachable=bool(facts.get("unreachable")))
        elif fast:
            rows = prechecks.fast_rows(plan, facts, prechecks.placeholder_rows(cluster, resolve=lambda _name: True))
        else:
            # the module's own clock reading waits for its interpreter to start (seconds under load); a bare
            # `date` over the connection the module just opened brackets the host's clock much closer
            started = time.time()
            out = self._low_level_execute_command("date +%s.%N", sudoable=False)
            ended = time.time()
            with contextlib.suppress(ValueError):
                facts["time"] = float(str(out.get("stdout") or "").strip())
            rows = prechecks.evaluate(plan, facts, (started + ended) / 2, (ended - started) / 2)
        errors = [r for r in rows if r.status == prechecks.ERROR]
        result.update(changed=False, rows=[r.to_dict() for r in rows])
        if errors:
            result["failed"] = True
            result["msg"] = "; ".join(f"{r.check}: {r.detail} (fix: {r.fix})" for r in errors)
        else:
            result["msg"] = f"{len(rows)} check(s) passed" + (
                f", {sum(r.status == prechecks.WARN for r in rows)} warning(s)"
                if any(r.status == prechecks.WARN for r in rows) else "")
        return result
