"""The OTel SDK's exporters → collector → Kafka: exactly the spans sent, keyed by trace id."""

import gzip
import json
import time

import httpx
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support import attribute, make_request, read_topic, spans_of, to_otlp_json
from trace_insights.core.routing import partition_for
from trace_insights.generate import Traffic, exporter_for

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_sdk_exporter_spans_arrive_in_kafka_exactly(protocol, collector, kafka_servers):
    endpoint = collector.http_url if protocol == "http" else collector.grpc_target
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "tests"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(
        BatchSpanProcessor(exporter_for(endpoint, protocol, {"x-mlflow-experiment-id": "42"}))
    )
    tracer = provider.get_tracer("tests")
    traffic = Traffic(seed=3)
    for index in range(40):
        traffic.emit(tracer, index)
    provider.shutdown()
    sent = {
        (s.context.trace_id.to_bytes(16, "big"), s.context.span_id.to_bytes(8, "big")): s
        for s in memory.get_finished_spans()
    }

    records = read_topic(kafka_servers, collector.topic, len(sent))
    received = spans_of(records)
    ids = [(span.trace_id, span.span_id) for _, _, span in received]
    assert sorted(ids) == sorted(sent), "every span exactly once"
    partitions_of_trace: dict[bytes, set[int]] = {}
    for record, resource, span in received:
        assert attribute(resource.attributes, "mlflow.experimentId").string_value == "42"
        assert attribute(resource.attributes, "service.name").string_value == "tests"
        assert record.partition == partition_for(span.trace_id, 4)
        assert partition_for(record.key, 4) == record.partition, "key hashes to its partition"
        partitions_of_trace.setdefault(span.trace_id, set()).add(record.partition)
        original = sent[(span.trace_id, span.span_id)]
        assert span.name == original.name
        for key, value in original.attributes.items():
            got = attribute(span.attributes, key)
            assert got is not None, key
            assert value in (got.string_value, got.int_value, got.double_value, got.bool_value)
    assert all(len(p) == 1 for p in partitions_of_trace.values())
    assert len(records) < len(received) / 4, "many spans per message"


def test_json_and_protobuf_yield_the_same_topic_content(collector_factory, kafka_servers):
    request = make_request(traces=12, spans_per_trace=5)
    total = 60
    proto = collector_factory()
    response = httpx.post(
        f"{proto.http_url}/v1/traces",
        content=request.SerializeToString(),
        headers={"content-type": "application/x-protobuf", "x-mlflow-experiment-id": "7"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    as_json = collector_factory()
    response = httpx.post(
        f"{as_json.http_url}/v1/traces",
        content=json.dumps(to_otlp_json(request)),
        headers={"content-type": "application/json", "x-mlflow-experiment-id": "7"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}

    def content(topic):
        return sorted(
            (r.partition, r.key, r.payload) for r in read_topic(kafka_servers, topic, total)
        )

    assert content(proto.topic) == content(as_json.topic)


@pytest.mark.parametrize("content_type", ["application/x-protobuf", "application/json"])
def test_gzip_bodies_are_accepted(content_type, collector, kafka_servers):
    request = make_request(traces=3, spans_per_trace=3)
    body = (
        request.SerializeToString()
        if content_type == "application/x-protobuf"
        else json.dumps(to_otlp_json(request)).encode()
    )
    response = httpx.post(
        f"{collector.http_url}/v1/traces",
        content=gzip.compress(body),
        headers={"content-type": content_type, "content-encoding": "gzip"},
    )
    assert response.status_code == 200
    received = spans_of(read_topic(kafka_servers, collector.topic, 9))
    assert len(received) == 9
    for _, resource, _ in received:
        assert attribute(resource.attributes, "mlflow.experimentId").string_value == "0"


def test_resource_attribute_routes_experiment_when_no_header(collector, kafka_servers):
    request = make_request(traces=2, spans_per_trace=2)
    request.resource_spans[0].resource.attributes.add(
        key="mlflow.experimentId"
    ).value.string_value = "exp-9"
    response = httpx.post(
        f"{collector.http_url}/v1/traces",
        content=request.SerializeToString(),
        headers={"content-type": "application/x-protobuf"},
    )
    assert response.status_code == 200
    received = spans_of(read_topic(kafka_servers, collector.topic, 4))
    assert {
        attribute(r.attributes, "mlflow.experimentId").string_value for _, r, _ in received
    } == {"exp-9"}


def test_topic_is_created_with_the_configured_partitions(collector_factory, kafka_servers):
    from kafka import KafkaConsumer

    collector = collector_factory(topic_partitions=3)
    consumer = KafkaConsumer(bootstrap_servers=kafka_servers)
    deadline = time.monotonic() + 10
    while consumer.partitions_for_topic(collector.topic) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert consumer.partitions_for_topic(collector.topic) == {0, 1, 2}
    consumer.close()


def test_health_ready_and_metrics(collector):
    assert httpx.get(f"{collector.http_url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{collector.http_url}/ready").json() == {"status": "ready"}
    httpx.post(
        f"{collector.http_url}/v1/traces",
        content=make_request(traces=1, spans_per_trace=2).SerializeToString(),
        headers={"content-type": "application/x-protobuf"},
    )
    text = httpx.get(f"{collector.http_url}/metrics").text
    assert 'trace_insights_collector_spans_received_total{transport="http"} 2.0' in text
    assert "trace_insights_collector_spans_accepted_total 2.0" in text
    assert "trace_insights_collector_produce_seconds_count" in text
    assert "trace_insights_collector_buffer_bytes" in text
