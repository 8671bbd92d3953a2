"""Fuzzing the edges with hypothesis: whatever a sender or a client writes, the OTLP/JSON decoder
either decodes it into a request the aggregator can read back, or refuses it with its own error;
a filter string either parses or is refused with a position — and served, it is a 200 or a 4xx,
never a 5xx (issue 15). Bounded to seconds here; longer runs raise ``max_examples``."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.fuzzing import FILTERS, JSON
from tests.unit.conftest import EmbeddedApi, embedded
from trace_insights.collector.otlp_json import OtlpJsonError, decode_request
from trace_insights.core.filters import ParseError, parse


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
    search = served.client.post(
        "/api/3.0/mlflow/traces/search", json={"experiment_ids": [experiment], "filter": text}
    )
    assert search.status_code in (200, 400), search.text
    correlation = served.client.post(
        "/api/3.0/mlflow/traces/calculate-filter-correlation",
        json={
            "experiment_ids": [experiment],
            "filter_string1": text,
            "filter_string2": "trace.status = 'ERROR'",
        },
    )
    assert correlation.status_code in (200, 400), correlation.text
