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
from trace_insights.aggregator.refresh import DigestRefresher
from trace_insights.aggregator.repair import Repairer
from trace_insights.aggregator.source import Source
from trace_insights.aggregator.truth import dead_letters
from trace_insights.aggregator.truth.dead_letters import AGGREGATES, DECODE, TRUTH, Letter
from trace_insights.aggregator.truth.writer import Owed, has_open_traces, owed, write_batch
from trace_insights.bus import Record
from trace_insights.core.logs import Throttled
from trace_insights.outages import is_outage
from trace_insights.stores.base import AggregateStore, Incomplete, Update
from trace_insights.truth.price_overrides import CurrentPrices

log = logging.getLogger(__name__)
_throttled = Throttled(log)  # an outage would log a line a second

_CAS_ATTEMPTS = 5
_BACKOFF_S = 1.0
_REPLAY_EVERY_S = 5.0
_SCAN_EVERY_S = 5.0
_REFRESH_EVERY_S = 5.0
_REBUILD_WAIT_S = 2.0  # a new experiment's rebuild takes milliseconds: worth waiting for


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
        self.repairer = Repairer(engine, store, policy)
        self.refresher = DigestRefresher(engine, store, policy)
        self.prices = CurrentPrices()
        self._next_scan = time.monotonic()  # the first turn finds what the store lost
        self._last_record_ms: dict[int, int] = {}
        self._stage = TRUTH  # of the record being processed: where a failure happened

    def run(self, stop: threading.Event, poll_timeout_ms: int = 500) -> None:
        next_tick = next_replay = next_refresh = time.monotonic()
        while not stop.is_set():
            self.run_once(poll_timeout_ms, stop)
            self.liveness.beat()
            self.liveness.ready = True
            if time.monotonic() >= next_tick:
                self.tick_silent_partitions(int(time.time() * 1000))
                next_tick = time.monotonic() + self.idle_timeout_ms / 4000
            if time.monotonic() >= next_refresh:
                self.refresh_digests()
                next_refresh = time.monotonic() + _REFRESH_EVERY_S
            if time.monotonic() >= next_replay:
                try:
                    self.replay_due(int(time.time() * 1000))
                except Exception as exc:  # an outage: the letters stay marked, tried again
                    _throttled.log(logging.WARNING, "replay", "replay failed", {"error": str(exc)})
                next_replay = time.monotonic() + _REPLAY_EVERY_S
        self.repairer.close()

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
                _throttled.log(logging.WARNING, "tick", "tick failed", {"error": str(exc)})
                continue
            self._last_record_ms[partition] = now_ms
            ticked.append(partition)
        return ticked

    def run_once(self, poll_timeout_ms: int = 500, stop: threading.Event | None = None) -> int:
        """Poll once and process what came; returns the spans processed."""
        if time.monotonic() >= self._next_scan:
            try:
                self.repairer.scan()
            except Exception as exc:  # an outage: scanned again later
                _throttled.log(logging.WARNING, "scan", "repair scan failed", {"error": str(exc)})
            self._next_scan = time.monotonic() + _SCAN_EVERY_S
        processed = 0
        for partition, records in self.source.poll(poll_timeout_ms).items():
            try:
                processed += self.process(partition, records)
            except Incomplete as exc:
                self._await_rebuild(partition, records[0].offset, exc, stop)
            except Exception as exc:  # whatever it is, the loop goes on
                if is_outage(exc):
                    self._retry_later(partition, records[0].offset, exc, stop)
                    continue
                processed += self._isolate(partition, records, stop)
            else:
                self.liveness.applied()
        return processed

    def _retry_later(
        self, partition: int, offset: int, exc: Exception, stop: threading.Event | None
    ) -> None:
        metrics.FAILED_BATCHES.inc()
        self.liveness.failed(f"partition {partition}: {exc.__class__.__name__}")
        _throttled.log(
            logging.ERROR,
            f"batch:{type(exc).__name__}",
            "batch failed, will retry",
            {"partition": partition, "error": str(exc)},
        )
        self.source.rewind(partition, offset)
        (stop or threading.Event()).wait(_BACKOFF_S)

    def _await_rebuild(
        self, partition: int, offset: int, exc: Incomplete, stop: threading.Event | None
    ) -> None:
        """The batch's truth is written; its aggregates wait for the experiment's rebuild
        (under way), which replays it or leaves it to the retry, past the fences it writes."""
        self.liveness.failed(f"partition {partition}: waiting for a rebuild ({exc})")
        self.source.rewind(partition, offset)
        (stop or threading.Event()).wait(_BACKOFF_S)

    def _isolate(self, partition: int, records: list[Record], stop: threading.Event | None) -> int:
        """A batch failed for what it holds: apply its records one by one, and keep each one
        that fails alone (for its content) as a dead letter, so the partition goes on."""
        processed = 0
        for record in records:
            try:
                processed += self.process(partition, [record])
            except Incomplete as exc:
                self._await_rebuild(partition, record.offset, exc, stop)
                return processed
            except Exception as exc:
                if is_outage(exc):
                    self._retry_later(partition, record.offset, exc, stop)
                    return processed
                letter = Letter(partition, record.offset, self._stage, repr(exc), record.value)
                try:
                    with self.engine.begin() as connection:
                        dead_letters.keep(connection, [letter])
                except Exception as kept:
                    self._retry_later(partition, record.offset, kept, stop)
                    return processed
                self.source.commit({partition: record.offset + 1})
                self._counted_dead(letter)
        self.liveness.applied()
        return processed

    def _counted_dead(self, letter: Letter) -> None:
        metrics.DEAD_LETTERS.labels(letter.stage).inc()
        log.error(
            "record kept as a dead letter",
            extra={
                "fields": {
                    "partition": letter.partition,
                    "offset": letter.offset,
                    "stage": letter.stage,
                    "error": letter.error,
                }
            },
        )

    def refresh_digests(self) -> int:
        """Recompute the dirty digests of the partitions read here; returns how many."""
        try:
            return self.refresher.refresh(self.source.assigned())
        except Exception as exc:  # an outage: the marks stay, tried again
            _throttled.log(logging.WARNING, "refresh", "digest refresh failed", {"error": str(exc)})
            return 0

    def replay_due(self, now_ms: int) -> int:
        """Re-append the dead letters marked for replay of the partitions read here; returns
        how many. Each is read again as a new record (a duplicate delivery at worst)."""
        partitions = self.source.assigned()
        if not partitions:
            return 0
        with self.engine.connect() as connection:
            letters = dead_letters.due(connection, partitions)
        for letter in letters:
            self.source.append(letter.src_partition, letter.payload, now_ms)
        if letters:
            with self.engine.begin() as connection:
                dead_letters.replayed(connection, letters)
        return len(letters)

    def _apply(self, items: Owed, partition: int) -> list[Update]:
        """Apply what the batch owes; returns the updates whose fence had moved."""
        pending = []
        for update in build_updates(items, partition, self.store, self.policy):
            if not self.store.apply(update):
                pending.append(update)
            elif update.dirty:
                self.refresher.note([update.experiment_id])
        return pending

    def process(self, partition: int, records: list[Record]) -> int:
        started = time.perf_counter()
        start, end = records[0].offset, records[-1].offset
        self._stage = TRUTH
        decoded = deliveries(records)
        batch, assessments = decoded.spans, decoded.assessments
        undecodable = [
            Letter(partition, record.offset, DECODE, error, record.value)
            for record, error in decoded.undecodable
        ]
        self._last_record_ms[partition] = max(
            self._last_record_ms.get(partition, 0), records[-1].timestamp_ms
        )
        with self.engine.begin() as connection:
            self.prices.read(connection).price(delivery.span for delivery in batch)
            clock = max(record.timestamp_ms for record in records)
            finalized = write_batch(
                connection,
                partition,
                batch,
                assessments,
                decoded.tag_edits,
                end,
                clock,
                self.idle_timeout_ms,
            )
            dead_letters.keep(connection, undecodable)
        for letter in undecodable:
            self._counted_dead(letter)
        self._stage = AGGREGATES
        with self.engine.connect() as connection:
            items = owed(connection, partition, start - 1, end, known=finalized)
        for _ in range(_CAS_ATTEMPTS):
            try:
                pending = self._apply(items, partition)
            except Incomplete as exc:
                # a new experiment (or one the store lost): once rebuilt, the batch in hand
                # applies past the fences the rebuild wrote; else (a rebuild that takes
                # longer, or runs elsewhere) it is polled again later
                done = self.repairer.request(exc.experiment_id).wait(_REBUILD_WAIT_S)
                if not done or self.store.generations([exc.experiment_id])[0] is None:
                    raise
                continue
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
        metrics.LATE_SPANS.inc(items.late_spans)
        metrics.WATERMARK.labels(str(partition)).set(records[-1].timestamp_ms)
        lag = self.source.lag(partition)
        if lag is not None:
            metrics.LAG.labels(str(partition)).set(lag)
            self.store.report_progress(partition, lag, int(time.time() * 1000))
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        return len(batch)
