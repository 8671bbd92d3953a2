"""Where the aggregator reads spans from: the Kafka topic, or the embedded in-process bus.

Contract: ``poll`` returns records per partition in offset order; ``commit`` records the next
offset to read (after the batch was applied), and a failed commit is not fatal (fences make a
replay harmless); ``rewind`` makes the next poll of a partition start at ``offset`` again.
"""

import logging
import threading
from dataclasses import dataclass
from typing import Protocol

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Record:
    offset: int
    timestamp_ms: int
    value: bytes


class Source(Protocol):
    def poll(self, timeout_ms: int) -> dict[int, list[Record]]: ...

    def commit(self, offsets: dict[int, int]) -> None: ...

    def rewind(self, partition: int, offset: int) -> None: ...

    def lag(self, partition: int) -> int | None:
        """Records between the read position and the partition's end, if known."""
        ...

    def assigned(self) -> list[int]:
        """The partitions this member reads now."""
        ...

    def tick(self, partition: int, timestamp_ms: int) -> None:
        """Append an empty record to a partition: it carries stream time to a silent partition,
        so idle traces there finalize (owned by the tick's offset, exactly once like spans)."""
        ...

    def close(self) -> None: ...


class KafkaSource:
    """A member of the aggregators' consumer group; partitions are split among members."""

    def __init__(
        self,
        servers: str,
        topic: str,
        group: str,
        max_poll_records: int,
        instance_id: str | None = None,
        session_timeout_ms: int = 45_000,
    ) -> None:
        self._topic = topic
        self._servers = servers.split(",")
        self._ticker: KafkaProducer | None = None
        self._consumer = KafkaConsumer(
            bootstrap_servers=servers.split(","),
            group_id=group,
            group_instance_id=instance_id,
            session_timeout_ms=session_timeout_ms,
            client_id="trace-insights-aggregator",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=max_poll_records,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        self._consumer.subscribe([topic], listener=_LogRebalance())

    def poll(self, timeout_ms: int) -> dict[int, list[Record]]:
        batches = self._consumer.poll(timeout_ms=timeout_ms)
        return {
            tp.partition: [Record(r.offset, r.timestamp, r.value) for r in records]
            for tp, records in batches.items()
            if records
        }

    def commit(self, offsets: dict[int, int]) -> None:
        try:
            self._consumer.commit(
                {
                    TopicPartition(self._topic, partition): OffsetAndMetadata(offset, "", -1)
                    for partition, offset in offsets.items()
                }
            )
        except KafkaError as exc:
            # typically a rebalance: the new owner resumes from the last commit and its fence
            log.warning("offset commit failed", extra={"fields": {"error": str(exc)}})

    def rewind(self, partition: int, offset: int) -> None:
        tp = TopicPartition(self._topic, partition)
        if tp in self._consumer.assignment():
            self._consumer.seek(tp, offset)

    def lag(self, partition: int) -> int | None:
        tp = TopicPartition(self._topic, partition)
        highwater = self._consumer.highwater(tp)
        if highwater is None or tp not in self._consumer.assignment():
            return None
        return max(0, highwater - self._consumer.position(tp))

    def assigned(self) -> list[int]:
        return sorted(tp.partition for tp in self._consumer.assignment())

    def tick(self, partition: int, timestamp_ms: int) -> None:
        if self._ticker is None:
            self._ticker = KafkaProducer(bootstrap_servers=self._servers, acks="all")
        self._ticker.send(
            self._topic, value=b"", partition=partition, timestamp_ms=timestamp_ms
        ).get(timeout=10)

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.close()
        self._consumer.close()


class _LogRebalance(ConsumerRebalanceListener):
    def on_partitions_revoked(self, revoked):  # type: ignore[no-untyped-def]
        log.info(
            "partitions revoked",
            extra={"fields": {"partitions": sorted(p.partition for p in revoked)}},
        )

    def on_partitions_assigned(self, assigned):  # type: ignore[no-untyped-def]
        log.info(
            "partitions assigned",
            extra={"fields": {"partitions": sorted(p.partition for p in assigned)}},
        )


class LocalBus:
    """The embedded mode's in-process partitioned log, with one consumer's committed offsets."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._logs: list[list[Record]] = [[] for _ in range(partitions)]
        self._positions = [0] * partitions
        self._committed = [0] * partitions
        self._changed = threading.Condition()

    def append(self, partition: int, value: bytes, timestamp_ms: int) -> int:
        with self._changed:
            log_ = self._logs[partition]
            log_.append(Record(len(log_), timestamp_ms, value))
            self._changed.notify_all()
            return len(log_) - 1

    def poll(self, timeout_ms: int, max_records: int = 5000) -> dict[int, list[Record]]:
        with self._changed:
            if not self._pending():
                self._changed.wait(timeout_ms / 1000)
            out = {}
            for partition, log_ in enumerate(self._logs):
                position = self._positions[partition]
                if position < len(log_):
                    out[partition] = log_[position : position + max_records]
                    self._positions[partition] = position + len(out[partition])
            return out

    def commit(self, offsets: dict[int, int]) -> None:
        with self._changed:
            for partition, offset in offsets.items():
                self._committed[partition] = offset

    def rewind(self, partition: int, offset: int) -> None:
        with self._changed:
            self._positions[partition] = offset

    def lag(self, partition: int) -> int | None:
        with self._changed:
            return len(self._logs[partition]) - self._positions[partition]

    def assigned(self) -> list[int]:
        return list(range(self.partitions))

    def tick(self, partition: int, timestamp_ms: int) -> None:
        self.append(partition, b"", timestamp_ms)

    def restart(self) -> None:
        """As after a crash: the next poll resumes from the committed offsets."""
        with self._changed:
            self._positions = list(self._committed)

    def close(self) -> None:
        pass

    def _pending(self) -> bool:
        return any(p < len(log_) for p, log_ in zip(self._positions, self._logs, strict=True))
