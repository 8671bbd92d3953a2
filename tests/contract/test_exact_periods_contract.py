"""Local days over a range whose hour buckets have expired: the stored UTC days cannot place a
local midnight, so the traffic figures come exactly from the finalized traces
(``meta.source = "store"``), on SQLite and PostgreSQL alike; the other insights label each
period where its buckets start. Such a request once answered UTC days labelled as local
midnights (issue 15)."""

import time
from collections import Counter, defaultdict
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from tests.support import publish_to_bus, schema_url, sdk_spans
from tests.unit.conftest import embedded

INSIGHTS = "/api/3.0/mlflow/traces/insights"
ZONE = ZoneInfo("America/New_York")
DAY_MS = 86_400_000
# hours are kept two days, days for ever: ten days back, only UTC days are stored
RETENTION = {"ttl_minute_hours": 1, "ttl_hour_days": 2, "ttl_day_days": 1e6}


@pytest.fixture(params=["sqlite", "postgres"])
def overrides(request: pytest.FixtureRequest) -> dict[str, object]:
    if request.param == "sqlite":
        return RETENTION
    _, url = schema_url(request.getfixturevalue("database_url"))
    return {**RETENTION, "database_url": url}


def _local_midnight(ms: int) -> int:
    moment = datetime.fromtimestamp(ms / 1000, ZONE)
    return int(datetime(moment.year, moment.month, moment.day, tzinfo=ZONE).timestamp() * 1000)


def test_local_days_past_the_hour_retention_are_answered_exactly_from_the_traces(
    tmp_path, overrides
):
    first = _local_midnight(int(time.time() * 1000) - 12 * DAY_MS)
    step_ns = 4 * DAY_MS * 1_000_000 // 80  # 80 traces over four local days
    spans = sdk_spans(80, seed=31, end_ns=lambda i: first * 1_000_000 + (i + 1) * step_ns)
    members: dict[int, list] = defaultdict(list)
    for span in spans:
        members[span.context.trace_id].append(span)
    by_day: dict[int, list[int]] = defaultdict(list)
    errors: Counter[int] = Counter()
    for trace in members.values():
        start_ms = min(s.start_time for s in trace) // 1_000_000
        day = _local_midnight(start_ms)
        # MLflow's arithmetic: each end floored to whole milliseconds, then subtracted
        by_day[day].append(max(s.end_time for s in trace) // 1_000_000 - start_ms)
        root = next(s for s in trace if s.parent is None)
        errors[day] += root.status.status_code.name == "ERROR"
    every = [latency for latencies in by_day.values() for latency in latencies]
    with embedded(tmp_path, **overrides) as api:
        publish_to_bus(api.bus, spans, "old")
        api.drain()
        body = {
            "experiment_ids": ["old"],
            "time_bucket": "day",
            "timezone": "America/New_York",
            "start_time": first - DAY_MS,
            "end_time": first + 5 * DAY_MS,
        }

        def post(path: str, **changes: object) -> dict:
            reply = api.client.post(f"{INSIGHTS}/{path}", json={**body, **changes})
            assert reply.status_code == 200, reply.text
            return reply.json()

        volume = post("traffic-cost/volume")
        assert volume["meta"]["source"] == "store"
        assert (volume["meta"]["start_time"], volume["meta"]["end_time"]) == (
            body["start_time"],
            body["end_time"],
        )
        counted = {p["time_bucket"]: p["count"] for p in volume["time_series"] if p["count"]}
        assert counted == {day: len(latencies) for day, latencies in by_day.items()}
        assert all(
            _local_midnight(p["time_bucket"]) == p["time_bucket"] for p in volume["time_series"][1:]
        )
        assert volume["summary"]["count"] == 80

        failed = post("traffic-cost/errors")
        assert {
            p["time_bucket"]: p["error_count"] for p in failed["time_series"] if p["total_count"]
        } == {day: errors[day] for day in by_day}

        latency = post("traffic-cost/latency")
        for point in latency["time_series"]:
            values = by_day.get(point["time_bucket"])
            if values:
                for q in (50, 90, 99):
                    assert point[f"p{q}_latency"] == pytest.approx(np.percentile(values, q))
                assert (point["min_latency"], point["max_latency"]) == (min(values), max(values))
        summary = latency["summary"]
        assert summary["p90_latency"] == pytest.approx(np.percentile(every, 90))
        assert summary["avg_latency"] == pytest.approx(np.mean(every))

        tokens = post("traffic-cost/tokens")
        stream = post("traffic-cost/tokens", timezone="UTC")
        assert stream["meta"]["source"] == "stream", "UTC days are stored"
        assert tokens["summary"] == stream["summary"]
        assert tokens["models"] == stream["models"]
        assert tokens["meta"]["unpriced_models"] == stream["meta"]["unpriced_models"]
        cost = post("traffic-cost/cost")
        streamed = post("traffic-cost/cost", timezone="UTC")
        assert (cost["meta"]["source"], streamed["meta"]["source"]) == ("store", "stream")
        for part in ("summary", "models", "providers"):
            assert cost[part] == streamed[part], part
        assert cost["meta"]["unpriced_models"] == streamed["meta"]["unpriced_models"]
        assert (
            sum(p["unpriced_calls"] for p in cost["time_series"])
            == (cost["summary"]["unpriced_calls"])
        )
        spent = sum(Decimal(p["cost"] or 0) for p in cost["time_series"])
        assert spent == Decimal(cost["summary"]["cost"]) > 0, "the days add up to the digit"

        name = post("tools/discovery")["data"][0]["tool_name"]
        tools = post("tools/metrics", tool_name=name)  # from the stored buckets, labelled truly
        labels = [p["time_bucket"] for p in tools["time_series"]]
        assert all(label % DAY_MS == 0 for label in labels[1:]), "UTC midnights"
