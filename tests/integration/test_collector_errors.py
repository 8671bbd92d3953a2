"""Bad input gets a 4xx that names the problem; partial success; auth; limits."""

import gzip
import json

import grpc
import httpx
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

from tests.support import make_request, read_topic, spans_of, to_otlp_json

pytestmark = pytest.mark.integration

PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}


def test_invalid_spans_are_rejected_individually(collector, kafka_servers):
    request = make_request(traces=4, spans_per_trace=3)
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[0].trace_id = bytes(16)
    spans[1].span_id = b"\x01\x02"
    spans[2].end_time_unix_nano = spans[2].start_time_unix_nano - 1
    spans[3].parent_span_id = b"\x01"
    response = httpx.post(
        f"{collector.http_url}/v1/traces", content=request.SerializeToString(), headers=PROTOBUF
    )
    assert response.status_code == 200
    parsed = ExportTraceServiceResponse.FromString(response.content)
    assert parsed.partial_success.rejected_spans == 4
    message = parsed.partial_success.error_message
    assert "rejected 4 of 12 spans" in message
    assert "invalid trace_id" in message
    assert "invalid span_id" in message
    assert "end_time_unix_nano is before start_time_unix_nano" in message
    assert "invalid parent_span_id" in message
    received = spans_of(read_topic(kafka_servers, collector.topic, 8))
    assert sorted(s.span_id for _, _, s in received) == sorted(s.span_id for s in spans[4:])


def test_partial_success_in_json(collector):
    document = to_otlp_json(make_request(traces=1, spans_per_trace=2))
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = "00" * 16
    response = httpx.post(f"{collector.http_url}/v1/traces", json=document)
    assert response.status_code == 200
    body = response.json()
    assert body["partialSuccess"]["rejectedSpans"] == "1"
    assert "invalid trace_id" in body["partialSuccess"]["errorMessage"]


@pytest.mark.parametrize(
    ("headers", "body", "status", "needle"),
    [
        ({"content-type": "text/plain"}, b"hi", 415, "unsupported Content-Type 'text/plain'"),
        ({}, b"hi", 415, "unsupported Content-Type"),
        ({**PROTOBUF, "content-encoding": "br"}, b"x", 415, "unsupported Content-Encoding 'br'"),
        (PROTOBUF, b"\xff\xff\xff", 400, "malformed OTLP protobuf"),
        (JSON, b"{not json", 400, "body is not valid JSON"),
        (JSON, b'{"resourceSpans": {}}', 400, "$.resourceSpans: expected an array"),
        (
            JSON,
            b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}',
            400,
            "$.resourceSpans[0].scopeSpans[0].spans[0].traceId: 'zz' is not a hex string",
        ),
        (
            JSON,
            b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"soon"}]}]}]}',
            400,
            "startTimeUnixNano: 'soon' is not a decimal integer",
        ),
        ({**PROTOBUF, "content-encoding": "gzip"}, b"not gzip", 400, "not valid gzip"),
        (
            {**PROTOBUF, "content-encoding": "gzip"},
            gzip.compress(b"x" * 1000)[:20],
            400,
            "gzip body is truncated",
        ),
        ({**PROTOBUF, "x-mlflow-experiment-id": "a b"}, b"", 400, "x-mlflow-experiment-id"),
    ],
)
def test_client_mistakes_get_4xx_naming_the_problem(collector, headers, body, status, needle):
    response = httpx.post(f"{collector.http_url}/v1/traces", content=body, headers=headers)
    assert response.status_code == status
    if headers.get("content-type") == "application/x-protobuf":
        assert response.headers["content-type"] == "application/x-protobuf"
        message = Status.FromString(response.content).message
    else:
        payload = response.json()
        assert payload["error_code"] in {"INVALID_PARAMETER_VALUE", "BAD_REQUEST"}
        message = payload["message"]
    assert needle in message


def test_wrong_method_and_path(collector):
    response = httpx.get(f"{collector.http_url}/v1/traces")
    assert response.status_code == 405
    assert "GET is not allowed on /v1/traces" in response.json()["message"]
    response = httpx.post(f"{collector.http_url}/v1/profiles", content=b"", headers=PROTOBUF)
    assert response.status_code == 404
    assert "/v1/profiles" in Status.FromString(response.content).message


def test_metrics_and_logs_are_answered_with_every_item_rejected(collector):
    """Not stored, and said so: 200 with partial_success counting every item, which OTLP
    exporters do not retry — the SDK's own metric exporter reports success."""
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceResponse,
    )
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult

    reader = InMemoryMetricReader()
    counter = MeterProvider(metric_readers=[reader]).get_meter("t").create_counter("calls")
    counter.add(3, {"tool": "a"})
    counter.add(1, {"tool": "b"})
    data = reader.get_metrics_data()
    exporter = OTLPMetricExporter(endpoint=f"{collector.http_url}/v1/metrics")
    assert exporter.export(data) == MetricExportResult.SUCCESS
    reply = httpx.post(
        f"{collector.http_url}/v1/metrics",
        content=encode_metrics(data).SerializeToString(),
        headers=PROTOBUF,
    )
    assert reply.status_code == 200
    partial = ExportMetricsServiceResponse.FromString(reply.content).partial_success
    assert partial.rejected_data_points == 2
    assert "not stored" in partial.error_message
    logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "x"}}, {}]}]}]}
    reply = httpx.post(f"{collector.http_url}/v1/logs", json=logs)
    assert reply.status_code == 200
    assert reply.json()["partialSuccess"]["rejectedLogRecords"] == "2"
    reply = httpx.post(f"{collector.http_url}/v1/logs", content=b"{not json", headers=JSON)
    assert reply.status_code == 400 and "malformed OTLP logs" in reply.json()["message"]


def test_body_limits_and_gzip_bomb(collector_factory):
    collector = collector_factory(max_request_bytes=4096, max_decompressed_bytes=65536)
    big = make_request(traces=20, spans_per_trace=5).SerializeToString()
    assert len(big) > 4096
    response = httpx.post(f"{collector.http_url}/v1/traces", content=big, headers=PROTOBUF)
    assert response.status_code == 413
    assert "4096-byte limit" in Status.FromString(response.content).message

    def chunks():
        yield big[:2000]
        yield big[2000:]

    streamed = httpx.post(f"{collector.http_url}/v1/traces", content=chunks(), headers=PROTOBUF)
    assert streamed.status_code == 413

    # far over the limit, through the OTel HTTP exporter's own library: a readable 413, not a
    # connection reset (issue 15 measured resets over 8 MiB; not reproduced on loopback)
    import requests

    huge = requests.post(
        f"{collector.http_url}/v1/traces", data=b"\0" * 20_000_000, headers=PROTOBUF, timeout=30
    )
    assert huge.status_code == 413
    assert "4096-byte limit" in Status.FromString(huge.content).message

    small_bomb = gzip.compress(b"\0" * 3_000_000)  # 3 MB that gzip squeezes under 4 KB
    assert len(small_bomb) < 4096
    response = httpx.post(
        f"{collector.http_url}/v1/traces",
        content=small_bomb,
        headers={**PROTOBUF, "content-encoding": "gzip"},
    )
    assert response.status_code == 413
    assert "decompressed body exceeds the 65536-byte limit" in (
        Status.FromString(response.content).message
    )
    assert httpx.get(f"{collector.http_url}/health").status_code == 200


def test_bearer_token_on_http_and_grpc(collector_factory, kafka_servers):
    collector = collector_factory(auth_token="s3cret")
    body = make_request(traces=1, spans_per_trace=2).SerializeToString()
    url = f"{collector.http_url}/v1/traces"
    missing = httpx.post(url, content=body, headers=JSON)
    assert missing.status_code == 401
    assert missing.json()["error_code"] == "UNAUTHENTICATED"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = httpx.post(url, content=body, headers={**PROTOBUF, "authorization": "Bearer nope"})
    assert wrong.status_code == 401
    good = httpx.post(url, content=body, headers={**PROTOBUF, "authorization": "Bearer s3cret"})
    assert good.status_code == 200
    assert httpx.get(f"{collector.http_url}/health").status_code == 200

    request = make_request(traces=1, spans_per_trace=3, seed=99)
    with grpc.insecure_channel(collector.grpc_target) as channel:
        stub = TraceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Export(request, timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        stub.Export(request, metadata=[("authorization", "Bearer s3cret")], timeout=10)
    assert len(spans_of(read_topic(kafka_servers, collector.topic, 5))) == 5


def test_grpc_invalid_experiment_and_partial_success(collector):
    request = make_request(traces=1, spans_per_trace=3)
    request.resource_spans[0].scope_spans[0].spans[1].trace_id = b"short"
    with grpc.insecure_channel(collector.grpc_target) as channel:
        stub = TraceServiceStub(channel)
        response = stub.Export(request, timeout=10)
        assert response.partial_success.rejected_spans == 1
        assert "invalid trace_id" in response.partial_success.error_message
        with pytest.raises(grpc.RpcError) as refused:
            stub.Export(request, metadata=[("x-mlflow-experiment-id", "no spaces")], timeout=10)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "x-mlflow-experiment-id" in refused.value.details()


def test_unknown_json_fields_are_ignored(collector):
    document = to_otlp_json(make_request(traces=1, spans_per_trace=1))
    document["somethingNew"] = {"a": 1}
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["futureField"] = [1, 2]
    response = httpx.post(
        f"{collector.http_url}/v1/traces", content=json.dumps(document), headers=JSON
    )
    assert response.status_code == 200
    assert response.json() == {}


def test_grpc_malformed_message_is_invalid_argument(collector):
    with grpc.insecure_channel(collector.grpc_target) as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=None,
            response_deserializer=None,
        )
        with pytest.raises(grpc.RpcError) as refused:
            export(b"\xff\xff\xff", timeout=10)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "malformed OTLP protobuf" in refused.value.details()
