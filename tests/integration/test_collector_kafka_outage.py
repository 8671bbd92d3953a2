"""Kafka goes away mid-stream: the collector answers 503/UNAVAILABLE, the SDK exporters retry,
and once Kafka is back every span sent is in the topic."""

import threading
import time

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support import read_topic, spans_of
from trace_insights.generate import Traffic, exporter_for

pytestmark = pytest.mark.integration


@pytest.fixture
def own_broker(service_root):
    """A broker of this test's own, so stopping it disturbs no other test."""
    import services

    broker = services.Kafka(service_root / "outage-kafka")
    broker.start()
    yield broker
    broker.stop()


def _sender(
    protocol: str,
    endpoint: str,
    memory: InMemorySpanExporter,
    stop_after: int,
    restored: threading.Event,
) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(
        BatchSpanProcessor(
            exporter_for(endpoint, protocol, {"x-mlflow-experiment-id": "1"}, timeout_s=60),
            schedule_delay_millis=100,
        )
    )
    tracer = provider.get_tracer("outage")
    traffic = Traffic(seed=11)
    for index in range(stop_after):
        traffic.emit(tracer, index)
        time.sleep(0.1)
    # An application runs on: its exporter retries until Kafka is back. Shutting the provider
    # down during the outage would make the SDK drop what it had not exported yet — spans
    # never acknowledged, so not the collector's to keep — which once failed this test when
    # the broker took long to restart.
    assert restored.wait(120), "Kafka came back"
    assert provider.force_flush(120_000)
    provider.shutdown()


_SPAN = {
    "traceId": "5b8efff798038103d269b633813fc60c",
    "spanId": "eee19b7ec3c1b174",
    "name": "probe",
    "startTimeUnixNano": "1700000000000000000",
    "endTimeUnixNano": "1700000001000000000",
}
_ONE_SPAN = {"resourceSpans": [{"scopeSpans": [{"spans": [_SPAN]}]}]}


def test_kafka_outage_loses_nothing(own_broker, collector_factory):
    collector = collector_factory(servers=own_broker.bootstrap_servers, retry_after_s=1)
    memories = {"http": InMemorySpanExporter(), "grpc": InMemorySpanExporter()}
    restored = threading.Event()
    senders = [
        threading.Thread(
            target=_sender,
            args=(
                protocol,
                collector.http_url if protocol == "http" else collector.grpc_target,
                memories[protocol],
                80,
                restored,
            ),
        )
        for protocol in memories
    ]
    for sender in senders:
        sender.start()
    time.sleep(1.5)
    own_broker.stop()
    deadline = time.monotonic() + 20
    while httpx.get(f"{collector.http_url}/ready").status_code != 503:
        assert time.monotonic() < deadline, "/ready must report Kafka unreachable"
        time.sleep(0.2)
    # told at once, not after the produce timeout: within an OTel SDK's 10 s export timeout
    started = time.monotonic()
    refused = httpx.post(f"{collector.http_url}/v1/traces", json=_ONE_SPAN, timeout=30)
    assert refused.status_code == 503 and refused.headers["retry-after"].isdigit()
    assert time.monotonic() - started < 1.0, "the circuit is open: no wait"
    time.sleep(3)
    own_broker.start()
    deadline = time.monotonic() + 60
    while httpx.get(f"{collector.http_url}/ready").status_code != 200:
        assert time.monotonic() < deadline, "/ready must report Kafka back"
        time.sleep(0.2)
    restored.set()
    for sender in senders:
        sender.join(120)
        assert not sender.is_alive()

    metrics = httpx.get(f"{collector.http_url}/metrics").text
    assert 'outcome="503"' in metrics, "HTTP clients were told to retry"
    assert 'outcome="UNAVAILABLE"' in metrics, "gRPC clients were told to retry"
    sent = {
        span.context.span_id.to_bytes(8, "big")
        for memory in memories.values()
        for span in memory.get_finished_spans()
    }
    received = {
        span.span_id
        for _, _, span in spans_of(
            read_topic(own_broker.bootstrap_servers, collector.topic, len(sent), timeout_s=60)
        )
    }
    assert sent <= received, f"{len(sent - received)} spans lost"
    assert received <= sent
