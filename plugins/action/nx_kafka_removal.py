"""Action plugin: the Kafka side of remove-node (nxprovision.kafka_removal), decided on the controller.

From `kafka-topics.sh --describe` (the `describe` argument) and the broker leaving (`leaving`, its node id), returns
`refusal` (why the broker may not go, or ''), `plan` (the kafka-reassign-partitions.sh plan moving every replica
off it), `holders` (the partitions it still holds) and `partitions` (how many were listed). Read-only.
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


def _ints(value: Any) -> list[int]:
    return [int(v) for v in (value or [])]


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        from nxprovision import kafka_removal

        args = self._task.args
        topics = kafka_removal.parse_describe(str(args.get("describe") or ""))
        leaving = int(args["leaving"])
        survivors = _ints(args.get("survivors"))
        result.update(
            changed=False,
            refusal=kafka_removal.refusal(topics, leaving, survivors, int(args.get("min_insync") or 1),
                                          bool(args.get("unreachable")), _ints(args.get("voters")),
                                          _ints(args.get("voters_answering"))),
            plan=kafka_removal.reassignment(topics, leaving, survivors),
            holders=kafka_removal.holders(topics, leaving),
            partitions=len(topics.partitions),
        )
        return result
