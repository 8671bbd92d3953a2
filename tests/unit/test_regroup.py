from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.support import attribute, make_request
from trace_insights.collector.regroup import assemble, regroup
from trace_insights.core.routing import partition_for


def _batches(grouped, limit):
    return [b for p, items in grouped.routed.items() for b in assemble(p, items, limit)]


def _spans(batches):
    out = []
    for batch in batches:
        message = ExportTraceServiceRequest.FromString(batch.payload)
        for rs in message.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    out.append((batch, rs, ss, span))
    return out


def test_partition_is_the_java_clients_default_partitioner():
    # Vectors from Kafka's UtilsTest.testMurmur2; positive(h) % n is the Java partitioner.
    vectors = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"abc": 479470107,
        b"a-little-bit-long-string": -985981536,
    }
    for key, java_hash in vectors.items():
        assert partition_for(key, 7) == (java_hash & 0x7FFFFFFF) % 7


def test_each_message_holds_only_its_partitions_traces_and_loses_nothing():
    request = make_request(traces=40, spans_per_trace=5)
    grouped = regroup(request, partitions=6, max_message_bytes=1_000_000, experiment_id="3")
    assert grouped.accepted == 200 and not grouped.rejected
    batches = _batches(grouped, 1_000_000)
    assert len(batches) <= 6
    spans = _spans(batches)
    assert len(spans) == 200
    originals = {s.span_id: s for s in request.resource_spans[0].scope_spans[0].spans}
    for batch, rs, ss, span in spans:
        assert partition_for(span.trace_id, 6) == batch.partition
        assert partition_for(batch.key, 6) == batch.partition
        assert span == originals[span.span_id]
        assert ss.scope.name == "tests"
        assert attribute(rs.resource.attributes, "mlflow.experimentId").string_value == "3"
        assert attribute(rs.resource.attributes, "service.name").string_value == "svc"
    assert sum(b.span_count for b in batches) == 200


def test_messages_respect_the_size_limit():
    request = make_request(traces=60, spans_per_trace=5)
    grouped = regroup(request, partitions=2, max_message_bytes=10_000)
    batches = _batches(grouped, 10_000)
    assert len(batches) > 2
    assert all(len(b.payload) <= 10_000 for b in batches)
    assert len(_spans(batches)) == 300


def test_experiment_from_resource_attribute_default_and_invalid():
    request = make_request(traces=1, spans_per_trace=1)
    second = request.resource_spans.add()
    second.CopyFrom(request.resource_spans[0])
    second.resource.attributes.add(key="mlflow.experimentId").value.int_value = 12
    third = request.resource_spans.add()
    third.CopyFrom(request.resource_spans[0])
    third.resource.attributes.add(key="mlflow.experimentId").value.string_value = "bad id!"
    grouped = regroup(request, partitions=1, max_message_bytes=100_000)
    stamps = [
        attribute(rs.resource.attributes, "mlflow.experimentId").string_value
        for _, rs, _, _ in _spans(_batches(grouped, 100_000))
    ]
    assert stamps == ["0", "12"]
    assert grouped.rejected_count == 1
    assert "resource attribute mlflow.experimentId" in grouped.error_message()


def test_rejections_are_counted_by_reason():
    request = make_request(traces=2, spans_per_trace=3)
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[0].trace_id = b"\x01" * 15
    spans[1].trace_id = bytes(16)
    spans[2].span_id = bytes(8)
    grouped = regroup(request, partitions=3, max_message_bytes=100_000)
    assert grouped.accepted == 3
    assert grouped.rejected == {
        "invalid trace_id (must be 16 bytes, not all zero)": 2,
        "invalid span_id (must be 8 bytes, not all zero)": 1,
    }
    assert grouped.error_message().startswith("rejected 3 of 6 spans: 2 x invalid trace_id")


def test_a_span_above_the_message_limit_is_rejected_not_dropped_silently():
    request = make_request(traces=1, spans_per_trace=2)
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[1].attributes.add(key="blob").value.string_value = "x" * 20_000
    grouped = regroup(request, partitions=1, max_message_bytes=10_000)
    assert grouped.accepted == 1
    assert "larger than the 10000-byte message limit" in grouped.error_message()
