"""Every client mistake gets a 4xx in MLflow's error shape naming the problem — never a 500."""

import pytest

from tests.support import publish_to_bus, sdk_spans
from tests.unit.conftest import embedded
from trace_insights.api.schemas import MAX_EXPERIMENTS

INSIGHTS = "/api/3.0/mlflow/traces/insights"
EXTRA = {
    "assessments/metrics": {"assessment_name": "correct"},
    "tools/metrics": {"tool_name": "web_search"},
    "tags/metrics": {"tag_key": "query_type"},
    "dimensions/calculate-npmi": {
        "dimension1": {"name": "status", "parameters": {"value": "ERROR"}},
        "dimension2": {"name": "span.type", "parameters": {"value": "TOOL"}},
    },
    "dimensions/correlations": {"dimension": {"name": "status", "parameters": {"value": "OK"}}},
}
ENDPOINTS = [
    "traffic-cost/volume",
    "traffic-cost/latency",
    "traffic-cost/errors",
    "traffic-cost/tokens",
    "assessments/discovery",
    "assessments/metrics",
    "tools/discovery",
    "tools/metrics",
    "tags/discovery",
    "tags/metrics",
    "dimensions/discovery",
    "dimensions/calculate-npmi",
    "dimensions/correlations",
]


@pytest.fixture
def seeded(tmp_path):
    with embedded(tmp_path) as api:
        spans = sdk_spans(30, seed=3)
        publish_to_bus(api.bus, spans, "exp")
        api.drain()
        api.trace_id = f"{spans[0].context.trace_id:032x}"
        yield api


def assert_error(response, status: int, code: str, *mentions: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error_code", "message"}, body
    assert body["error_code"] == code
    for mention in mentions:
        assert mention in body["message"], (mention, body["message"])


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_insights_endpoint_refuses_bad_requests(seeded, endpoint):
    client = seeded.client
    url = f"{INSIGHTS}/{endpoint}"
    good = {"experiment_ids": ["exp"], **EXTRA.get(endpoint, {})}
    bad = "INVALID_PARAMETER_VALUE"
    assert client.post(url, json=good).status_code in (200, 404)  # 404: nothing of that name
    assert_error(
        client.post(url, content=b"{not json", headers={"content-type": "application/json"}),
        400,
        bad,
        "JSON",
    )
    assert_error(
        client.post(url, json={k: v for k, v in good.items() if k != "experiment_ids"}),
        400,
        bad,
        "experiment_ids",
    )
    assert_error(client.post(url, json={**good, "experiment_ids": []}), 400, bad, "experiment_ids")
    assert_error(
        client.post(url, json={**good, "experiment_ids": ["nope"]}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
        "'nope'",
    )
    assert_error(
        client.post(url, json={**good, "start_time": 2000, "end_time": 1000}), 400, bad, "end_time"
    )
    assert_error(
        client.post(url, json={**good, "time_bucket": "fortnight"}), 400, bad, "time_bucket"
    )
    assert_error(
        client.post(url, json={**good, "timezone": "Mars/Olympus"}),
        400,
        bad,
        "timezone",
        "Mars/Olympus",
    )
    for zone in ("x" * 300, "../../../etc/passwd", "/tmp", ""):  # once an OSError: a 500
        assert_error(client.post(url, json={**good, "timezone": zone}), 400, bad, "timezone")
    assert_error(client.post(url, json={**good, "start_time": "yesterday"}), 400, bad, "start_time")
    assert_error(client.post(url, json={**good, "start_time": -5}), 400, bad, "start_time")
    assert_error(client.get(url), 405, bad)


@pytest.mark.parametrize(
    ("endpoint", "body", "status", "mention"),
    [
        ("assessments/metrics", {}, 400, "assessment_name"),
        ("assessments/metrics", {"assessment_name": "never"}, 404, "never"),
        ("tools/metrics", {}, 400, "tool_name"),
        ("tools/metrics", {"tool_name": "no_such_tool"}, 404, "no_such_tool"),
        ("tags/metrics", {}, 400, "tag_key"),
        ("tags/metrics", {"tag_key": "no_such_key"}, 404, "no_such_key"),
        ("tags/metrics", {"tag_key": "query_type", "limit": 0}, 400, "limit"),
        (
            "dimensions/calculate-npmi",
            {"dimension1": {"name": "status", "parameters": {"value": "OK"}}},
            400,
            "dimension2",
        ),
        (
            "dimensions/calculate-npmi",
            {
                **EXTRA["dimensions/calculate-npmi"],
                "dimension1": {"name": "colour", "parameters": {"value": "red"}},
            },
            400,
            "colour",
        ),
        (
            "dimensions/calculate-npmi",
            {
                **EXTRA["dimensions/calculate-npmi"],
                "dimension1": {"name": "status", "parameters": {}},
            },
            400,
            "value",
        ),
        (
            "dimensions/calculate-npmi",
            {
                **EXTRA["dimensions/calculate-npmi"],
                "dimension1": {
                    "name": "latency",
                    "parameters": {"threshold": "5", "operator": "~"},
                },
            },
            400,
            "operator",
        ),
        (
            "dimensions/calculate-npmi",
            {
                **EXTRA["dimensions/calculate-npmi"],
                "dimension1": {
                    "name": "latency",
                    "parameters": {"threshold": "fast", "operator": ">"},
                },
            },
            400,
            "threshold",
        ),
        (
            "dimensions/calculate-npmi",
            {
                **EXTRA["dimensions/calculate-npmi"],
                "dimension1": {"name": "tools.web_search", "parameters": {"value": "maybe"}},
            },
            400,
            "used, error, success",
        ),
        (
            "dimensions/correlations",
            {
                "dimension": {
                    "name": "latency",
                    "parameters": {"threshold": "1234", "operator": ">"},
                }
            },
            400,
            "threshold the stream",
        ),
        ("dimensions/correlations", {**EXTRA["dimensions/correlations"], "limit": 0}, 400, "limit"),
        (
            "traffic-cost/volume",
            {"time_bucket": "minute", "start_time": 0, "end_time": 40 * 86_400_000},
            400,
            "coarser time_bucket",
        ),
    ],
)
def test_endpoint_specific_mistakes(seeded, endpoint, body, status, mention):
    response = seeded.client.post(
        f"{INSIGHTS}/{endpoint}", json={"experiment_ids": ["exp"], **body}
    )
    code = "INVALID_PARAMETER_VALUE" if status == 400 else "RESOURCE_DOES_NOT_EXIST"
    assert_error(response, status, code, mention)


def test_numeric_parameters_are_accepted_as_numbers(seeded):
    body = {
        "experiment_ids": ["exp"],
        **EXTRA["dimensions/calculate-npmi"],
        "dimension2": {"name": "latency", "parameters": {"threshold": 1000, "operator": ">"}},
    }
    response = seeded.client.post(f"{INSIGHTS}/dimensions/calculate-npmi", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["dimension2"]["value"] == ">1000"


def test_experiment_traces_and_assessment_mistakes(seeded):
    client, trace = seeded.client, seeded.trace_id
    bad, missing = "INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"
    experiments = "/api/2.0/mlflow/experiments"
    assert_error(client.post(f"{experiments}/create", json={}), 400, bad, "name")
    assert_error(client.post(f"{experiments}/create", json={"name": "  "}), 400, bad, "name")
    assert client.post(f"{experiments}/create", json={"name": "shop"}).status_code == 200
    assert_error(
        client.post(f"{experiments}/create", json={"name": "shop"}),
        400,
        "RESOURCE_ALREADY_EXISTS",
        "shop",
    )
    assert_error(client.get(f"{experiments}/get"), 400, bad, "experiment_id")
    assert_error(
        client.get(f"{experiments}/get", params={"experiment_id": "9"}), 404, missing, "'9'"
    )
    assert_error(
        client.get(f"{experiments}/search", params={"max_results": 0}), 400, bad, "max_results"
    )
    by_name = f"{experiments}/get-by-name"
    created = client.post(f"{experiments}/create", json={"name": "shop"})  # taken: see above
    shop = client.get(by_name, params={"experiment_name": "shop"}).json()["experiment"]
    assert shop["name"] == "shop" and created.status_code == 400
    ingested = client.get(by_name, params={"experiment_name": "exp"}).json()["experiment"]
    assert (ingested["experiment_id"], ingested["name"]) == ("exp", "exp"), "its id is its name"
    assert_error(client.get(by_name, params={"experiment_name": "nope"}), 404, missing, "'nope'")
    assert_error(client.get(by_name), 400, bad, "experiment_name")

    traces = "/api/3.0/mlflow/traces"
    assert_error(client.get(f"{traces}/tr-xyz"), 400, bad, "tr-xyz", "32 hex")
    assert_error(client.get(f"{traces}/tr-{'0' * 32}"), 404, missing, "does not exist")
    good = {"assessment": {"assessment_name": "correct", "feedback": {"value": "yes"}}}
    url = f"{traces}/tr-{trace}/assessments"
    assert_error(client.post(f"{traces}/tr-{'0' * 32}/assessments", json=good), 404, missing)
    assert_error(client.post(f"{traces}/12/assessments", json=good), 400, bad, "'12'")
    for change, mention in (
        ({"feedback": {"value": {"nested": 1}}}, "feedback.value"),
        ({"feedback": {"value": [1, 2]}}, "feedback.value"),
        ({"feedback": None}, "feedback"),
        ({"source": {"source_type": "ROBOT"}}, "source.source_type"),
        ({"assessment_name": "a=b"}, "assessment_name"),
        ({"assessment_name": ""}, "assessment_name"),
    ):
        body = {"assessment": {**good["assessment"], **change}}
        assert_error(client.post(url, json=body), 400, bad, mention)
    assert_error(client.post(url, json={}), 400, bad, "assessment")
    for method in ("get", "delete"):
        assert_error(getattr(client, method)(f"{url}/a-nope"), 404, missing, "a-nope")
    assert_error(
        client.patch(f"{url}/a-nope", json={"assessment": {"feedback": {"value": 1}}}),
        404,
        missing,
        "a-nope",
    )
    # no route is MLflow's ENDPOINT_NOT_FOUND (its client falls back on it), not a resource
    assert_error(client.get("/api/3.0/mlflow/no-such-thing"), 404, "ENDPOINT_NOT_FOUND")
    assert_error(client.get("/ui/js/no-such-module.js"), 404, "ENDPOINT_NOT_FOUND")


def test_a_configured_token_guards_everything_but_health(tmp_path):
    with embedded(tmp_path, auth_token="s3cret") as api:
        client = api.client
        url = f"{INSIGHTS}/traffic-cost/volume"
        body = {"experiment_ids": ["0"]}
        assert_error(client.post(url, json=body), 401, "UNAUTHENTICATED", "bearer token")
        assert_error(
            client.post(url, json=body, headers={"authorization": "Bearer nope"}),
            401,
            "UNAUTHENTICATED",
        )
        ok = client.post(url, json=body, headers={"authorization": "Bearer s3cret"})
        assert ok.status_code == 404  # past the guard: experiment 0 has no data yet
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 200


def test_filter_endpoints_refuse_bad_filters_and_tokens(seeded):
    client = seeded.client
    bad = "INVALID_PARAMETER_VALUE"
    for version in ("2.0", "3.0"):
        url = f"/api/{version}/mlflow/traces/calculate-filter-correlation"
        good = {
            "experiment_ids": ["exp"],
            "filter_string1": "span.type = 'TOOL'",
            "filter_string2": "trace.status = 'ERROR'",
        }
        assert client.post(url, json=good).status_code == 200
        assert_error(
            client.post(url, json={**good, "filter_string1": "(span.type = 'TOOL'"}),
            400,
            bad,
            "filter_string1",
            "position 19",
            "closing parenthesis",
        )
        assert_error(
            client.post(url, json={**good, "filter_string2": "span.colour = 'x'"}),
            400,
            bad,
            "filter_string2",
            "unknown key span.colour",
        )
        assert_error(
            client.post(url, json={**good, "base_filter": "feedback.x > 'high'"}),
            400,
            bad,
            "base_filter",
        )
        assert_error(
            client.post(url, json={**good, "experiment_ids": ["nope"]}),
            404,
            "RESOURCE_DOES_NOT_EXIST",
        )
        assert_error(client.post(url, json={"experiment_ids": ["exp"]}), 400, bad, "filter_string1")
    search = "/api/3.0/mlflow/traces/search"
    assert_error(
        client.post(search, json={"experiment_ids": ["exp"], "filter": "span.type ="}),
        400,
        bad,
        "filter",
        "value",
    )
    assert_error(
        client.post(search, json={"experiment_ids": ["exp"], "order_by": ["mood"]}),
        400,
        bad,
        "order_by",
    )
    assert_error(
        client.post(search, json={"experiment_ids": ["exp"], "page_token": "xyz"}),
        400,
        bad,
        "page_token",
    )
    first = client.post(search, json={"experiment_ids": ["exp"], "max_results": 5}).json()
    other = {
        "experiment_ids": ["exp"],
        "filter": "trace.status = 'OK'",
        "page_token": first["next_page_token"],
    }
    assert_error(client.post(search, json=other), 400, bad, "another query")
    assert_error(
        client.post(search, json={"experiment_ids": ["exp"], "max_results": 0}),
        400,
        bad,
        "max_results",
    )
    slice_ = {
        "experiment_ids": ["exp"],
        "filter_string": "span.type = 'TOOL'",
        "dimension": {"name": "status", "parameters": {"value": "OK"}},
    }
    assert_error(
        client.post(f"{INSIGHTS}/dimensions/correlations", json=slice_), 400, bad, "exactly one"
    )


def test_filter_correlation_edge_cases_follow_mlflow(seeded):
    """Zero counts → NaN (omitted), joint 0 → -1, both covering everything → 1."""

    def correlate(first: str, second: str, version: str = "2.0") -> dict:
        body = {"experiment_ids": ["exp"], "filter_string1": first, "filter_string2": second}
        response = seeded.client.post(
            f"/api/{version}/mlflow/traces/calculate-filter-correlation", json=body
        )
        assert response.status_code == 200, response.text
        return response.json()

    nothing = correlate("span.name = 'no such span'", "trace.status = 'OK'")
    assert "npmi" not in nothing and "npmi_smoothed" not in nothing
    assert nothing["filter_string1_count"] == 0 and nothing["total_count"] == 30
    disjoint = correlate("trace.status = 'OK'", "trace.status = 'ERROR'")
    assert disjoint["npmi"] == -1.0 and disjoint["joint_count"] == 0
    everything = correlate("trace.span_count > 0", "span.type = 'AGENT'", "3.0")
    assert everything == {
        "npmi": 1.0,
        "npmi_smoothed": 1.0,
        "filter1_count": 30,
        "filter2_count": 30,
        "joint_count": 30,
        "total_count": 30,
    }


def test_a_body_over_the_limit_is_a_413_before_it_is_read_whole(seeded):
    """A 256 MiB body was read and parsed (the API grew by 500 MB; issue 15)."""
    url = f"{INSIGHTS}/traffic-cost/volume"
    huge = b'{"experiment_ids": ["exp"], "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = seeded.client.post(url, content=huge, headers={"content-type": "application/json"})
    assert_error(response, 413, "INVALID_PARAMETER_VALUE", "TRACE_INSIGHTS_MAX_API_BODY_BYTES")

    def chunks():  # no Content-Length: counted as it arrives
        yield huge[: len(huge) // 2]
        yield huge[len(huge) // 2 :]

    streamed = seeded.client.post(
        url, content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413, streamed.text


def test_experiment_id_lists_are_bounded(seeded):
    url = f"{INSIGHTS}/traffic-cost/volume"
    many = {"experiment_ids": [f"e{i}" for i in range(MAX_EXPERIMENTS + 1)]}
    assert_error(
        seeded.client.post(url, json=many), 400, "INVALID_PARAMETER_VALUE", "experiment_ids"
    )
    search = seeded.client.post("/api/3.0/mlflow/traces/search", json=many)
    assert_error(search, 400, "INVALID_PARAMETER_VALUE", "experiment_ids")
