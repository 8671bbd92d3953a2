"""Where the aggregator reads spans from: the Kafka topic, or the embedded in-process bus
(``trace_insights.bus.LocalBus``, which has this contract too).

Contract: ``poll`` returns records per partition in offset order; ``commit`` records the next
offset to read (after the batch was applied), and a failed commit is not fatal (fences make a
replay harmless); ``rewind`` makes the next poll of a partition start at ``offset`` again.
"""

import logging
import time
from typing import Protocol

from kafka import (
    ConsumerRebalanceListener,
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    TopicPartition,
)
from kafka.admin import MemberToRemove
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from trace_insights.bus import Record

log = logging.getLogger(__name__)


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

    def append(self, partition: int, value: bytes, timestamp_ms: int) -> object:
        """Append a record to a partition, durably (a replayed dead letter)."""
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
        instance_id: str | None,
        session_timeout_ms: int,
    ) -> None:
        self._topic = topic
        self._group = group
        self._instance_id = instance_id
        self._servers = servers.split(",")
        self._ticker: KafkaProducer | None = None
        self._consumer = KafkaConsumer(
            bootstrap_servers=servers.split(","),
            group_id=group,
            group_instance_id=instance_id,
            session_timeout_ms=session_timeout_ms,
            # the group hears of a rebalance at a member's next heartbeat
            heartbeat_interval_ms=max(100, session_timeout_ms // 10),
            client_id="trace-insights-aggregator",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=max_poll_records,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        self._await_partitions()
        self._consumer.subscribe([topic], listener=_LogRebalance())

    def _await_partitions(self, timeout_s: float = 60.0) -> None:
        """Join the group only once the topic's partitions are known here. The group's leader
        assigns from the metadata it holds: one that joins first assigns nothing, and would
        rejoin when its metadata catches up — but if it dies before that, the empty assignment
        stays stored, and a static member restarted under its instance id rejoins as a
        follower and is handed it again, for good (its partitions are never read)."""
        deadline = time.monotonic() + timeout_s
        while not self._consumer.partitions_for_topic(self._topic):
            if time.monotonic() > deadline:
                raise KafkaError(f"topic {self._topic!r} shows no partitions after {timeout_s} s")
            time.sleep(0.2)

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
        self.append(partition, b"", timestamp_ms)

    def append(self, partition: int, value: bytes, timestamp_ms: int) -> None:
        if self._ticker is None:
            self._ticker = KafkaProducer(
                bootstrap_servers=self._servers, acks="all", max_request_size=8 * 1024 * 1024
            )
        self._ticker.send(
            self._topic, value=value, partition=partition, timestamp_ms=timestamp_ms
        ).get(timeout=10)

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.close()
        self._consumer.close()
        if self._instance_id is not None:
            self._leave(self._instance_id)

    def _leave(self, instance_id: str) -> None:
        """A static member sends no LeaveGroup when it closes (KIP-345): its partitions would
        wait out the session timeout for a restart under the same id. A clean stop is not a
        crash to wait for, so the member is removed now and the others take its partitions."""
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self._servers,
                request_timeout_ms=5000,
                client_id="trace-insights-aggregator",
            )
        except KafkaError as exc:
            log.warning("could not leave the consumer group", extra={"fields": {"error": str(exc)}})
            return
        try:
            member = MemberToRemove(group_instance_id=instance_id, reason="aggregator stopped")
            [result] = admin.remove_group_members(self._group, [member]).values()
            # UnknownMemberIdError: the session had expired already, or a restart took the id
            log.info("left the consumer group", extra={"fields": {"result": result.__name__}})
        except KafkaError as exc:
            log.warning("could not leave the consumer group", extra={"fields": {"error": str(exc)}})
        finally:
            admin.close()


class _LogRebalance(ConsumerRebalanceListener):
    def on_partitions_revoked(self, revoked):
        log.info(
            "partitions revoked",
            extra={"fields": {"partitions": sorted(p.partition for p in revoked)}},
        )

    def on_partitions_assigned(self, assigned):
        log.info(
            "partitions assigned",
            extra={"fields": {"partitions": sorted(p.partition for p in assigned)}},
        )
