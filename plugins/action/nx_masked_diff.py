"""Action plugin: show the change of a no_log task (a file holding secrets) with its secret values masked.

A no_log task's result reaches no display: not its diff, not even that it changed. Run right after it, this task
takes its registered result and reports the same change, its diff (--diff runs) with every value of O(secrets)
and the value of every `key=value` line of O(secret_keys) (or of a key named like a password) replaced by
********. Arguments: `result` (the registered result), `path`, `of` (the hidden task's name), `secrets`,
`secret_keys`. It changes nothing on the host; its `changed` is the hidden task's.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible.plugins.action import ActionBase

# AWX projects run from the checkout without installing the package: find it beside the plugins.
_REPO = Path(__file__).resolve().parents[2]
if (_REPO / "nxprovision" / "__init__.py").exists() and str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))


def _masked(diff: Any, secrets: list[str], keys: list[str]) -> Any:
    from nxprovision.drift import mask_text

    if isinstance(diff, list):
        return [_masked(d, secrets, keys) for d in diff]
    if not isinstance(diff, Mapping):
        return None
    out = {}
    for k, v in diff.items():
        out[str(k)] = mask_text(v, secrets, keys) if isinstance(v, str) and k in ("before", "after", "prepared") \
            else v
    return out


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        args = self._task.args
        hidden = args.get("result") or {}
        path = str(args.get("path") or "")
        secrets = [str(s) for s in (args.get("secrets") or []) if s]
        keys = [str(k) for k in (args.get("secret_keys") or [])]
        did_change = bool(isinstance(hidden, Mapping) and hidden.get("changed"))
        result.update(changed=did_change, nx_path=path, nx_diff_of=str(args.get("of") or ""))
        if not did_change:
            result["msg"] = f"{path} is as the model writes it"
            return result
        diff = hidden.get("diff") if isinstance(hidden, Mapping) else None
        if diff:
            result["diff"] = _masked(diff, secrets, keys)
            result["msg"] = f"{path} differs (secret values masked)"
        else:
            result["msg"] = f"{path} differs (secret-bearing file; --diff shows it with the secrets masked)"
        return result
