"""The live feed: a Server-Sent Events subscriber receives every bucket change as it is
applied, in order, and resumes after a disconnect without a gap — through the cluster
deployment (real Kafka, Redis, PostgreSQL) and through ``trace-insights up``."""

import json
import threading
import time
import uuid
from collections import Counter
from decimal import Decimal

import httpx
import pytest

from tests.insights_truth import facts
from tests.support import Running, export_spans, sdk_spans, wait_for

pytestmark = pytest.mark.integration
FEED = "/api/3.0/mlflow/traces/insights/stream"
MINUTE = 60_000


class Subscriber:
    """Reads the feed in a thread; ``events`` are (id, data) in arrival order."""

    def __init__(self, api_url: str, experiment: str, last_event_id: str | None = None) -> None:
        self.events: list[tuple[str, dict]] = []
        self._stop = threading.Event()
        headers = {"last-event-id": last_event_id} if last_event_id else {}
        params = {
            "experiment_ids": experiment,
            "time_bucket": "minute",
            "metrics": "volume,latency,cost,tools",
        }
        self._client = httpx.Client(base_url=api_url, timeout=None)
        self._response = self._client.stream("GET", FEED, params=params, headers=headers)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            self._follow()
        except (httpx.HTTPError, RuntimeError, OSError):
            if not self._stop.is_set():
                raise

    def _follow(self) -> None:
        with self._response as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            event: dict[str, str] = {}
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if not line:
                    if "data" in event:
                        self.events.append((event["id"], json.loads(event["data"])))
                    event = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    event[name] = value

    def close(self) -> None:
        self._stop.set()
        self._client.close()

    def latest(self) -> dict[int, int]:
        """Per minute bucket, the count of the last event about it."""
        return {data["time_bucket"]: data["volume"]["count"] for _, data in self.events}


def test_subscribers_see_every_change_in_order_and_resume(deployment: Running):
    experiment = f"feed-{uuid.uuid4().hex[:8]}"
    client = httpx.Client(base_url=deployment.api_url, timeout=30)
    now = time.time_ns()
    first = sdk_spans(40, seed=41, end_ns=lambda i: now - (i % 3) * 61 * 1_000_000_000)
    export_spans(deployment.otlp_url, first[:5], experiment)  # registers the experiment
    body = {"experiment_ids": [experiment]}
    volume = "/api/3.0/mlflow/traces/insights/traffic-cost/volume"
    wait_for(lambda: client.post(volume, json=body).status_code == 200, 30, "the experiment")
    subscriber = Subscriber(deployment.api_url, experiment)
    time.sleep(0.5)
    export_spans(deployment.otlp_url, first[5:], experiment)
    truth = Counter(t.timestamp_ms - t.timestamp_ms % MINUTE for t in facts(first))
    wait_for(lambda: subscriber.latest() == dict(truth), 30, "every bucket's final count")
    ids = [event_id for event_id, _ in subscriber.events]
    assert len(ids) == len(set(ids)), "each change is sent once"
    last_seen = ids[-1]
    latest_cost = {}
    for _, data in subscriber.events:
        assert data["latency"]["max_latency"] >= data["latency"]["min_latency"]
        assert sum(tool["count"] for tool in data["tools"]) >= 0
        latest_cost[data["time_bucket"]] = data["cost"]
    spent = client.post(
        "/api/3.0/mlflow/traces/insights/traffic-cost/cost",
        json={**body, "start_time": min(truth), "end_time": max(truth) + MINUTE},
    ).json()["summary"]
    assert sum(Decimal(c["cost"] or 0) for c in latest_cost.values()) == Decimal(spent["cost"])
    assert sum(c["unpriced_calls"] for c in latest_cost.values()) == spent["unpriced_calls"]
    subscriber.close()

    # while nobody listens, more traffic; a reconnect with Last-Event-ID gets exactly that
    later = sdk_spans(12, seed=42)
    export_spans(deployment.otlp_url, later, experiment)
    expected = truth + Counter(t.timestamp_ms - t.timestamp_ms % MINUTE for t in facts(later))
    wait_for(
        lambda: client.post(volume, json=body).json()["summary"]["count"] == 52,
        30,
        "the later traces applied",
    )
    resumed = Subscriber(deployment.api_url, experiment, last_event_id=last_seen)
    later_buckets = {t.timestamp_ms - t.timestamp_ms % MINUTE for t in facts(later)}
    wait_for(lambda: set(resumed.latest()) >= later_buckets, 30, "the missed changes")
    assert all(resumed.latest()[b] == expected[b] for b in later_buckets)
    assert not {event_id for event_id, _ in resumed.events} & set(ids), "nothing resent"
    resumed.close()

    bad = client.get(
        FEED, params={"experiment_ids": experiment}, headers={"last-event-id": "not-a-cursor"}
    )
    assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["message"]
