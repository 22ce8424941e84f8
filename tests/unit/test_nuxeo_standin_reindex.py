"""The stand-in's repository reindex (management API): one at a time, a status that ends COMPLETED with every
document counted, ABORTED with the reason when indexing fails; the endpoint's path follows the LTS."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from nxprovision_lab.standins.nuxeo.runtime import bulk as bulk_mod
from nxprovision_lab.standins.nuxeo.runtime.bulk import Bulk, ReindexRunning


def wait_done(b: Bulk, command_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        s = b.status(command_id)
        assert s is not None
        if s["state"] in ("COMPLETED", "ABORTED"):
            return s
        time.sleep(0.01)
    raise AssertionError(f"still {s}")


def test_a_reindex_drops_the_index_then_indexes_every_document(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk_mod, "CHUNK", 3)
    calls: list[Any] = []
    ids = [f"d{i}" for i in range(7)]
    b = Bulk()
    first = b.reindex(lambda: ids, lambda: calls.append("recreate"),
                      lambda chunk: calls.append(tuple(chunk)) or len(chunk), lambda: calls.append("refresh"))
    assert first["entity-type"] == "bulkStatus" and first["action"] == "index" and first["state"] == "SCHEDULED"
    done = wait_done(b, first["commandId"])
    assert done["state"] == "COMPLETED" and done["processed"] == done["total"] == 7 and done["errorCount"] == 0
    assert calls == ["recreate", ("d0", "d1", "d2"), ("d3", "d4", "d5"), ("d6",), "refresh"]
    assert b.status("nope") is None


def test_one_reindex_at_a_time_and_a_failure_is_in_the_status() -> None:
    b = Bulk()
    gate = threading.Event()

    def slow_ids() -> list[str]:
        gate.wait(5)
        return ["a", "b"]

    running = b.reindex(slow_ids, lambda: None, len, lambda: None)
    with pytest.raises(ReindexRunning):
        b.reindex(lambda: [], lambda: None, len, lambda: None)
    gate.set()
    assert wait_done(b, running["commandId"])["state"] == "COMPLETED"

    def broken(_chunk: list[str]) -> int:
        raise OSError("search node gone")

    failed = wait_done(b, b.reindex(lambda: ["x"], lambda: None, broken, lambda: None)["commandId"])
    assert failed["state"] == "ABORTED" and failed["error"] and "search node gone" in failed["errorMessage"]
    # a missing document (deleted while the reindex ran) counts as an error, not a failure
    partial = wait_done(b, b.reindex(lambda: ["x", "y"], lambda: None, lambda c: len(c) - 1, lambda: None)["commandId"])
    assert partial["state"] == "COMPLETED" and partial["errorCount"] == 1
