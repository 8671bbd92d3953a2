"""Durable publication of span batches to Kafka, with explicit backpressure.

Contract: ``publish`` returns only after Kafka acknowledged every batch (acks=all, idempotent
producer). It raises ``Unavailable`` when Kafka is unreachable, slow past the produce timeout,
or the in-flight budget is spent; the caller answers 503/UNAVAILABLE so the sender retries.
A batch whose acknowledgement timed out may still land later; the aggregator deduplicates.

A circuit makes an outage fast to tell: it opens when a publish fails, or when a probe (every
half second) reaches no broker, and while it is open a publish is refused at once instead of
waiting out the produce timeout — well inside an OTel SDK's 10 s export timeout, so the SDK
retries. After ``retry_after_s`` one publish is let through to try; its success closes it.
"""

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Sequence
from typing import Protocol

from kafka import KafkaProducer
from kafka.errors import KafkaError

from trace_insights.bus import LocalBus
from trace_insights.collector import metrics
from trace_insights.collector.regroup import Batch
from trace_insights.core.settings import Settings
from trace_insights.kafka_topic import ensure_topic

log = logging.getLogger(__name__)

_CONNECT_RETRY_S = 1.0
_PROBE_EVERY_S = 0.5


class Unavailable(Exception):
    """Kafka cannot take the data now; retry after ``retry_after_s`` seconds. ``outage``:
    Kafka failed (not this collector's own budget)."""

    def __init__(self, reason: str, retry_after_s: int, outage: bool = True) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s
        self.outage = outage


class SpanProducer(Protocol):
    @property
    def partitions(self) -> int:
        """Partition count of the topic; 0 until connected."""
        ...

    async def publish(self, batches: Sequence[Batch]) -> None: ...

    async def ready(self) -> bool: ...

    def close(self) -> None: ...


class BusSpanProducer:
    """The embedded mode's producer: appending to the in-process bus is the acknowledgement."""

    def __init__(self, bus: LocalBus) -> None:
        self._bus = bus

    @property
    def partitions(self) -> int:
        return self._bus.partitions

    async def publish(self, batches: Sequence[Batch]) -> None:
        now = int(time.time() * 1000)
        for batch in batches:
            self._bus.append(batch.partition, batch.payload, now)

    async def ready(self) -> bool:
        return True

    def close(self) -> None:
        pass


class KafkaSpanProducer:
    """Owns the Kafka producer; connects (and creates the topic) in the background."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._servers = settings.require_kafka().split(",")
        self._producer: KafkaProducer | None = None
        self._partitions = 0
        self._in_flight_bytes = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._connector = threading.Thread(target=self._connect, name="kafka-connect", daemon=True)
        self._prober = threading.Thread(target=self._probe, name="kafka-probe", daemon=True)
        self._open_until = 0.0  # the circuit: publishes are refused until then (monotonic)
        self._why = ""

    @property
    def partitions(self) -> int:
        """Partition count of the topic; 0 until connected."""
        return self._partitions

    def start(self) -> None:
        self._connector.start()
        self._prober.start()

    def wait_connected(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self._partitions and time.monotonic() < deadline:
            time.sleep(0.05)
        return bool(self._partitions)

    async def ready(self) -> bool:
        """Connected, and the circuit is closed (a broker answered the last probe)."""
        return bool(self._partitions) and time.monotonic() >= self._open_until

    async def publish(self, batches: Sequence[Batch]) -> None:
        producer = self._producer
        if producer is None or not self._partitions:
            raise Unavailable("Kafka is not connected yet", self._settings.retry_after_s)
        now = time.monotonic()
        if now < self._open_until:
            raise Unavailable(f"Kafka is unavailable ({self._why})", self._settings.retry_after_s)
        try:
            await self._publish(producer, batches)
        except Unavailable as exc:
            if exc.outage:
                self._open(str(exc), self._settings.retry_after_s)
            raise

    def _open(self, why: str, for_s: float) -> None:
        """Refuse publishes for ``for_s``; then one may try again."""
        if time.monotonic() >= self._open_until:
            metrics.CIRCUIT_OPENED.inc()
        self._why = why
        self._open_until = max(self._open_until, time.monotonic() + for_s)

    def _probe(self) -> None:
        """Keep the circuit open while no broker accepts a TCP connection (longer than the
        next probe can take, so it does not close in between)."""
        hold_s = max(self._settings.retry_after_s, 3 * _PROBE_EVERY_S)
        while not self._closed.wait(_PROBE_EVERY_S):
            if self._partitions and not _any_reachable(self._servers, _PROBE_EVERY_S):
                self._open("no broker reachable", hold_s)

    async def _publish(self, producer: KafkaProducer, batches: Sequence[Batch]) -> None:
        size = sum(len(batch.payload) for batch in batches)
        with self._lock:
            if self._in_flight_bytes + size > self._settings.producer_buffer_bytes:
                raise Unavailable("producer buffer is full", self._settings.retry_after_s, False)
            self._in_flight_bytes += size
            metrics.BUFFER_BYTES.set(self._in_flight_bytes)
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        waiters = []
        try:
            for batch in batches:
                future = producer.send(
                    self._settings.spans_topic,
                    value=batch.payload,
                    key=batch.key,
                    partition=batch.partition,
                )
                waiters.append(self._bridge(loop, future, len(batch.payload)))
        except KafkaError as exc:
            self._release(size - sum(w.size for w in waiters))
            for waiter in waiters:
                waiter.cancel()
            raise Unavailable(
                f"Kafka refused the batch: {exc}", self._settings.retry_after_s
            ) from exc
        try:
            await asyncio.wait_for(
                asyncio.gather(*waiters), timeout=self._settings.produce_timeout_s
            )
        except TimeoutError:
            raise Unavailable(
                f"Kafka did not acknowledge within {self._settings.produce_timeout_s:g} s",
                self._settings.retry_after_s,
            ) from None
        except KafkaError as exc:
            raise Unavailable(
                f"Kafka rejected the batch: {exc}", self._settings.retry_after_s
            ) from exc
        finally:
            metrics.PRODUCE_SECONDS.observe(time.perf_counter() - started)

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush what was accepted, then stop."""
        self._closed.set()
        if self._producer is not None:
            self._producer.flush(timeout=timeout_s)
            self._producer.close(timeout=timeout_s)

    def _bridge(self, loop: asyncio.AbstractEventLoop, future, size: int) -> "_Ack":
        """Turn kafka-python's thread-side future into an awaitable on ``loop``."""
        ack = _Ack(loop, size)

        def done(outcome: object) -> None:
            self._release(size)
            loop.call_soon_threadsafe(ack.settle, outcome)

        future.add_callback(lambda _metadata: done(None))
        future.add_errback(done)
        return ack

    def _release(self, size: int) -> None:
        with self._lock:
            self._in_flight_bytes -= size
            metrics.BUFFER_BYTES.set(self._in_flight_bytes)

    def _connect(self) -> None:
        while not self._closed.is_set():
            try:
                ensure_topic(
                    self._servers,
                    self._settings.spans_topic,
                    self._settings.topic_partitions,
                    self._settings.topic_replication_factor,
                )
                producer = KafkaProducer(
                    bootstrap_servers=self._servers,
                    acks="all",
                    enable_idempotence=True,
                    compression_type=None
                    if self._settings.kafka_compression == "none"
                    else self._settings.kafka_compression,
                    linger_ms=1,
                    batch_size=1024 * 1024,
                    max_request_size=self._settings.max_message_bytes + 64 * 1024,
                    max_block_ms=self._settings.produce_timeout_s * 1000,
                    delivery_timeout_ms=120_000,
                    client_id="trace-insights-collector",
                )
                partitions = producer.partitions_for(self._settings.spans_topic)
            except (KafkaError, OSError) as exc:
                log.warning("kafka not reachable, retrying", extra={"fields": {"error": str(exc)}})
                self._closed.wait(_CONNECT_RETRY_S)
                continue
            self._producer = producer
            self._partitions = len(partitions)
            log.info("kafka connected", extra={"fields": {"partitions": self._partitions}})
            return


class _Ack(asyncio.Future):
    """An acknowledgement awaited on the event loop; ``size`` is its share of the budget."""

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        super().__init__(loop=loop)
        self.size = size

    def settle(self, error: object) -> None:
        if self.done():
            return
        if error is None:
            self.set_result(None)
        else:
            self.set_exception(
                error if isinstance(error, BaseException) else KafkaError(str(error))
            )


def _any_reachable(servers: list[str], timeout_s: float) -> bool:
    for server in servers:
        host, _, port = server.strip().rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=timeout_s).close()
        except (OSError, ValueError):
            continue
        return True
    return False
