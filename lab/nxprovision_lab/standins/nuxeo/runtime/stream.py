"""Nuxeo Stream WorkManager on Kafka, reduced to the `common` work queue: producers append work
records to `${kafka.topicPrefix}work-common`; nodes with work processing enabled consume it in ONE
consumer group, so each work runs once, on one of them."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("nuxeo.stream")


class WorkStream:
    def __init__(
        self, bootstrap: str, prefix: str, partitions: int, replication: int, client_cfg: dict[str, Any]
    ):
        self.bootstrap = [b.strip() for b in bootstrap.split(",") if b.strip()]
        self.topic = f"{prefix}work-common"
        self.group = f"{prefix}work-common"
        self.partitions = max(1, partitions)
        self.replication = replication
        self.client_cfg = client_cfg
        self._producer: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._consumer_thread: threading.Thread | None = None

    def ensure_topic(self) -> None:
        from kafka.admin import KafkaAdminClient, NewTopic
        from kafka.errors import TopicAlreadyExistsError

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="nuxeo-admin", **self.client_cfg)
        try:
            if self.topic in admin.list_topics():
                return
            # replication < 1 means "broker default", as kafka.default.replication.factor=-1 does in Nuxeo
            rf = self.replication if self.replication > 0 else 1
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(
                    [NewTopic(self.topic, num_partitions=self.partitions, replication_factor=rf)]
                )
        finally:
            admin.close()

    def check(self, timeout_s: float = 5.0) -> None:
        """A real metadata round trip to the brokers (the streamStatus probe)."""
        from kafka.admin import KafkaAdminClient

        admin = KafkaAdminClient(
            bootstrap_servers=self.bootstrap,
            client_id="nuxeo-health",
            request_timeout_ms=int(timeout_s * 1000),
            **self.client_cfg,
        )
        try:
            if self.topic not in admin.list_topics():
                raise RuntimeError(f"topic {self.topic} missing")
        finally:
            admin.close()

    def lag(self) -> tuple[int, int, int]:
        """(pos, end, lag) of the work consumer group on the work stream, summed over its partitions: Nuxeo's
        nuxeo.streams.global.stream.group.{pos,end,lag} (a partition the group never committed counts from 0)."""
        from kafka import KafkaConsumer, TopicPartition
        from kafka.admin import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="nuxeo-metrics", **self.client_cfg)
        try:
            committed = admin.list_consumer_group_offsets(self.group)
        finally:
            admin.close()
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, client_id="nuxeo-metrics", **self.client_cfg)
        try:
            parts = [TopicPartition(self.topic, p) for p in sorted(consumer.partitions_for_topic(self.topic) or ())]
            ends = consumer.end_offsets(parts) if parts else {}
        finally:
            consumer.close()
        pos = end = lag = 0
        for tp in parts:
            meta = committed.get(tp)
            p_pos = max(0, meta.offset) if meta is not None else 0
            p_end = int(ends.get(tp, 0))
            pos, end, lag = pos + p_pos, end + p_end, lag + max(0, p_end - p_pos)
        return pos, end, lag

    def produce(self, work: dict[str, Any]) -> None:
        from kafka import KafkaProducer

        with self._lock:
            if self._producer is None:
                self._producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks=1, **self.client_cfg)
            producer = self._producer
        key = str(work.get("docId", "")).encode()
        producer.send(self.topic, key=key, value=json.dumps(work).encode()).get(timeout=30)

    def start_consumer(
        self, node_id: str, handler: Callable[[dict[str, Any]], None], poll_cfg: dict[str, Any]
    ) -> None:
        def run() -> None:
            from kafka import KafkaConsumer

            consumer = KafkaConsumer(
                self.topic,
                bootstrap_servers=self.bootstrap,
                group_id=self.group,
                client_id=f"nuxeo-{node_id}",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                **poll_cfg,
                **self.client_cfg,
            )
            log.info("work consumer %s joined group %s on %s", node_id, self.group, self.topic)
            try:
                while not self._stop.is_set():
                    batches = consumer.poll(timeout_ms=500)
                    for records in batches.values():
                        for rec in records:
                            try:
                                handler(json.loads(rec.value))
                            except Exception:
                                log.exception("work failed: %r", rec.value[:200])
                    if batches:
                        consumer.commit()
            finally:
                consumer.close()  # leave the group so the others take its partitions at once
                log.info("work consumer %s left group %s", node_id, self.group)

        self._consumer_thread = threading.Thread(target=run, name="work-consumer", daemon=True)
        self._consumer_thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._consumer_thread:
            self._consumer_thread.join(timeout=10)
        if self._producer is not None:
            self._producer.close(timeout=5)
