"""A steady load through the load balancer with the official Nuxeo Python client.

Several threads, each with its own client (its own HTTP session, so its own sticky node), write documents
with blobs and read earlier ones back. Client-side retries are off: every failed request counts. Every
acknowledged write is recorded so that the end of a test can check that each one is still readable.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Ack:
    uid: str
    title: str
    content: bytes


@dataclass
class LoadStats:
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    failure_times: list[float] = field(default_factory=list)  # time.time() of each failure
    acked: list[Ack] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, what: str) -> None:
        with self.lock:
            self.failures.append(f"{time.strftime('%H:%M:%S')} {what}")
            self.failure_times.append(time.time())


class SteadyLoad:
    def __init__(
        self,
        make_client: Any,
        threads: int = 4,
        pause_s: float = 0.05,
        max_seconds: float = 1800,
        failure_pause_s: float = 1.0,
    ) -> None:
        self.make_client = make_client
        self.threads = threads
        self.pause_s = pause_s
        # After a failed request a thread waits, as a user or a client with back-off does: without it a thread
        # spins on instantly refused connections and counts hundreds of "failures" for one outage second.
        self.failure_pause_s = failure_pause_s
        self.max_seconds = max_seconds  # the load stops by itself whatever happens to the test
        self.stats = LoadStats()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._tmp = Path(tempfile.mkdtemp(prefix="nxload-"))

    def __enter__(self) -> SteadyLoad:
        for i in range(self.threads):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(timeout=60)

    def _run(self, index: int) -> None:
        from nuxeo.models import Document, FileBlob

        nx = self.make_client()
        nx.client.disable_retry()
        deadline = time.monotonic() + self.max_seconds
        n = 0
        while not self._stop.is_set() and time.monotonic() < deadline:
            n += 1
            title = f"load-{index}-{n}-{uuid.uuid4().hex[:6]}"
            content = f"{title} {random.random()}\n".encode()
            path = self._tmp / f"{title}.txt"
            path.write_bytes(content)
            try:
                batch = nx.uploads.batch()
                blob = batch.upload(FileBlob(str(path), mimetype="text/plain"))
                doc = nx.documents.create(
                    Document(name=title, type="File", properties={"dc:title": title, "file:content": blob}),
                    parent_path="/default-domain/workspaces",
                )
                with self.stats.lock:
                    self.stats.requests += 3
                    self.stats.acked.append(Ack(doc.uid, title, content))
            except Exception as exc:  # every failure is recorded, none is retried
                self.stats.fail(f"write {title}: {type(exc).__name__}: {str(exc)[:200]}")
                self._stop.wait(self.failure_pause_s)
                continue
            finally:
                path.unlink(missing_ok=True)
            with self.stats.lock:
                earlier = random.choice(self.stats.acked) if self.stats.acked else None
            if earlier is not None:
                try:
                    data = nx.documents.fetch_blob(uid=earlier.uid)
                    with self.stats.lock:
                        self.stats.requests += 1
                    if data != earlier.content:
                        self.stats.fail(f"read {earlier.title}: content differs")
                except Exception as exc:  # recorded like write failures
                    self.stats.fail(f"read {earlier.title}: {type(exc).__name__}: {str(exc)[:200]}")
                    self._stop.wait(self.failure_pause_s)
            time.sleep(self.pause_s)


def unreadable_acks(make_client: Any, acked: list[Ack]) -> list[str]:
    nx = make_client()
    missing = []
    for a in acked:
        try:
            if nx.documents.fetch_blob(uid=a.uid) != a.content:
                missing.append(f"{a.title}: content differs")
        except Exception as exc:  # reported, not raised: the test lists every lost write
            missing.append(f"{a.title}: {type(exc).__name__}")
    return missing


def report_figures(name: str, figures: dict[str, Any]) -> None:
    """A failure scenario's figures: in the test output, and appended to NXPROVISION_HA_REPORT when set."""
    print(f"\n{name}: " + json.dumps(figures, indent=1))
    out = os.environ.get("NXPROVISION_HA_REPORT")
    if out:
        with open(out, "a") as fh:
            fh.write(json.dumps({"scenario": name, **figures}) + "\n")
