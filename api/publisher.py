"""Where the API sends what it changes of a trace (assessments, tag edits): the span topic, in
the partition of the trace so they are ordered with its spans, or the embedded bus."""

import logging
import threading
import time

from kafka import KafkaProducer
from kafka.errors import KafkaError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from trace_insights.bus import LocalBus
from trace_insights.core.routing import partition_for
from trace_insights.core.settings import Settings
from trace_insights.kafka_topic import ensure_topic

log = logging.getLogger(__name__)


class Unavailable(Exception):
    """The change could not be made durable now; the client should retry."""


class KafkaPublisher:
    """Connects (creating the topic if missing) in the background, so readiness probes and
    requests never wait on an unreachable broker."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: KafkaProducer | None = None
        self._partitions = 0
        self._closed = threading.Event()
        threading.Thread(target=self._connect, name="kafka-connect", daemon=True).start()

    def publish(self, trace_id: str, request: ExportTraceServiceRequest) -> None:
        producer, partitions = self._producer, self._partitions
        if producer is None:
            raise Unavailable("Kafka is not connected yet")
        key = bytes.fromhex(trace_id)
        try:
            producer.send(
                self._settings.spans_topic,
                value=request.SerializeToString(),
                key=key,
                partition=partition_for(key, partitions),
            ).get(timeout=self._settings.produce_timeout_s)
        except KafkaError as exc:
            raise Unavailable(f"Kafka did not take the change: {exc}") from exc

    def ready(self) -> bool:
        return self._producer is not None

    def close(self) -> None:
        self._closed.set()
        if self._producer is not None:
            self._producer.close(timeout=10)

    def _connect(self) -> None:
        settings = self._settings
        servers = settings.require_kafka().split(",")
        while not self._closed.is_set():
            try:
                ensure_topic(
                    servers,
                    settings.spans_topic,
                    settings.topic_partitions,
                    settings.topic_replication_factor,
                )
                producer = KafkaProducer(
                    bootstrap_servers=servers,
                    acks="all",
                    enable_idempotence=True,
                    max_block_ms=int(settings.produce_timeout_s * 1000),
                    client_id="trace-insights-api",
                )
                partitions = producer.partitions_for(settings.spans_topic)
            except (KafkaError, OSError) as exc:
                log.warning("kafka not reachable, retrying", extra={"fields": {"error": str(exc)}})
                self._closed.wait(1.0)
                continue
            self._partitions = len(partitions)
            self._producer = producer
            return


class BusPublisher:
    def __init__(self, bus: LocalBus) -> None:
        self._bus = bus

    def publish(self, trace_id: str, request: ExportTraceServiceRequest) -> None:
        key = bytes.fromhex(trace_id)
        payload = request.SerializeToString()
        self._bus.append(partition_for(key, self._bus.partitions), payload, int(time.time() * 1000))

    def ready(self) -> bool:
        return True

    def close(self) -> None:
        pass
