"""Where the API sends assessments: the span topic (in the partition of their trace, so they
are ordered with its spans), or the embedded bus."""

import threading
import time

from kafka import KafkaProducer
from kafka.errors import KafkaError

from trace_insights.bus import LocalBus
from trace_insights.core.assessments import Assessment, encode
from trace_insights.core.routing import partition_for
from trace_insights.core.settings import Settings


class Unavailable(Exception):
    """The assessment could not be made durable now; the client should retry."""


class KafkaPublisher:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: KafkaProducer | None = None
        self._partitions = 0
        self._lock = threading.Lock()

    def publish(self, assessment: Assessment) -> None:
        producer, partitions = self._connected()
        payload = encode(assessment).SerializeToString()
        key = bytes.fromhex(assessment.trace_id)
        try:
            producer.send(
                self._settings.spans_topic,
                value=payload,
                key=key,
                partition=partition_for(key, partitions),
            ).get(timeout=self._settings.produce_timeout_s)
        except KafkaError as exc:
            raise Unavailable(f"Kafka did not take the assessment: {exc}") from exc

    def ready(self) -> bool:
        try:
            self._connected()
        except Unavailable:
            return False
        return True

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=10)

    def _connected(self) -> tuple[KafkaProducer, int]:
        with self._lock:
            if self._producer is None:
                try:
                    producer = KafkaProducer(
                        bootstrap_servers=self._settings.require_kafka().split(","),
                        acks="all",
                        enable_idempotence=True,
                        max_block_ms=int(self._settings.produce_timeout_s * 1000),
                        client_id="trace-insights-api",
                    )
                    partitions = producer.partitions_for(self._settings.spans_topic)
                except KafkaError as exc:
                    raise Unavailable(f"Kafka is not reachable: {exc}") from exc
                if not partitions:
                    producer.close(timeout=1)
                    raise Unavailable(f"topic {self._settings.spans_topic} does not exist yet")
                self._producer, self._partitions = producer, len(partitions)
            return self._producer, self._partitions


class BusPublisher:
    def __init__(self, bus: LocalBus) -> None:
        self._bus = bus

    def publish(self, assessment: Assessment) -> None:
        key = bytes.fromhex(assessment.trace_id)
        payload = encode(assessment).SerializeToString()
        self._bus.append(partition_for(key, self._bus.partitions), payload, int(time.time() * 1000))

    def ready(self) -> bool:
        return True

    def close(self) -> None:
        pass
