"""MLflow's own client (the pinned ``mlflow-tracing``) against ``up``: what it calls is served
in MLflow's wire format, so its code paths run as they do against an MLflow server."""

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import mlflow
import pytest

from tests.integration.conftest import deployed
from tests.support import Running, traces_counted, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=["up", "services"])
def tracking(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[Running]:
    """MLflow's client against ``up`` and against the cluster processes."""
    with deployed(request.param, request, tmp_path_factory.mktemp("mlflow")) as running:
        mlflow.set_tracking_uri(running.api_url)  # no other module of the suite uses MLflow
        yield running


def test_set_experiment_creates_a_name_once_and_then_finds_it(tracking):
    created = mlflow.set_experiment("checkout-agent")
    found = mlflow.set_experiment("checkout-agent")  # get-by-name, not a second create
    assert (found.experiment_id, found.name) == (created.experiment_id, "checkout-agent")
    assert found.lifecycle_stage == "active"
    by_id = mlflow.set_experiment(experiment_id=created.experiment_id)
    assert by_id.name == "checkout-agent"


def test_mlflow_trace_with_only_the_tracking_uri_is_stored_and_counted(tracking):
    """MLflow's native path: ``GET /version``, the spans over OTLP to ``/v1/traces`` of the
    tracking server, then StartTraceV3; nothing but the tracking URI configured."""
    experiment = mlflow.set_experiment("native-tracing")

    @mlflow.trace(span_type="TOOL")
    def lookup(city: str) -> str:
        return f"sunny in {city}"

    @mlflow.trace(span_type="AGENT")
    def agent(question: str) -> str:
        return lookup(question.split()[-1])

    ids = []
    for city in ("Paris", "Oslo", "Lima"):
        agent(f"weather in {city}")
        ids.append(mlflow.get_last_active_trace_id())
    mlflow.flush_trace_async_logging()
    wait_for(
        lambda: traces_counted(tracking.api_url, experiment.experiment_id) == 3,
        30,
        "the three traces counted",
    )
    for trace_id in ids:
        reply = httpx.get(f"{tracking.api_url}/api/3.0/mlflow/traces/{trace_id}")
        assert reply.status_code == 200, reply.text
        spans = reply.json()["trace"]["data"]["spans"]
        assert sorted((s["name"], s["span_type"]) for s in spans) == [
            ("agent", "AGENT"),
            ("lookup", "TOOL"),
        ]
    assert httpx.get(f"{tracking.api_url}/version").text == "3.17.2"


def test_log_feedback_answers_in_mlflows_wire_format_and_is_counted(tracking):
    from mlflow.entities import AssessmentSource

    experiment = mlflow.set_experiment("feedback")

    @mlflow.trace
    def answer(question: str) -> str:
        return question.upper()

    answer("why?")
    trace_id = mlflow.get_last_active_trace_id()
    mlflow.flush_trace_async_logging()
    wait_for(lambda: traces_counted(tracking.api_url, experiment.experiment_id) == 1, 30, "trace")
    logged = mlflow.log_feedback(
        trace_id=trace_id,
        name="correct",
        value=False,
        source=AssessmentSource(source_type="HUMAN", source_id="reviewer"),
        rationale="wrong city",
    )
    assert (logged.name, logged.value, logged.rationale) == ("correct", False, "wrong city")
    assert abs(logged.create_time_ms / 1000 - time.time()) < 60  # parsed from RFC 3339

    counted = _metrics(tracking.api_url, experiment.experiment_id, "correct")
    wait_for(lambda: counted()["total_count"] == 1, 30, "feedback counted")
    assert counted() == {"total_count": 1, "failure_count": 1, "failure_rate": 100.0}


def test_search_traces_and_get_trace_read_mlflows_trace_shape(tracking):
    from mlflow.tracing.client import TracingClient

    experiment = mlflow.set_experiment("searched")

    @mlflow.trace(span_type="TOOL")
    def lookup(city: str) -> str:
        if city == "Atlantis":
            raise LookupError(city)
        return f"sunny in {city}"

    @mlflow.trace(span_type="AGENT")
    def agent(city: str) -> str:
        return lookup(city)

    started = time.time()
    ids = {}
    for city in ("Paris", "Oslo", "Atlantis"):
        with pytest.raises(LookupError) if city == "Atlantis" else contextlib.nullcontext():
            agent(city)
        ids[city] = mlflow.get_last_active_trace_id()
    mlflow.flush_trace_async_logging()
    wait_for(lambda: traces_counted(tracking.api_url, experiment.experiment_id) == 3, 30, "traces")

    found = mlflow.search_traces(locations=[experiment.experiment_id], return_type="list")
    assert sorted(t.info.trace_id for t in found) == sorted(ids.values())
    assert all(sorted(s.name for s in t.data.spans) == ["agent", "lookup"] for t in found)
    failed = mlflow.search_traces(
        locations=[experiment.experiment_id], filter_string="status = 'ERROR'", return_type="list"
    )
    assert [t.info.trace_id for t in failed] == [ids["Atlantis"]]
    oldest_first = mlflow.search_traces(
        locations=[experiment.experiment_id],
        order_by=["timestamp_ms ASC"],
        return_type="list",
        include_spans=False,
    )
    # traces a millisecond apart may start in the same one: ties go by trace id
    assert [(t.info.request_time, t.info.trace_id) for t in oldest_first] == sorted(
        (t.info.request_time, t.info.trace_id) for t in found
    )
    page = TracingClient().search_traces(locations=[experiment.experiment_id], max_results=2)
    rest = TracingClient().search_traces(
        locations=[experiment.experiment_id], max_results=2, page_token=page.token
    )
    assert len(page) == 2 and len(rest) == 1 and rest.token is None
    assert {t.info.trace_id for t in [*page, *rest]} == set(ids.values())

    trace = mlflow.get_trace(ids["Paris"])
    info = trace.info
    assert (info.trace_id, info.experiment_id, info.state.value) == (
        ids["Paris"],
        experiment.experiment_id,
        "OK",
    )
    assert started - 5 < info.request_time / 1000 < time.time()  # RFC 3339, parsed
    assert 0 <= info.execution_duration < 5_000  # a protobuf Duration, parsed
    assert info.tags["mlflow.traceName"] == "agent"
    spans = {s.name: s for s in trace.data.spans}
    assert (spans["agent"].span_type, spans["lookup"].span_type) == ("AGENT", "TOOL")
    assert spans["lookup"].parent_id == spans["agent"].span_id
    assert (spans["lookup"].inputs, spans["lookup"].outputs) == (
        {"city": "Paris"},
        "sunny in Paris",
    )
    assert mlflow.get_trace(ids["Atlantis"]).info.state.value == "ERROR"


def test_override_expectation_update_and_delete_keep_the_counts_exact(tracking):
    """An override makes the replaced feedback not valid (counted no more, still readable);
    deleting the override makes it valid again; an expectation is kept and counts nowhere."""
    from mlflow.entities import AssessmentSource, Feedback

    experiment = mlflow.set_experiment("overrides")

    @mlflow.trace
    def answer(question: str) -> str:
        return question[::-1]

    trace_ids = []
    for question in ("one", "two"):
        answer(question)
        trace_ids.append(mlflow.get_last_active_trace_id())
    mlflow.flush_trace_async_logging()
    wait_for(lambda: traces_counted(tracking.api_url, experiment.experiment_id) == 2, 30, "traces")
    judge = AssessmentSource(source_type="LLM_JUDGE", source_id="judge")
    human = AssessmentSource(source_type="HUMAN", source_id="reviewer")
    first = mlflow.log_feedback(trace_id=trace_ids[0], name="correct", value=False, source=judge)
    mlflow.log_feedback(trace_id=trace_ids[1], name="correct", value=False, source=judge)
    expected = mlflow.log_expectation(
        trace_id=trace_ids[0], name="expected_facts", value=["a", "b"], source=human
    )
    mlflow.log_expectation(trace_id=trace_ids[0], name="expected_answer", value="eno")
    metrics = _metrics(tracking.api_url, experiment.experiment_id, "correct")
    wait_for(lambda: metrics()["total_count"] == 2, 30, "two feedbacks counted")
    assert metrics() == {"total_count": 2, "failure_count": 2, "failure_rate": 100.0}

    override = mlflow.override_feedback(
        trace_id=trace_ids[0], assessment_id=first.assessment_id, value=True, source=human
    )
    assert (override.overrides, override.valid) == (first.assessment_id, True)
    wait_for(lambda: metrics()["failure_count"] == 1, 30, "the override counted")
    assert metrics() == {"total_count": 2, "failure_count": 1, "failure_rate": 50.0}
    replaced = mlflow.get_assessment(trace_ids[0], first.assessment_id)
    assert (replaced.valid, replaced.value) == (False, False)  # readable, not counted
    assert _search(trace_ids, experiment, "feedback.correct = false") == [trace_ids[1]]

    got = mlflow.get_assessment(trace_ids[0], expected.assessment_id)
    assert (type(got).__name__, got.value, got.source.source_id) == (
        "Expectation",
        ["a", "b"],
        "reviewer",
    )
    assert _search(trace_ids, experiment, "expectation.expected_answer = 'eno'") == [trace_ids[0]]
    names = httpx.post(
        f"{tracking.api_url}/api/3.0/mlflow/traces/insights/assessments/discovery",
        json={"experiment_ids": [experiment.experiment_id]},
    ).json()["data"]
    assert [n["assessment_name"] for n in names] == ["correct"]  # expectations are not feedback

    updated = mlflow.update_assessment(
        trace_id=trace_ids[0],
        assessment_id=override.assessment_id,
        assessment=Feedback(name="correct", value=False, rationale="looked again"),
    )
    assert (updated.value, updated.rationale, updated.valid) == (False, "looked again", True)
    wait_for(lambda: metrics()["failure_count"] == 2, 30, "the update counted")

    mlflow.delete_assessment(trace_ids[0], override.assessment_id)
    wait_for(lambda: mlflow.get_assessment(trace_ids[0], first.assessment_id).valid, 30, "restored")
    assert metrics() == {"total_count": 2, "failure_count": 2, "failure_rate": 100.0}
    trace = mlflow.get_trace(trace_ids[0])
    shown = {a.name: a for a in trace.info.assessments}
    assert sorted(shown) == ["correct", "expected_answer", "expected_facts"]
    assert (shown["correct"].assessment_id, shown["correct"].valid) == (first.assessment_id, True)


def _metrics(api_url: str, experiment_id: str, name: str):
    def summary() -> dict:
        reply = httpx.post(
            f"{api_url}/api/3.0/mlflow/traces/insights/assessments/metrics",
            json={"experiment_ids": [experiment_id], "assessment_name": name},
        )
        return reply.json()["summary"] if reply.status_code == 200 else {"total_count": None}

    return summary


def _search(trace_ids: list[str], experiment, filter_string: str) -> list[str]:
    found = mlflow.search_traces(
        locations=[experiment.experiment_id],
        filter_string=filter_string,
        return_type="list",
        include_spans=False,
    )
    return sorted(t.info.trace_id for t in found)


def test_trace_tags_from_the_client_are_kept_counted_and_filtered(tracking):
    """Tags and user/session metadata set while the trace runs (sent with StartTraceV3), then
    ``set_trace_tag`` and ``delete_trace_tag``: the trace, the search filter and the tag
    counts of the insights API all read the same tags."""
    experiment = mlflow.set_experiment("tagged")

    @mlflow.trace
    def agent(team: str) -> str:
        mlflow.update_current_trace(
            tags={"team": team}, metadata={"mlflow.trace.user": f"user-{team}"}
        )
        if team == "blue":  # logged while the trace runs: it travels with StartTraceV3
            mlflow.log_feedback(trace_id=mlflow.get_active_trace_id(), name="kind", value="no")
        return team.upper()

    ids = {}
    for team in ("red", "red", "blue"):
        agent(team)
        ids.setdefault(team, []).append(mlflow.get_last_active_trace_id())
    mlflow.flush_trace_async_logging()
    wait_for(lambda: _tag_counts(tracking, experiment, "team") == {"red": 2, "blue": 1}, 30, "tags")
    assert _tag_counts(tracking, experiment, "user") == {"user-red": 2, "user-blue": 1}
    kind = _metrics(tracking.api_url, experiment.experiment_id, "kind")
    wait_for(lambda: kind()["total_count"] == 1, 30, "the in-trace feedback counted")
    assert kind() == {"total_count": 1, "failure_count": 1, "failure_rate": 100.0}
    trace = mlflow.get_trace(ids["blue"][0])
    assert (trace.info.tags["team"], trace.info.trace_metadata["mlflow.trace.user"]) == (
        "blue",
        "user-blue",
    )

    mlflow.set_trace_tag(ids["red"][0], "env", "prod")
    mlflow.set_trace_tag(ids["blue"][0], "team", "green")
    mlflow.delete_trace_tag(ids["red"][1], "team")
    wait_for(lambda: _tag_counts(tracking, experiment, "env") == {"prod": 1}, 30, "set")
    wait_for(
        lambda: _tag_counts(tracking, experiment, "team") == {"red": 1, "green": 1}, 30, "moved"
    )
    assert _search(ids["red"], experiment, "tags.team = 'red'") == [ids["red"][0]]
    assert _search(ids["red"], experiment, "tags.env = 'prod' AND tags.team = 'red'") == [
        ids["red"][0]
    ]
    assert "team" not in mlflow.get_trace(ids["red"][1]).info.tags
    assert mlflow.get_trace(ids["blue"][0]).info.tags["team"] == "green"


def _tag_counts(tracking: Running, experiment, key: str) -> dict[str, int]:
    reply = httpx.post(
        f"{tracking.api_url}/api/3.0/mlflow/traces/insights/tags/metrics",
        json={"experiment_ids": [experiment.experiment_id], "tag_key": key},
    )
    if reply.status_code != 200:
        return {}
    return {value["value"]: value["count"] for value in reply.json()["data"]}


_OTLP_SCRIPT = """
import mlflow

@mlflow.trace(span_type="TOOL")
def lookup(city):
    return "sunny in " + city

@mlflow.trace(span_type="AGENT")
def agent(city):
    return lookup(city)

for city in ("Paris", "Oslo"):
    agent(city)
mlflow.flush_trace_async_logging()
"""


def test_mlflow_tracing_over_otlp_to_the_collector(tracking, tmp_path):
    """The other way: MLflow's OTLP exporter (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, over
    HTTP) to the collector, the experiment in the header; a process of its own, since MLflow
    reads the exporter's environment once. (No trace tags: on this path MLflow 3.17.2 fails
    to end a tagged root span with this OpenTelemetry SDK — docs/mlflow.md; its
    ``mlflow.traceTag.*`` attributes are read as tags, tests/unit/test_conventions.py.)"""
    experiment = mlflow.set_experiment("exported")
    script = tmp_path / "exported.py"
    script.write_text(_OTLP_SCRIPT)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking.api_url,
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{tracking.otlp_url}/v1/traces",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"x-mlflow-experiment-id={experiment.experiment_id}",
    }
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    wait_for(lambda: traces_counted(tracking.api_url, experiment.experiment_id) == 2, 30, "traces")
    found = mlflow.search_traces(locations=[experiment.experiment_id], return_type="list")
    assert len(found) == 2
    for trace in found:
        assert sorted((s.name, s.span_type) for s in trace.data.spans) == [
            ("agent", "AGENT"),
            ("lookup", "TOOL"),
        ]


def test_a_chat_calls_cost_reads_back_as_mlflows_trace_cost(tracking):
    """A CHAT_MODEL span with MLflow's token usage is priced here (genai-prices), and MLflow's
    client reads the trace's cost where it keeps its own (``info.cost``); a cost MLflow's
    client set on a span itself (``mlflow.llm.cost``) is the sender's figure, kept as sent."""
    experiment = mlflow.set_experiment("priced")

    @mlflow.trace(span_type="CHAT_MODEL")
    def chat(prompt: str, cost: dict | None = None) -> str:
        span = mlflow.get_current_active_span()
        span.set_attribute("mlflow.llm.model", "gpt-4o")
        span.set_attribute("mlflow.chat.tokenUsage", {"input_tokens": 1000, "output_tokens": 200})
        if cost is not None:
            span.set_attribute("mlflow.llm.cost", cost)
        return "ok"

    chat("hello")
    priced = mlflow.get_last_active_trace_id()
    chat("again", {"input_cost": 0.01, "output_cost": 0.02, "total_cost": 0.03})
    reported = mlflow.get_last_active_trace_id()
    mlflow.flush_trace_async_logging()
    wait_for(lambda: traces_counted(tracking.api_url, experiment.experiment_id) == 2, 30, "traces")
    assert mlflow.get_trace(priced).info.cost == {"total_cost": 0.0045}
    assert mlflow.get_trace(reported).info.cost == {"total_cost": 0.03}
