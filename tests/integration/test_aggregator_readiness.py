"""An aggregator process that is alive but cannot consume (here: its Redis is down) keeps its
/health and fails its /ready with the reason, and is ready again once batches apply."""

import sys
import uuid

import httpx
import pytest

from tests.support import ROOT, schema_url, start_aggregator, trace_insights, wait_for

pytestmark = pytest.mark.integration


def test_a_store_outage_makes_the_aggregator_not_ready_until_it_consumes_again(
    collector_factory, kafka_servers, database_url, tmp_path
):
    sys.path.insert(0, str(ROOT / "scripts"))
    from services import Redis, free_port

    redis = Redis(tmp_path / "redis")
    redis.start()
    topic = f"spans-{uuid.uuid4().hex[:12]}"
    _, database = schema_url(database_url)
    assert trace_insights("migrate", database_url=database).returncode == 0
    collector = collector_factory(topic)
    port = free_port()
    aggregator = start_aggregator(
        kafka_bootstrap_servers=kafka_servers,
        redis_url=redis.url,
        database_url=database,
        spans_topic=topic,
        topic_partitions=2,
        consumer_group=f"g-{topic}",
        aggregator_port=port,
    )
    base = f"http://127.0.0.1:{port}"

    def ready() -> httpx.Response | None:
        try:
            return httpx.get(f"{base}/ready", timeout=5)
        except httpx.HTTPError:
            return None

    def send(name: str) -> None:
        now = 1_795_000_000_000_000_000
        span = {
            "traceId": uuid.uuid4().hex,
            "spanId": uuid.uuid4().hex[:16],
            "name": name,
            "startTimeUnixNano": str(now),
            "endTimeUnixNano": str(now + 1000),
        }
        body = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
        assert httpx.post(f"{collector.http_url}/v1/traces", json=body).status_code == 200

    try:
        wait_for(lambda: (r := ready()) is not None and r.status_code == 200, 60, "ready")
        redis.stop()
        send("while redis is down")
        wait_for(lambda: (r := ready()) is not None and r.status_code == 503, 60, "not ready")
        [problem] = ready().json()["problems"]  # type: ignore[union-attr]
        assert "not consuming" in problem and "ConnectionError" in problem, problem
        assert httpx.get(f"{base}/health").status_code == 200, "alive: no restart wanted"
        redis.start()
        wait_for(lambda: (r := ready()) is not None and r.status_code == 200, 60, "ready again")
        assert aggregator.poll() is None
    finally:
        aggregator.terminate()
        aggregator.wait(30)
        redis.stop()
