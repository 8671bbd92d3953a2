"""The aggregator's processing loop: a partition's batch → PostgreSQL → Redis → Kafka commit.

Order and fences make every aggregate exactly once in effect: the batch is written to the
source of truth first (idempotently), its owed deltas are applied to each experiment's
aggregates together with that experiment's fence for the partition (atomic compare-and-set),
and only then is the Kafka offset committed. A crash anywhere replays the batch harmlessly.
"""

import logging
import threading
import time

import sqlalchemy as sa
from kafka.errors import KafkaError
from redis.exceptions import RedisError

from trace_insights.aggregator import metrics
from trace_insights.aggregator.decode import deliveries
from trace_insights.aggregator.deltas import Policy, build_updates
from trace_insights.aggregator.metrics import Liveness
from trace_insights.aggregator.source import Source
from trace_insights.aggregator.truth.writer import has_open_traces, owed, write_batch
from trace_insights.bus import Record
from trace_insights.stores.base import AggregateStore

log = logging.getLogger(__name__)

_CAS_ATTEMPTS = 5
_BACKOFF_S = 1.0


class Aggregator:
    def __init__(
        self,
        source: Source,
        engine: sa.Engine,
        store: AggregateStore,
        policy: Policy,
        idle_timeout_ms: int,
    ) -> None:
        self.source = source
        self.engine = engine
        self.store = store
        self.policy = policy
        self.idle_timeout_ms = idle_timeout_ms
        self.liveness = Liveness()
        self._last_record_ms: dict[int, int] = {}

    def run(self, stop: threading.Event, poll_timeout_ms: int = 500) -> None:
        next_tick = time.monotonic()
        while not stop.is_set():
            self.run_once(poll_timeout_ms, stop)
            self.liveness.beat()
            self.liveness.ready = True
            if time.monotonic() >= next_tick:
                self.tick_silent_partitions(int(time.time() * 1000))
                next_tick = time.monotonic() + self.idle_timeout_ms / 4000

    def tick_silent_partitions(self, now_ms: int) -> list[int]:
        """Send stream time to assigned partitions that have open traces but no record for an
        idle timeout; returns the partitions ticked."""
        ticked = []
        for partition in self.source.assigned():
            last = self._last_record_ms.setdefault(partition, now_ms)  # the clock starts now
            if now_ms - last < self.idle_timeout_ms:
                continue
            with self.engine.connect() as connection:
                if not has_open_traces(connection, partition):
                    continue
            try:
                self.source.tick(partition, now_ms)
            except KafkaError as exc:
                log.warning("tick failed", extra={"fields": {"error": str(exc)}})
                continue
            self._last_record_ms[partition] = now_ms
            ticked.append(partition)
        return ticked

    def run_once(self, poll_timeout_ms: int = 500, stop: threading.Event | None = None) -> int:
        """Poll once and process what came; returns the spans processed."""
        processed = 0
        for partition, records in self.source.poll(poll_timeout_ms).items():
            try:
                processed += self.process(partition, records)
            except Exception as exc:  # whatever it is, the loop must go on: retried, and told
                metrics.FAILED_BATCHES.inc()
                self.liveness.failed(f"partition {partition}: {exc.__class__.__name__}")
                log.error(
                    "batch failed, will retry",
                    extra={"fields": {"partition": partition, "error": str(exc)}},
                )
                self.source.rewind(partition, records[0].offset)
                (stop or threading.Event()).wait(_BACKOFF_S)
            else:
                self.liveness.applied()
        return processed

    def process(self, partition: int, records: list[Record]) -> int:
        started = time.perf_counter()
        start, end = records[0].offset, records[-1].offset
        batch, assessments = deliveries(records)
        self._last_record_ms[partition] = max(
            self._last_record_ms.get(partition, 0), records[-1].timestamp_ms
        )
        with self.engine.begin() as connection:
            clock = max(record.timestamp_ms for record in records)
            finalized = write_batch(
                connection, partition, batch, assessments, end, clock, self.idle_timeout_ms
            )
        with self.engine.connect() as connection:
            items = owed(connection, partition, start - 1, end, known=finalized)
        for _ in range(_CAS_ATTEMPTS):
            pending = [
                update
                for update in build_updates(items, partition, end, self.store, self.policy)
                if not self.store.apply(update)
            ]
            if not pending:
                break
            # another writer moved a fence (a rebalance, a rebuild): recompute against it
            metrics.FENCE_CONFLICTS.inc(len(pending))
            time.sleep(0.05)
        else:
            raise RedisError(f"fences of partition {partition} kept moving; retrying the batch")
        self.source.commit({partition: end + 1})
        metrics.SPANS.inc(len(batch))
        metrics.TRACES_FINALIZED.inc(len(finalized))
        metrics.LATE_SPANS.inc(len(items.late))
        metrics.WATERMARK.labels(str(partition)).set(records[-1].timestamp_ms)
        lag = self.source.lag(partition)
        if lag is not None:
            metrics.LAG.labels(str(partition)).set(lag)
            self.store.report_progress(partition, lag, int(time.time() * 1000))
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        return len(batch)
