import json
import math

import pytest
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
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
                                    {
                                        "key": "a",
                                        "value": {
                                            "arrayValue": {
                                                "values": [{"stringValue": "x"}, {"intValue": 2}]
                                            }
                                        },
                                    },
                                    {
                                        "key": "m",
                                        "value": {
                                            "kvlistValue": {
                                                "values": [
                                                    {"key": "in", "value": {"doubleValue": 1.5}}
                                                ]
                                            }
                                        },
                                    },
                                ],
                            }
                        ],
                    }
                ],
            }
        ]
    }
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
            {
                "resourceSpans": [
                    {
                        "resource": {
                            "attributes": [
                                {"key": "k", "value": {"stringValue": "a", "intValue": 1}}
                            ]
                        }
                    }
                ]
            },
            "an AnyValue holds one of",
        ),
        (
            {
                "resourceSpans": [
                    {"resource": {"attributes": [{"key": "k", "value": {"bytesValue": "%%"}}]}}
                ]
            },
            "bytesValue: not valid base64",
        ),
    ],
)
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


def _nested(kind: str, levels: int) -> dict:
    """A value ``levels`` containers deep: arrays, or key-value lists."""
    value: dict = {"stringValue": "x"}
    for _ in range(levels):
        if kind == "array":
            value = {"arrayValue": {"values": [value]}}
        else:
            value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    return value


_PLACES = {
    "resource": lambda a: {"resource": {"attributes": a}, "scopeSpans": []},
    "scope": lambda a: {"scopeSpans": [{"scope": {"name": "s", "attributes": a}}]},
    "span": lambda a: {
        "scopeSpans": [{"spans": [{"traceId": "01" * 16, "spanId": "02" * 8, "attributes": a}]}]
    },
    "event": lambda a: {
        "scopeSpans": [
            {
                "spans": [
                    {
                        "traceId": "01" * 16,
                        "spanId": "02" * 8,
                        "events": [{"name": "e", "attributes": a}],
                    }
                ]
            }
        ]
    },
}


@pytest.mark.parametrize("kind", ["array", "kvlist"])
@pytest.mark.parametrize("place", _PLACES)
def test_whatever_is_accepted_parses_back_from_protobuf(place, kind):
    """The collector refuses exactly the nesting protobuf could not read back from Kafka."""
    outcomes = []
    for levels in range(1, 60):
        attributes = [{"key": "deep", "value": _nested(kind, levels)}]
        body = json.dumps({"resourceSpans": [_PLACES[place](attributes)]}).encode()
        try:
            request = decode_request(body)
        except OtlpJsonError as exc:
            assert "nested deeper" in str(exc)
            outcomes.append(False)
            continue
        ExportTraceServiceRequest.FromString(request.SerializeToString())
        outcomes.append(True)
    assert True in outcomes and False in outcomes
    assert outcomes == sorted(outcomes, reverse=True), "accepted up to a depth, refused beyond"
    if (place, kind) == ("span", "array"):
        assert outcomes.count(True) == 47
        request = ExportTraceServiceRequest()
        span = request.resource_spans.add().scope_spans.add().spans.add()
        value = span.attributes.add(key="deep").value
        for _ in range(48):
            value = value.array_value.values.add()
        value.string_value = "x"
        with pytest.raises(DecodeError):  # the first level refused could not be read back
            ExportTraceServiceRequest.FromString(request.SerializeToString())


def test_json_too_deep_to_read_is_a_bad_request():
    with pytest.raises(OtlpJsonError, match="nested too deeply"):
        decode_request(b"[" * 200_000 + b"]" * 200_000)
