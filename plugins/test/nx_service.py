"""Jinja tests about the service tasks' results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def started_now(result: Any) -> bool:
    """A systemd_service result of this run that started a unit which was not active before it.

    Its handlers skip a notified restart or reload then: it would only repeat the start. systemd_service's
    `status` is the unit's state from before the task.
    """
    if not isinstance(result, Mapping) or not result.get("changed"):
        return False
    return (result.get("status") or {}).get("ActiveState", "active") != "active"


class TestModule:
    def tests(self) -> dict[str, Any]:
        return {"nx_started_now": started_now}
