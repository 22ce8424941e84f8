"""Action plugin: show the change of a no_log task (a file holding secrets) with its secret values masked.

A no_log task's result reaches no display: not its diff, not even that it changed. Run right after it, this task
takes its registered result and reports the same change; in --diff runs also the diff between the file on the
host (read, never written) and `content` (what the hidden task writes), with every value of `secrets` and the
value of every `key=value` line of `secret_keys` (or of a key named like a password) replaced by ********.
Arguments: `result` (the registered result), `path`, `content`, `of` (the hidden task's name), `secrets`,
`secret_keys`. It changes nothing on the host; its `changed` is the hidden task's.
"""

from __future__ import annotations

import base64
import os
import sys
from collections.abc import Mapping
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

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        from nxprovision.drift import mask_text

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
        if not (getattr(self._task, "diff", False) or getattr(self._play_context, "diff", False)) \
                or args.get("content") is None:
            result["msg"] = f"{path} differs (secret-bearing file; --diff shows it with the secrets masked)"
            return result
        # Ansible hides the hidden task's diff entirely: read the file (read-only, in check mode too) and compare
        # it with what the model writes, both masked
        before = ""
        read = self._execute_module(module_name="ansible.builtin.slurp", module_args={"src": path},
                                    task_vars=task_vars or {})
        if not read.get("failed") and read.get("content"):
            before = base64.b64decode(read["content"]).decode("utf-8", errors="replace")
        after = str(args.get("content"))
        result["diff"] = {"before": mask_text(before, secrets, keys), "after": mask_text(after, secrets, keys),
                          "before_header": path, "after_header": path}
        result["msg"] = f"{path} differs (secret values masked)"
        return result
