"""The storable rules, one per kind of value, and where they are applied: the OTLP/JSON
decoder, the conventions (every producer's spans become canonical records there), the
assessment carrier and the API's request models."""

import json
from dataclasses import asdict

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from trace_insights.api.mlflow.schemas import CreateAssessment
from trace_insights.collector.otlp_json import decode_request
from trace_insights.core import storable
from trace_insights.core.assessments import Assessment, decode
from trace_insights.core.conventions import normalize

R = storable.REPLACEMENT


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("plain", "plain"),
        ("a\x00b", f"a{R}b"),
        ("x\ud800y", f"x{R}y"),
        ("\udfff\x00", R + R),
        ("grüße 🚀 ok", "grüße 🚀 ok"),
    ],
)
def test_text_replaces_what_no_store_can_hold(raw, stored):
    assert storable.text(raw) == stored
    storable.text(raw).encode()  # always encodable


def test_keys_are_cut_to_the_column_and_counts_past_it_are_no_counts():
    assert storable.key("k" * 250) == "k" * 250
    assert storable.key("k" * 300) == "k" * 249 + "…"
    assert len(storable.key("é" * 999)) == storable.KEY_CHARS
    assert storable.tokens(2**32 - 1) == 2**32 - 1
    assert storable.tokens(2**32) is None and storable.tokens(-1) is None


def _span(**fields) -> Span:
    span = Span(
        trace_id=b"\x01" * 16,
        span_id=b"\x02" * 8,
        name="s",
        start_time_unix_nano=10,
        end_time_unix_nano=20,
    )
    for name, value in fields.items():
        setattr(span, name, value)
    return span


def test_a_span_past_int64_time_is_refused_with_a_reason():
    assert storable.span_problem(_span()) is None
    assert storable.span_problem(_span(end_time_unix_nano=2**63 - 1)) is None
    late = storable.span_problem(_span(end_time_unix_nano=2**64 - 1))
    assert late is not None and "int64" in late
    both = _span(start_time_unix_nano=2**64 - 1, end_time_unix_nano=2**64 - 1)
    assert storable.span_problem(both) == late


def test_the_conventions_make_every_string_storable_and_drop_impossible_counts():
    span = _span(name="na\x00me")
    span.status.message = "bad\x00"
    span.events.add(name="ev\x00")
    add = span.attributes.add
    add(key="k\x00ey").value.string_value = "v\x00"
    add(key="mlflow.spanType").value.string_value = '"TOOL"'
    add(key="mlflow.spanInputs").value.string_value = '{"q\\u0000": ["\\u0000"]}'
    add(key="metadata").value.string_value = json.dumps({"t" * 300: "x\x00", "ok": 1})
    add(key="gen_ai.usage.input_tokens").value.string_value = "1e30"
    add(key="gen_ai.usage.output_tokens").value.int_value = 2**63 - 1
    record = normalize(span, {}, "1")
    assert (record.name, record.status_message, record.events) == (
        f"na{R}me",
        f"bad{R}",
        [f"ev{R}"],
    )
    assert record.attributes[f"k{R}ey"] == f"v{R}"
    assert record.attributes["mlflow.spanInputs"] == {f"q{R}": [R]}
    assert record.trace_tags == {"t" * 249 + "…": f"x{R}", "ok": "1"}
    assert (record.input_tokens, record.output_tokens) == (None, None)
    assert record.tool_name == f"na{R}me"
    json.dumps(asdict(record)).encode()


def test_otlp_json_with_lone_surrogates_decodes_to_storable_text():
    body = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "01" * 16,
                                "spanId": "02" * 8,
                                "name": "\\ud800x",
                                "attributes": [
                                    {"key": "a\\udc00", "value": {"stringValue": "\\udfff"}}
                                ],
                            }
                        ]
                    }
                ]
            }
        ]
    }
    raw = json.dumps(body).replace("\\\\u", "\\u").encode()
    [span] = decode_request(raw).resource_spans[0].scope_spans[0].spans
    assert span.name == f"{R}x"
    assert (span.attributes[0].key, span.attributes[0].value.string_value) == (f"a{R}", R)


def test_assessments_are_storable_from_the_api_and_from_any_producer():
    body = CreateAssessment.model_validate(
        {
            "assessment": {
                "assessment_name": "q\x00",
                "feedback": {"value": "ok\x00"},
                "rationale": "r\ud800",
                "source": {"source_type": "HUMAN", "source_id": "s\x00"},
            }
        }
    )
    new = body.assessment
    assert (new.assessment_name, new.feedback.value, new.rationale, new.source.source_id) == (
        f"q{R}",
        f"ok{R}",
        f"r{R}",
        f"s{R}",
    )
    carried = Assessment("a-1", "ab" * 16, "1", "n\x00", "v\x00", "HUMAN", None, "\x00", 0)
    decoded = decode(json.dumps(asdict(carried)))
    assert (decoded.name, decoded.value, decoded.rationale) == (f"n{R}", f"v{R}", R)
    for broken in ({"name": "n" * 251}, {"experiment_id": "e" * 100}, {"trace_id": ""}):
        with pytest.raises(ValueError):
            decode(json.dumps({**asdict(carried), **broken}))


def test_a_foreign_producers_span_ending_before_it_starts_is_skipped_and_counted():
    """The collector refuses such spans; another producer's reach the aggregator, where a
    negative latency once entered the aggregates (issue 15)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from prometheus_client import REGISTRY

    from trace_insights.aggregator.decode import deliveries
    from trace_insights.bus import Record

    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add()
    for name, start, end in (("backwards", 2_000, 1_000), ("fine", 1_000, 2_000)):
        span = spans.spans.add(
            name=name,
            trace_id=b"\x01" * 16,
            span_id=b"\x02" * 7 + bytes([len(name)]),
            start_time_unix_nano=start,
            end_time_unix_nano=end,
        )
        assert span.name == name
    reason = "end_time_unix_nano is before start_time_unix_nano"
    labels = {"reason": reason}
    before = REGISTRY.get_sample_value("trace_insights_aggregator_spans_skipped_total", labels)
    decoded = deliveries([Record(0, 1, request.SerializeToString())])
    assert [d.span.name for d in decoded.spans] == ["fine"]
    after = REGISTRY.get_sample_value("trace_insights_aggregator_spans_skipped_total", labels)
    assert (after or 0) - (before or 0) == 1
