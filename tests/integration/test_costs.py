"""Cost through the product's own doors: overrides created with the prices API, spans sent
with the SDK's OTLP exporter, and the answers of ``traffic-cost/cost``, ``traffic-cost/tokens``
and ``tags/metrics`` equal to genai-prices' figures computed here, on both deployments."""

import uuid
from collections import Counter
from decimal import Decimal

import httpx
import pytest

from tests.contract.test_cost_contract import BASE_NS, SWITCH_NS, _expected_cost, _traces
from tests.support import export_spans, wait_for
from trace_insights.core import money

pytestmark = pytest.mark.integration

INSIGHTS = "/api/3.0/mlflow/traces/insights"


def test_cost_answers_equal_genai_prices(deployment):
    api = f"{deployment.api_url}{INSIGHTS}"
    for pattern, valid_from_ns, rates in (
        ("acme-llm-*", 0, {"input_mtok": "1", "output_mtok": 2}),
        ("ACME-LLM-7B", SWITCH_NS, {"input_mtok": "4", "output_mtok": "8"}),
    ):
        body = {"model_pattern": pattern, "prices": rates, "valid_from_ms": valid_from_ns // 10**6}
        reply = httpx.post(f"{api}/prices", json=body)
        assert reply.status_code == 200, reply.text
    listed = httpx.get(f"{api}/prices").json()["overrides"]
    assert [o["prices"] for o in listed[-2:]] == [
        {"input_mtok": "1", "output_mtok": "2"},
        {"input_mtok": "4", "output_mtok": "8"},
    ]
    bad = httpx.post(f"{api}/prices", json={"model_pattern": "x", "prices": {"input_mtok": -1}})
    assert bad.status_code == 400 and "prices.input_mtok" in bad.json()["message"]

    experiment = f"c{uuid.uuid4().hex[:8]}"
    spans, calls = _traces(24)
    export_spans(deployment.otlp_url, spans, experiment)
    frame = {
        "experiment_ids": [experiment],
        "start_time": BASE_NS // 10**6,
        "end_time": BASE_NS // 10**6 + 86_400_000,
        "time_bucket": "day",
    }

    def cost() -> dict:
        reply = httpx.post(f"{api}/traffic-cost/cost", json=frame)
        return reply.json() if reply.status_code == 200 else {}

    total, by_model, by_user, unpriced = 0, Counter(), Counter(), 0
    for _, user, start_ns, call in calls:
        found = _expected_cost(start_ns, call)
        if found is None:
            unpriced += 1
        else:
            total += found
            by_model[call[0]] += found
            by_user[user] += found

    def counted() -> bool:
        summary = cost().get("summary", {})
        return summary.get("unpriced_calls") == unpriced and summary["cost"] == money.text(total)

    wait_for(counted, 60, "every call")
    answer = cost()
    assert Decimal(answer["summary"]["cost"]) == money.usd(total)
    models = {m["model"]: m for m in answer["models"]}
    for model, found in by_model.items():
        assert Decimal(models[model]["cost"]) == money.usd(found), model
    assert models["mystery-model"]["cost"] is None  # unknown is not $0
    assert answer["meta"]["currency"] == "USD"
    assert answer["meta"]["unpriced_models"] == [{"model": "mystery-model", "call_count": unpriced}]
    providers = {p["provider"]: p for p in answer["providers"]}
    assert providers["acme"] == {
        "provider": "acme",
        "call_count": unpriced,
        "cost": None,
        "unpriced_calls": unpriced,
    }

    tokens = httpx.post(f"{api}/traffic-cost/tokens", json=frame).json()
    assert {m["model"]: m["cost"] for m in tokens["models"]} == {
        m["model"]: m["cost"] for m in answer["models"]
    }
    assert tokens["meta"]["unpriced_models"] == answer["meta"]["unpriced_models"]
    users = httpx.post(f"{api}/tags/metrics", json={**frame, "tag_key": "user"}).json()
    assert {v["value"]: Decimal(v["cost"]) for v in users["data"]} == {
        user: money.usd(found) for user, found in by_user.items()
    }

    quote = {"model": "gpt-4o", "provider": "openai", "input_tokens": 1000, "output_tokens": 200}
    assert httpx.post(f"{api}/prices/quote", json=quote).json() == {
        "cost": "0.0045",
        "currency": "USD",
        "priced_by": "genai-prices openai/gpt-4o",
    }
    for override in listed[-2:]:
        assert httpx.delete(f"{api}/prices/{override['override_id']}").status_code == 200
    assert httpx.get(f"{api}/prices/{listed[-1]['override_id']}").status_code == 404
