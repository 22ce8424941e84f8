"""Reindexing the repository through the management API, as a bulk command with a status (the `index` bulk
action): `POST /api/v1/management/search/reindex` (LTS 2025; `/management/elasticsearch/reindex` before), then
`GET /api/v1/management/bulk/<commandId>` until COMPLETED. Without a query the repository index is dropped and
created again with its settings and mappings, then every document is indexed from the repository. The audit index
is not touched: it is primary storage, not rebuilt from the repository.

Nuxeo keeps bulk statuses in its key/value store, seen from every node. The stand-in keeps them on the node that
took the command: ask that node for the status. It reindexes the whole repository only (a query is refused), and
one reindex at a time (409, as Nuxeo)."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

log = logging.getLogger("nuxeo.bulk")
CHUNK = 200


class ReindexRunning(Exception):
    pass


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Bulk:
    """Bulk commands of this node: their statuses, and the one reindex that may run at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.commands: dict[str, dict[str, Any]] = {}
        self.running: str | None = None

    def status(self, command_id: str) -> dict[str, Any] | None:
        with self.lock:
            s = self.commands.get(command_id)
            return dict(s) if s else None

    def reindex(self, ids: Callable[[], list[str]], recreate: Callable[[], None],
                index_chunk: Callable[[list[str]], int], finish: Callable[[], None]) -> dict[str, Any]:
        """Schedule a whole-repository reindex and return its status; ReindexRunning when one runs already."""
        with self.lock:
            if self.running:
                raise ReindexRunning(self.running)
            command_id = str(uuid.uuid4())
            status: dict[str, Any] = {
                "entity-type": "bulkStatus", "commandId": command_id, "state": "SCHEDULED", "processed": 0,
                "error": False, "errorCount": 0, "total": 0, "action": "index", "username": "system",
                "submitted": _now(), "scrollStart": None, "scrollEnd": None, "processingStart": None,
                "processingEnd": None, "completed": None, "processingMillis": 0,
            }
            self.commands[command_id] = status
            self.running = command_id
            scheduled = dict(status)
        threading.Thread(target=self._run, args=(command_id, ids, recreate, index_chunk, finish),
                         name=f"bulk-{command_id[:8]}", daemon=True).start()
        return scheduled

    def _update(self, command_id: str, **changes: Any) -> None:
        with self.lock:
            self.commands[command_id].update(changes)

    def _run(self, command_id: str, ids: Callable[[], list[str]], recreate: Callable[[], None],
             index_chunk: Callable[[list[str]], int], finish: Callable[[], None]) -> None:
        started = time.monotonic()
        try:
            self._update(command_id, state="SCROLLING_RUNNING", scrollStart=_now())
            todo = ids()
            self._update(command_id, state="RUNNING", total=len(todo), scrollEnd=_now(), processingStart=_now())
            log.info("reindex %s: %d documents, index dropped and created again", command_id, len(todo))
            recreate()
            done = errors = 0
            for i in range(0, len(todo), CHUNK):
                chunk = todo[i : i + CHUNK]
                indexed = index_chunk(chunk)
                done += len(chunk)
                errors += len(chunk) - indexed
                self._update(command_id, processed=done, errorCount=errors, error=errors > 0)
            finish()
            end = _now()
            self._update(command_id, state="COMPLETED", processingEnd=end, completed=end,
                         processingMillis=int((time.monotonic() - started) * 1000))
            log.info("reindex %s completed: %d documents, %d errors", command_id, done, errors)
        except Exception as e:  # the status says it; the node keeps serving
            log.exception("reindex %s failed", command_id)
            self._update(command_id, state="ABORTED", error=True, errorMessage=f"{type(e).__name__}: {e}",
                         completed=_now())
        finally:
            with self.lock:
                self.running = None
