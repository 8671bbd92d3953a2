import json
import math

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.support import make_request, to_otlp_json
from trace_insights.collector.otlp_json import OtlpJsonError, decode_request, encode_response


def test_round_trip_equals_the_protobuf():
    request = make_request(traces=6, spans_per_trace=4)
    assert decode_request(json.dumps(to_otlp_json(request)).encode()) == request


def test_otlp_rules_hex_ids_int64_strings_enum_integers_snake_case():
    body = {
        "resource_spans": [
            {
                "resource": {"attributes": [{"key": "k", "value": {"intValue": "-5"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "s", "version": "1"},
                        "spans": [
                            {
                                "traceId": "0102030405060708090a0b0c0d0e0f10",
                                "span_id": "0102030405060708",
                                "parentSpanId": "",
                                "name": "n",
                                "kind": 3,
                                "startTimeUnixNano": "1700000000000000000",
                                "endTimeUnixNano": 1700000000000000001,
                                "status": {"code": "STATUS_CODE_ERROR", "message": "m"},
                                "events": [{"timeUnixNano": "5", "name": "e"}],
                                "links": [{"traceId": "ff" * 16, "spanId": "ee" * 8}],
                                "attributes": [
                                    {"key": "d", "value": {"doubleValue": "NaN"}},
                                    {"key": "b", "value": {"boolValue": True}},
                                    {"key": "y", "value": {"bytesValue": "AQI="}},
                                    {"key": "a", "value": {"arrayValue": {"values": [
                                        {"stringValue": "x"}, {"intValue": 2}]}}},
                                    {"key": "m", "value": {"kvlistValue": {"values": [
                                        {"key": "in", "value": {"doubleValue": 1.5}}]}}},
                                ],
                            }
                        ],
                    }
                ],
            }
        ]
    }  # fmt: skip
    request = decode_request(json.dumps(body).encode())
    rs = request.resource_spans[0]
    assert rs.resource.attributes[0].value.int_value == -5
    span = rs.scope_spans[0].spans[0]
    assert span.trace_id == bytes(range(1, 17))
    assert span.span_id == bytes(range(1, 9))
    assert span.parent_span_id == b""
    assert span.kind == Span.SPAN_KIND_CLIENT
    assert span.start_time_unix_nano == 1_700_000_000_000_000_000
    assert span.end_time_unix_nano == 1_700_000_000_000_000_001
    assert span.status.code == 2 and span.status.message == "m"
    assert span.events[0].time_unix_nano == 5
    assert span.links[0].trace_id == b"\xff" * 16
    values = {kv.key: kv.value for kv in span.attributes}
    assert math.isnan(values["d"].double_value)
    assert values["b"].bool_value is True
    assert values["y"].bytes_value == b"\x01\x02"
    assert [v.WhichOneof("value") for v in values["a"].array_value.values] == [
        "string_value",
        "int_value",
    ]
    assert values["m"].kvlist_value.values[0].value.double_value == 1.5


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "$: expected an object, got list"),
        ({"resourceSpans": [1]}, "$.resourceSpans[0]: expected an object, got int"),
        (
            {"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "abc"}]}]}]},
            "spans[0].spanId: 'abc' is not a hex string",
        ),
        (
            {"resourceSpans": [{"scopeSpans": [{"spans": [{"flags": -1}]}]}]},
            "flags: -1 is out of range for a 32-bit integer",
        ),
        (
            {"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": True}]}]}]},
            "kind: expected an integer, got a boolean",
        ),
        (
            {"resourceSpans": [{"resource": {"attributes": [
                {"key": "k", "value": {"stringValue": "a", "intValue": 1}}]}}]},
            "an AnyValue holds one of",
        ),
        (
            {"resourceSpans": [{"resource": {"attributes": [
                {"key": "k", "value": {"bytesValue": "%%"}}]}}]},
            "bytesValue: not valid base64",
        ),
    ],
)  # fmt: skip
def test_errors_name_the_field(document, message):
    with pytest.raises(OtlpJsonError, match=None) as raised:
        decode_request(json.dumps(document).encode())
    assert message in str(raised.value)


def test_not_json():
    with pytest.raises(OtlpJsonError, match="not valid JSON"):
        decode_request(b"\xff\xfe")


def test_nulls_and_unknown_fields_are_ignored():
    request = decode_request(b'{"resourceSpans": null, "extra": {"x": 1}}')
    assert len(request.resource_spans) == 0


def test_response_encoding():
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    assert encode_response(ExportTraceServiceResponse()) == b"{}"
    partial = ExportTraceServiceResponse()
    partial.partial_success.rejected_spans = 3
    partial.partial_success.error_message = "why"
    assert json.loads(encode_response(partial)) == {
        "partialSuccess": {"rejectedSpans": "3", "errorMessage": "why"}
    }
