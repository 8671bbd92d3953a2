"""Every insights endpoint against a ground truth computed from what was sent: once through the
cluster deployment (collector, aggregator and API processes over real Kafka, Redis and
PostgreSQL) and once through the all-in-one ``trace-insights up`` with nothing configured."""

import json
import math
import time
import uuid
from collections import Counter
from decimal import Decimal

import httpx
import numpy as np
import pytest

from tests.insights_truth import TraceFacts, facts, npmi
from tests.support import (
    ROOT,
    Running,
    assert_rank_close,
    export_spans,
    free_ports,
    sdk_spans,
    service_env,
    start_up,
    wait_for,
)
from trace_insights.api.mlflow.schemas import SPANS_LOCATION, rfc3339, seconds
from trace_insights.api.mlflow.wire import TRACE_NAME
from trace_insights.client import TraceInsightsError, TracingClient

pytestmark = pytest.mark.integration

INSIGHTS = "/api/3.0/mlflow/traces/insights"
HOUR = 3_600_000
TRACES = 150


@pytest.mark.parametrize("order", ["whole", "root first", "root after the idle timeout"])
def test_every_endpoint_equals_the_ground_truth(deployment: Running, order: str):
    """Whatever order a trace's spans come in — as two services of a distributed trace, or a
    long-running agent, export them — every answer is that of the whole traces (issue 14)."""
    experiment = f"e2e-{uuid.uuid4().hex[:8]}"
    now_ns = time.time_ns()
    # spread over ~3 hours, so series have several hour buckets
    spans = sdk_spans(TRACES, seed=17, end_ns=lambda i: now_ns - (i % 50) * 211 * 1_000_000_000)
    traces = facts(spans)
    client = httpx.Client(base_url=deployment.api_url, timeout=30)
    body = {
        "experiment_ids": [experiment],
        "start_time": min(t.timestamp_ms for t in traces) - HOUR,
        "end_time": max(t.timestamp_ms for t in traces) + 120_000,
    }
    _deliver(deployment, client, body, spans, experiment, order)
    expected = (
        TRACES,
        sum(t.input_tokens for t in traces),
        min(t.latency_ms for t in traces),
        max(t.latency_ms for t in traces),
    )

    def aggregated() -> tuple:
        volume = _post(client, "traffic-cost/volume", body, ok=None).get("summary", {})
        tokens = _post(client, "traffic-cost/tokens", body, ok=None).get("summary", {})
        latency = _post(client, "traffic-cost/latency", body, ok=None).get("summary", {})
        return (
            volume.get("ok_count", 0) + volume.get("error_count", 0),
            tokens.get("input_tokens"),
            latency.get("min_latency"),
            latency.get("max_latency"),
        )

    wait_for(lambda: aggregated() == expected, 90, f"every trace to be aggregated ({order})")

    _post_assessments(client, experiment, traces)
    _check_traffic(client, body, traces)
    _check_tools(client, body, traces)
    _check_tags(client, body, traces)
    _check_assessments(client, body, traces)
    _check_dimensions(client, body, traces)
    _check_resources(client, experiment, traces)
    _check_filters(deployment.api_url, client, body, traces)
    _check_filter_slice(client, body, traces)


def _deliver(
    deployment: Running, client: httpx.Client, body: dict, spans: list, experiment: str, order: str
) -> None:
    """Export the spans whole, or the roots first and their children after the traces were
    finalized, or the children first and the roots after the idle timeout finalized them."""
    if order == "whole":
        export_spans(deployment.otlp_url, spans, experiment)
        return
    roots = [span for span in spans if span.parent is None]
    children = [span for span in spans if span.parent is not None]
    first, then = (roots, children) if order == "root first" else (children, roots)
    export_spans(deployment.otlp_url, first, experiment)
    wait_for(
        lambda: (
            _post(client, "traffic-cost/volume", body, ok=None).get("summary", {}).get("count")
            == TRACES
        ),
        90,
        "every trace to be finalized",
    )
    export_spans(deployment.otlp_url, then, experiment)


def _post(client: httpx.Client, path: str, body: dict, ok: int | None = 200) -> dict:
    response = client.post(f"{INSIGHTS}/{path}", json=body)
    if ok is not None:
        assert response.status_code == ok, response.text
    return response.json()


def _post_assessments(client: httpx.Client, experiment: str, traces: list[TraceFacts]) -> None:
    """Feedback of four types through the REST API, then one overwrite and one deletion."""
    plans = []
    for index, trace in enumerate(traces[:80]):
        if index < 30:
            plans.append((trace, "correct", "no" if index % 3 == 0 else "yes", "HUMAN"))
        elif index < 50:
            plans.append((trace, "score", index % 5 + 1, "LLM_JUDGE"))
        elif index < 65:
            plans.append((trace, "helpful", index % 2 == 0, "HUMAN"))
        else:
            plans.append((trace, "topic", ["billing", "weather", "travel"][index % 3], "CODE"))
    created = []
    for trace, name, value, source in plans:
        response = client.post(
            f"/api/3.0/mlflow/traces/tr-{trace.trace_id}/assessments",
            json={
                "assessment": {
                    "assessment_name": name,
                    "feedback": {"value": value},
                    "source": {"source_type": source, "source_id": "test"},
                }
            },
        )
        assert response.status_code == 200, response.text
        out = response.json()["assessment"]
        assert out["trace_id"] == f"tr-{trace.trace_id}" and out["feedback"]["value"] == value
        created.append(out["assessment_id"])
        trace.assessments[name] = value
    first, second = traces[0], traces[1]
    for trace, assessment_id in ((first, created[0]), (second, created[1])):
        url = f"/api/3.0/mlflow/traces/tr-{trace.trace_id}/assessments/{assessment_id}"
        wait_for(lambda url=url: client.get(url).status_code == 200, 30, "the assessment stored")
    flipped = "yes" if first.assessments["correct"] == "no" else "no"
    response = client.patch(
        f"/api/3.0/mlflow/traces/tr-{first.trace_id}/assessments/{created[0]}",
        json={"assessment": {"feedback": {"value": flipped}}},
    )
    assert response.status_code == 200, response.text
    first.assessments["correct"] = flipped
    response = client.delete(f"/api/3.0/mlflow/traces/{second.trace_id}/assessments/{created[1]}")
    assert response.status_code == 200, response.text
    del second.assessments["correct"]
    expected = sum(1 for t in traces if "correct" in t.assessments)
    body = {
        "experiment_ids": [experiment],
        "assessment_name": "correct",
        "start_time": min(t.timestamp_ms for t in traces) - HOUR,
    }
    wait_for(
        lambda: (
            _post(client, "assessments/metrics", body)["summary"]["total_count"] == expected
            and _post(client, "assessments/metrics", body)["summary"]["failure_count"]
            == sum(1 for t in traces if t.assessments.get("correct") == "no")
        ),
        30,
        "the overwrite and the deletion to move the counts",
    )
    url = f"/api/3.0/mlflow/traces/tr-{second.trace_id}/assessments/{created[1]}"
    wait_for(lambda: client.get(url).status_code == 404, 30, "the deleted assessment to go")


def _hours(traces: list[TraceFacts], start: int) -> Counter[int]:
    return Counter(
        t.timestamp_ms - t.timestamp_ms % HOUR for t in traces if t.timestamp_ms >= start
    )


def _check_traffic(client: httpx.Client, body: dict, traces: list[TraceFacts]) -> None:
    volume = _post(client, "traffic-cost/volume", body)
    errors = sum(t.status == "ERROR" for t in traces)
    assert volume["summary"] == {
        "count": TRACES,
        "ok_count": TRACES - errors,
        "error_count": errors,
    }
    series = {p["time_bucket"]: p["count"] for p in volume["time_series"]}
    hours = _hours(traces, body["start_time"])
    assert {k: v for k, v in series.items() if v} == dict(hours)
    assert sorted(series) == list(series), "sorted"
    assert all(b - a == HOUR for a, b in zip(sorted(series), sorted(series)[1:], strict=False))
    assert volume["meta"]["source"] == "stream" and volume["meta"]["watermark"] == max(
        t.timestamp_ms for t in traces
    )
    # a half-hour zone: hours start at :30 UTC, built from minute buckets
    kolkata = _post(client, "traffic-cost/volume", {**body, "timezone": "Asia/Kolkata"})
    offset = int(5.5 * HOUR)
    expected = Counter(t.timestamp_ms - (t.timestamp_ms + offset) % HOUR for t in traces)
    assert {p["time_bucket"]: p["count"] for p in kolkata["time_series"] if p["count"]} == dict(
        expected
    )

    latency = _post(client, "traffic-cost/latency", body)["summary"]
    values = np.array([t.latency_ms for t in traces], dtype=float)
    for q in (50, 90, 99):
        assert_rank_close(latency[f"p{q}_latency"], values, q / 100)
    assert latency["avg_latency"] == pytest.approx(values.mean())
    assert (latency["min_latency"], latency["max_latency"]) == (values.min(), values.max())

    rate = _post(client, "traffic-cost/errors", body)["summary"]
    assert rate == {
        "total_count": TRACES,
        "error_count": errors,
        "error_rate": pytest.approx(100 * errors / TRACES),
    }

    tokens = _post(client, "traffic-cost/tokens", body)
    given = sum(t.input_tokens for t in traces)
    taken = sum(t.output_tokens for t in traces)
    assert tokens["summary"] == {
        "input_tokens": given,
        "output_tokens": taken,
        "total_tokens": given + taken,
    }
    models: dict[str, Counter[str]] = {}
    for trace in traces:
        for name, tokens_in, tokens_out, _ in trace.model_calls:
            m = models.setdefault(name, Counter())
            m.update(calls=1, input_tokens=tokens_in, output_tokens=tokens_out)
    assert {
        m["model"]: (m["call_count"], m["input_tokens"], m["output_tokens"])
        for m in tokens["models"]
    } == {name: (m["calls"], m["input_tokens"], m["output_tokens"]) for name, m in models.items()}
    cost = _post(client, "traffic-cost/cost", body)["summary"]["cost"]
    assert Decimal(cost) == sum(t.cost for t in traces), "genai-prices' figures, to the digit"


def _check_tools(client: httpx.Client, body: dict, traces: list[TraceFacts]) -> None:
    calls: dict[str, list[tuple[bool, float]]] = {}
    users: Counter[str] = Counter()
    for trace in traces:
        for name, failed, duration in trace.tool_calls:
            calls.setdefault(name, []).append((failed, duration))
        users.update({name for name, _, _ in trace.tool_calls})
    discovered = _post(client, "tools/discovery", body)
    found = {tool["tool_name"]: tool for tool in discovered["data"]}
    assert set(found) == set(calls)
    assert discovered["summary"] == {
        "tool_count": len(calls),
        "invocation_count": sum(map(len, calls.values())),
        "trace_count": sum(1 for trace in traces if trace.tool_calls),
    }
    for name, made in calls.items():
        tool, durations = found[name], np.array([d for _, d in made])
        failed = sum(f for f, _ in made)
        assert (tool["trace_count"], tool["invocation_count"], tool["error_count"]) == (
            users[name],
            len(made),
            failed,
        )
        assert tool["error_rate"] == pytest.approx(100 * failed / len(made))
        assert tool["avg_latency"] == pytest.approx(durations.mean())
        for q in (50, 90, 99):
            assert_rank_close(tool[f"p{q}_latency"], durations, q / 100)
    name = max(calls, key=lambda n: len(calls[n]))
    metrics = _post(client, "tools/metrics", {**body, "tool_name": name})
    assert metrics["summary"]["invocation_count"] == len(calls[name])
    per_hour: Counter[int] = Counter()
    traces_per_hour: Counter[int] = Counter()
    for trace in traces:
        hour = trace.timestamp_ms - trace.timestamp_ms % HOUR
        per_hour[hour] += sum(1 for n, _, _ in trace.tool_calls if n == name)
        traces_per_hour[hour] += any(n == name for n, _, _ in trace.tool_calls)
    assert {p["time_bucket"]: p["count"] for p in metrics["time_series"] if p["count"]} == {
        k: v for k, v in per_hour.items() if v
    }
    assert {
        p["time_bucket"]: p["trace_count"] for p in metrics["time_series"] if p["trace_count"]
    } == {k: v for k, v in traces_per_hour.items() if v}


def _check_tags(client: httpx.Client, body: dict, traces: list[TraceFacts]) -> None:
    keys: Counter[str] = Counter()
    values: dict[str, Counter[str]] = {}
    for trace in traces:
        keys.update(trace.tags.keys())
        for key, value in trace.tags.items():
            values.setdefault(key, Counter())[value] += 1
    found = {tag["tag_key"]: tag for tag in _post(client, "tags/discovery", body)["data"]}
    assert {k: t["trace_count"] for k, t in found.items()} == dict(keys)
    for key, tag in found.items():  # exact in memory, a HyperLogLog estimate on Redis
        assert abs(tag["unique_values"] - len(values[key])) <= max(1, 0.02 * len(values[key]))
    metrics = _post(client, "tags/metrics", {**body, "tag_key": "query_type"})
    assert {v["value"]: v["count"] for v in metrics["data"]} == dict(values["query_type"])
    for value in metrics["data"]:
        assert value["percentage"] == pytest.approx(100 * value["count"] / keys["query_type"])
    top = _post(client, "tags/metrics", {**body, "tag_key": "user", "limit": 3})["data"]
    assert [v["count"] for v in top] == sorted(values["user"].values(), reverse=True)[:3]


def _check_assessments(client: httpx.Client, body: dict, traces: list[TraceFacts]) -> None:
    by_name: dict[str, list] = {}
    for trace in traces:
        for name, value in trace.assessments.items():
            by_name.setdefault(name, []).append(value)
    found = {a["assessment_name"]: a for a in _post(client, "assessments/discovery", body)["data"]}
    assert {n: (a["assessment_type"], a["trace_count"]) for n, a in found.items()} == {
        "correct": ("pass-fail", len(by_name["correct"])),
        "score": ("numeric", len(by_name["score"])),
        "helpful": ("boolean", len(by_name["helpful"])),
        "topic": ("string", len(by_name["topic"])),
    }
    assert found["score"]["sources"] == ["LLM_JUDGE"] and found["topic"]["sources"] == ["CODE"]

    def metrics(name: str) -> dict:
        return _post(client, "assessments/metrics", {**body, "assessment_name": name})

    correct = metrics("correct")["summary"]
    failures, total = by_name["correct"].count("no"), len(by_name["correct"])
    assert correct == {
        "total_count": total,
        "failure_count": failures,
        "failure_rate": pytest.approx(100 * failures / total),
    }
    helpful = metrics("helpful")["summary"]
    assert helpful["failure_count"] == by_name["helpful"].count(False)
    score, values = metrics("score")["summary"], np.array(by_name["score"], dtype=float)
    for q in (50, 90, 99):
        assert score[f"p{q}_value"] == pytest.approx(np.percentile(values, q))
    assert score["avg_value"] == pytest.approx(values.mean())
    assert (score["min_value"], score["max_value"]) == (values.min(), values.max())
    topic = metrics("topic")["summary"]
    counted = Counter(by_name["topic"])
    assert topic["unique_values"] == len(counted)
    assert {v["value"]: v["count"] for v in topic["top_values"]} == dict(counted)


def _check_dimensions(client: httpx.Client, body: dict, traces: list[TraceFacts]) -> None:
    dims = [t.dimensions() for t in traces]
    families = set()
    for trace_dims in dims:
        for dim in trace_dims:
            if dim.startswith("count(span.type="):
                families.add("span_count." + dim[16:].partition(")")[0])
            elif dim.startswith("latency>"):
                families.add("latency")
            elif dim.startswith("cost>"):
                families.add("cost")
            else:
                families.add(dim.partition("=")[0])
    found = _post(client, "dimensions/discovery", body)["data"]
    assert {d["name"] for d in found} == families

    def has(dim: str) -> set[int]:
        return {i for i, d in enumerate(dims) if dim in d}

    every = set(range(len(traces)))
    tool = max(
        (n for t in traces for n, _, _ in t.tool_calls), key=lambda n: len(has(f"tools.{n}=used"))
    )
    cases = [
        ({"name": "status", "parameters": {"value": "ERROR"}}, has("status=ERROR")),
        ({"name": f"tools.{tool}", "parameters": {"value": "error"}}, has(f"tools.{tool}=error")),
        (
            {"name": f"tools.{tool}", "parameters": {"value": "success"}},
            has(f"tools.{tool}=used") - has(f"tools.{tool}=error"),
        ),
        (
            {"name": "tags.query_type", "parameters": {"value": "complex"}},
            has("tags.query_type=complex"),
        ),
        (
            {"name": "latency", "parameters": {"threshold": "1000", "operator": "<="}},
            every - has("latency>1000"),
        ),
        (
            {"name": "span_count.TOOL", "parameters": {"threshold": "2", "operator": ">="}},
            has("count(span.type=TOOL)>1"),
        ),
        (
            {"name": "assessment.correct", "parameters": {"value": "no"}},
            has("assessment.correct=no"),
        ),
        (
            {"name": "assessment.score", "parameters": {"threshold": "3", "operator": ">="}},
            {i for i, t in enumerate(traces) if t.assessments.get("score", 0) >= 3},
        ),
        (
            {"name": "latency", "parameters": {"threshold": "1234", "operator": ">"}},
            {i for i, t in enumerate(traces) if t.latency_ms > 1234},
        ),  # not a stream threshold
    ]
    for first, first_set in cases:
        for second, second_set in cases[:4]:
            answer = _post(
                client,
                "dimensions/calculate-npmi",
                {**body, "dimension1": first, "dimension2": second},
            )
            joint = len(first_set & second_set)
            assert (
                answer["dimension1"]["count"],
                answer["dimension2"]["count"],
                answer["intersection"]["count"],
                answer["total_count"],
            ) == (len(first_set), len(second_set), joint, TRACES), (first, second)
            raw, smoothed = npmi(joint, len(first_set), len(second_set), TRACES)
            _assert_score(answer["correlation"]["npmi_score"], raw)
            _assert_score(answer["correlation"]["npmi_smoothed"], smoothed)
            stream = "1234" not in json.dumps(first)
            assert answer["meta"]["source"] == ("stream" if stream else "store")

    answer = _post(
        client,
        "dimensions/correlations",
        {
            **body,
            "dimension": {"name": "status", "parameters": {"value": "ERROR"}},
            "limit": 8,
            "min_support": 3,
        },
    )
    errors = has("status=ERROR")
    expected = []
    partners = {dim for trace_dims in dims for dim in trace_dims}
    for partner in partners:
        both = len(errors & has(partner))
        if partner.startswith("status=") or partner.endswith(")>0") or both < 3:
            continue
        raw, smoothed = npmi(both, len(errors), len(has(partner)), TRACES)
        expected.append((partner, both, raw, smoothed))
    expected.sort(key=lambda e: (-e[2], -e[1]))
    assert len(answer["data"]) == min(8, len(expected))
    for got, (_, both, raw, smoothed) in zip(answer["data"], expected, strict=False):
        assert got["trace_count"] == both
        assert got["npmi_score"] == pytest.approx(raw, abs=1e-9)
        assert got["npmi_smoothed"] == pytest.approx(smoothed, abs=1e-9)
        assert got["percentage_of_slice"] == pytest.approx(100 * both / len(errors))


def _assert_score(got: float | None, expected: float) -> None:
    if math.isnan(expected):
        assert got is None
    else:
        assert got == pytest.approx(expected, abs=1e-9)


def _check_resources(client: httpx.Client, experiment: str, traces: list[TraceFacts]) -> None:
    got = client.get("/api/2.0/mlflow/experiments/get", params={"experiment_id": experiment})
    assert got.status_code == 200 and got.json()["experiment"]["name"] == experiment
    trace = traces[0]
    response = client.get(f"/api/3.0/mlflow/traces/tr-{trace.trace_id}")
    assert response.status_code == 200, response.text
    info = response.json()["trace"]["trace_info"]
    assert (info["request_time"], info["execution_duration"], info["state"]) == (
        rfc3339(trace.timestamp_ms),
        seconds(trace.latency_ms),
        trace.status,
    )
    assert info["trace_location"]["mlflow_experiment"]["experiment_id"] == experiment
    shown = dict(info["tags"])
    assert shown.pop(SPANS_LOCATION) == "TRACKING_STORE" and TRACE_NAME in shown
    del shown[TRACE_NAME]
    assert shown == trace.tags
    full = client.get("/api/3.0/mlflow/traces/get", params={"trace_id": f"tr-{trace.trace_id}"})
    assert full.status_code == 200 and full.json()["trace"]["trace_info"] == info
    assert len(full.json()["trace"]["spans"]) == sum(trace.kinds.values())
    assert [a["feedback"]["value"] for a in info["assessments"]] == [trace.assessments["correct"]]
    assert len(response.json()["trace"]["data"]["spans"]) == sum(trace.kinds.values())


def test_up_keeps_everything_across_a_restart(tmp_path):
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))

    ports = free_ports()
    body = {"experiment_ids": ["kept"], "time_bucket": "day"}

    def count(running: Running) -> int:
        return _post(httpx.Client(base_url=running.api_url), "traffic-cost/volume", body)[
            "summary"
        ]["count"]

    first = start_up(tmp_path / "data", service_env(), ports)
    export_spans(first.otlp_url, sdk_spans(40, seed=21), "kept")
    wait_for(lambda: count(first) == 40, 30, "the first traces")
    assert first.stop() == 0
    second = start_up(tmp_path / "data", service_env(), ports)
    try:
        assert count(second) == 40, "rebuilt from SQLite at start"
        export_spans(second.otlp_url, sdk_spans(25, seed=22), "kept")
        wait_for(lambda: count(second) == 65, 30, "new traces after the restart")
    finally:
        assert second.stop() == 0


def _as_request_and_filter(dim: str) -> tuple[dict, str]:
    """A stream dimension as the API's dimension parameters and as a filter string."""
    if dim.startswith("latency>"):
        t = dim[8:]
        return (
            {"name": "latency", "parameters": {"threshold": t, "operator": ">"}},
            f"trace.execution_time_ms > {t}",
        )
    if dim.startswith("cost>"):
        t = dim[5:]
        return {
            "name": "cost",
            "parameters": {"threshold": t, "operator": ">"},
        }, f"trace.cost > {t}"
    if dim.startswith("count(span.type="):
        kind, _, t = dim[16:].partition(")>")
        return (
            {"name": f"span_count.{kind}", "parameters": {"threshold": t, "operator": ">"}},
            f"count(span.type = '{kind}') > {t}",
        )
    family, _, value = dim.partition("=")
    request = {"name": family, "parameters": {"value": value}}
    if family == "status":
        return request, f"trace.status = '{value}'"
    if family in ("span.type", "model"):
        return request, f"span.{'type' if family == 'span.type' else 'model'} = '{value}'"
    if family.startswith("tools."):
        tool = family[6:]
        if value == "used":
            return request, f"span.tool_name = '{tool}'"
        return request, f"count(span.tool_name = '{tool}' AND span.status = 'ERROR') > 0"
    if family.startswith("tags."):
        return request, f"tags.`{family[5:]}` = '{value}'"
    name = family[11:]
    literal = value if value in ("true", "false") or value.isdigit() else f"'{value}'"
    return request, f"feedback.{name} = {literal}"


def _check_filters(api_url: str, client: httpx.Client, body: dict, traces: list[TraceFacts]):
    """The store (filter language) and the stream (dimensions) agree exactly on every stream
    dimension; search pages through everything; the Python client reads the same."""
    dims = sorted({d for t in traces for d in t.dimensions()})
    tracing = TracingClient(tracking_uri=api_url)
    error = {"name": "status", "parameters": {"value": "ERROR"}}
    for dim in dims:
        request, text = _as_request_and_filter(dim)
        stream = _post(
            client,
            "dimensions/calculate-npmi",
            {**body, "dimension1": request, "dimension2": error},
        )
        store = tracing.calculate_trace_filter_correlation(
            experiment_ids=body["experiment_ids"],
            filter_string1=text,
            filter_string2="trace.status = 'ERROR'",
        )
        assert (
            store.filter_string1_count,
            store.filter_string2_count,
            store.joint_count,
            store.total_count,
        ) == (
            stream["dimension1"]["count"],
            stream["dimension2"]["count"],
            stream["intersection"]["count"],
            stream["total_count"],
        ), (dim, text)
        expected = npmi(
            store.joint_count,
            store.filter_string1_count,
            store.filter_string2_count,
            store.total_count,
        )
        _assert_score(None if math.isnan(store.npmi) else store.npmi, expected[0])

    v3 = client.post(
        "/api/3.0/mlflow/traces/calculate-filter-correlation",
        json={
            "experiment_ids": body["experiment_ids"],
            "filter_string1": "span.type = 'TOOL'",
            "filter_string2": "trace.status = 'ERROR'",
            "base_filter": "tags.query_type = 'complex'",
        },
    )
    complex_ = [t for t in traces if t.tags.get("query_type") == "complex"]
    tool = {t.trace_id for t in complex_ if t.kinds.get("TOOL")}
    failed = {t.trace_id for t in complex_ if t.status == "ERROR"}
    assert {k: v for k, v in v3.json().items() if "count" in k} == {
        "filter1_count": len(tool),
        "filter2_count": len(failed),
        "joint_count": len(tool & failed),
        "total_count": len(complex_),
    }

    slow = {t.trace_id for t in traces if t.latency_ms > 1500}
    seen, token, pages = [], None, 0
    while True:
        page = client.post(
            "/api/3.0/mlflow/traces/search",
            json={
                "experiment_ids": body["experiment_ids"],
                "filter": "trace.execution_time_ms > 1500",
                "order_by": ["execution_time_ms DESC"],
                "max_results": 7,
                "page_token": token,
            },
        ).json()
        seen += [
            (round(float(info["execution_duration"][:-1]) * 1000), info["trace_id"][3:])
            for info in page["traces"]
        ]
        pages += 1
        token = page.get("next_page_token")
        if not token:
            break
    assert {trace_id for _, trace_id in seen} == slow and len(seen) == len(slow)
    assert seen == sorted(seen, reverse=True) and pages == -(-len(slow) // 7)
    found = tracing.search_traces(body["experiment_ids"], "trace.execution_time_ms > 1500")
    assert {info["trace_id"][3:] for info in found} == slow
    with pytest.raises(TraceInsightsError) as refused:
        tracing.calculate_trace_filter_correlation(body["experiment_ids"], "span.type = ", "x")
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "filter_string1" in refused.value.message and "position 12" in refused.value.message


def _check_filter_slice(client: httpx.Client, body: dict, traces: list[TraceFacts]) -> None:
    """correlations with a filter-string slice: every exact dimension value of the traces
    against the slice, from one grouped query."""
    dims = [t.dimensions() for t in traces]
    slice_ = {i for i, t in enumerate(traces) if t.status == "ERROR" and t.kinds.get("TOOL")}
    answer = _post(
        client,
        "dimensions/correlations",
        {
            **body,
            "filter_string": "trace.status = 'ERROR' AND span.type = 'TOOL'",
            "limit": 10,
            "min_support": 2,
        },
    )
    assert answer["dimension"]["count"] == len(slice_) and answer["total_count"] == TRACES
    assert answer["meta"]["source"] == "store"
    expected = []
    for partner in {d for trace_dims in dims for d in trace_dims}:
        having = {i for i, d in enumerate(dims) if partner in d}
        both = len(slice_ & having)
        if partner.endswith(")>0") or both < 2:
            continue
        raw, smoothed = npmi(both, len(slice_), len(having), TRACES)
        expected.append((raw, both, smoothed))
    expected.sort(key=lambda e: (-e[0], -e[1]))
    assert len(answer["data"]) == min(10, len(expected))
    for got, (raw, both, smoothed) in zip(answer["data"], expected, strict=False):
        assert (got["trace_count"], got["npmi_score"], got["npmi_smoothed"]) == (
            both,
            pytest.approx(raw, abs=1e-9),
            pytest.approx(smoothed, abs=1e-9),
        )
