"""Action plugin: the MongoDB side of remove-node (nxprovision.mongodb_removal), decided on the controller.

From the replica set's state (`state`: what nx_mongodb_replset's `state` action returned) and the member leaving
(`leaving`, host:port as the set's configuration names it), returns `refusal` (why it may not go, or ''),
`member` (whether the configuration still lists it) and `primary` (the set's primary). Read-only.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ansible.plugins.action import ActionBase

# AWX projects run from the checkout without installing the package: find it beside the plugins.
_REPO = Path(__file__).resolve().parents[2]
if (_REPO / "nxprovision" / "__init__.py").exists() and str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        from nxprovision import mongodb_removal

        args = self._task.args
        state = dict(args.get("state") or {})
        leaving = str(args.get("leaving") or "")
        result.update(
            changed=False,
            refusal=mongodb_removal.refusal(state, leaving, bool(args.get("unreachable"))),
            member=leaving in [str(m.get("name")) for m in state.get("members") or []],
            primary=str(state.get("primary") or ""),
        )
        return result
