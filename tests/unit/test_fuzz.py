"""Fuzzing the edges with hypothesis: whatever a sender or a client writes, the OTLP/JSON decoder
either decodes it into a request the aggregator can read back, or refuses it with its own error;
a filter string either parses or is refused with a position — and served, it is a 200 or a 4xx,
never a 5xx (issue 15). Bounded to seconds here; longer runs raise ``max_examples``."""

import json
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.unit.conftest import EmbeddedApi, embedded
from trace_insights.collector.otlp_json import OtlpJsonError, decode_request
from trace_insights.core.filters import ParseError, parse

OTLP_KEYS = ["resourceSpans", "scopeSpans", "spans", "resource", "attributes", "key", "value",
             "stringValue", "intValue", "doubleValue", "boolValue", "arrayValue", "kvlistValue",
             "bytesValue", "values", "traceId", "spanId", "parentSpanId", "name", "kind",
             "startTimeUnixNano", "endTimeUnixNano", "status", "code", "message", "events",
             "links", "scope", "version", "timeUnixNano", "droppedAttributesCount"]  # fmt: skip
_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "\ud800", "\x00",
                       "1700000000000000000", "18446744073709551615", "-1", "1e30"])
)  # fmt: skip
JSON = st.recursive(
    _LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(OTLP_KEYS) | st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
def test_otlp_json_is_decoded_whole_or_refused_with_its_error(value):
    body = json.dumps(value).encode("utf-8", "surrogatepass")
    try:
        request = decode_request(body)
    except OtlpJsonError:
        return
    # what the collector would acknowledge is read back by the aggregator
    assert ExportTraceServiceRequest.FromString(request.SerializeToString()) == request


TOKENS = ["span.name", "span.type", "trace.status", "trace.execution_time_ms", "tags.env",
          "feedback.ok", "span.attributes['k']", "count(", "(", ")", "AND", "OR", "NOT", "=",
          "!=", "<", ">=", "LIKE", "ILIKE", "IN", ",", "'LLM'", "'a\\'", "'%x_'", "5",
          "99999999999999999999", "1e400", "-3", "true", "'\x00'", "`k`", "\\"]  # fmt: skip
FILTERS = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=12).map(" ".join) | st.text(
    alphabet=string.printable, max_size=40
)


@settings(max_examples=400, deadline=None)
@given(FILTERS)
def test_a_filter_parses_or_is_refused_with_a_position(text):
    try:
        parse(text)
    except ParseError as exc:
        assert 0 <= exc.position <= len(text)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    with embedded(tmp_path_factory.mktemp("fuzz")) as api:
        created = api.client.post("/api/2.0/mlflow/experiments/create", json={"name": "f"})
        api.experiment = created.json()["experiment_id"]  # type: ignore[attr-defined]
        yield api


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(FILTERS)
def test_a_served_filter_is_a_200_or_a_4xx(served: EmbeddedApi, text):
    experiment = served.experiment  # type: ignore[attr-defined]
    search = served.client.post("/api/3.0/mlflow/traces/search",
                                json={"experiment_ids": [experiment], "filter": text})  # fmt: skip
    assert search.status_code in (200, 400), search.text
    correlation = served.client.post(
        "/api/3.0/mlflow/traces/calculate-filter-correlation",
        json={"experiment_ids": [experiment], "filter_string1": text,
              "filter_string2": "trace.status = 'ERROR'"},
    )  # fmt: skip
    assert correlation.status_code in (200, 400), correlation.text
