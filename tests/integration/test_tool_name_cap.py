"""An experiment whose agents call more tool names than the cap (``TOOL_NAME_CAP``, 200) keeps
its aggregates bounded: the first 200 names are counted by name, the rest together, reported
as overflow; a question about a name past the cap is answered exactly from the source of
truth — over the cluster deployment and ``up`` alike, spans sent by the SDK's exporter."""

import uuid
from collections import Counter

import httpx
import pytest

from tests.support import Running, export_spans, tool_traces, traces_counted, wait_for

pytestmark = pytest.mark.integration
INSIGHTS = "/api/3.0/mlflow/traces/insights"
CAP, NAMES, TRACES = 200, 260, 260


def _post(running: Running, path: str, body: dict) -> dict:
    reply = httpx.post(f"{running.api_url}{INSIGHTS}/{path}", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_tool_names_past_the_cap_are_counted_together_and_asked_of_the_truth(
    deployment: Running,
):
    experiment = f"tools-{uuid.uuid4().hex[:8]}"
    names = [f"tool_{n:03d}" for n in range(NAMES)]
    spans, made = tool_traces(TRACES, names, ["alice"], seed=0)
    calls = Counter(tool for _, trace_calls in made for tool, _ in trace_calls)
    assert len(calls) == NAMES  # every name is called
    export_spans(deployment.otlp_url, spans, experiment)
    wait_for(lambda: traces_counted(deployment.api_url, experiment) == TRACES, 120, "the traces")
    body = {"experiment_ids": [experiment]}

    tools = _post(deployment, "tools/discovery", body)
    admitted = {tool["tool_name"] for tool in tools["data"]}
    assert len(admitted) == CAP
    assert {tool["tool_name"]: tool["invocation_count"] for tool in tools["data"]} == {
        name: calls[name] for name in admitted
    }
    assert tools["summary"]["invocation_count"] == sum(calls.values())
    past = [trace_calls for _, trace_calls in made if {t for t, _ in trace_calls} - admitted]
    assert tools["meta"]["cardinality_overflow"] == [{"tag_key": None, "other_count": len(past)}]

    discovered = {d["name"] for d in _post(deployment, "dimensions/discovery", body)["data"]}
    assert "tools.__other__" not in discovered
    assert {d for d in discovered if d.startswith("tools.")} == {f"tools.{t}" for t in admitted}

    ok = {"name": "status", "parameters": {"value": "OK"}}
    for name, source in ((min(admitted), "stream"), (min(set(names) - admitted), "store")):
        used = {"name": f"tools.{name}", "parameters": {"value": "used"}}
        answer = _post(
            deployment, "dimensions/calculate-npmi", {**body, "dimension1": used, "dimension2": ok}
        )
        traces_using = sum(any(t == name for t, _ in trace_calls) for _, trace_calls in made)
        assert answer["meta"]["source"] == source, name
        assert (answer["dimension1"]["count"], answer["total_count"]) == (traces_using, TRACES)
