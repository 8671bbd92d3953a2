"""A Redis that restarts empty mid-stream is repaired without an operator: the aggregators
rebuild what it lost from PostgreSQL (one of them per experiment) and go on from the fences the
rebuild wrote; meanwhile every answer that is not whole says so in ``meta`` (issue 14)."""

import os
import sys
import threading
import time
import uuid

import httpx
import pytest

from tests.support import (
    ROOT,
    schema_url,
    service_env,
    start_aggregator,
    start_collector,
    start_process,
    trace_insights,
    wait_for,
)

pytestmark = pytest.mark.integration
VOLUME = "/api/3.0/mlflow/traces/insights/traffic-cost/volume"
OLD, LIVE = 300, 3000  # traces of an experiment no traffic reaches after the restart, and not
BATCH = 30


def _send(otlp_url: str, experiment: str, count: int) -> None:
    now = time.time_ns()
    spans = [
        {
            "traceId": uuid.uuid4().hex,
            "spanId": os.urandom(8).hex(),
            "name": "root",
            "startTimeUnixNano": str(now),
            "endTimeUnixNano": str(now + 3_000_000),
            "status": {"code": 1},
        }
        for _ in range(count)
    ]
    body = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
    reply = httpx.post(
        f"{otlp_url}/v1/traces",
        json=body,
        headers={"x-mlflow-experiment-id": experiment},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text


def test_a_redis_restarted_empty_is_rebuilt_and_no_unflagged_answer_is_short(
    kafka_servers, database_url, tmp_path
):
    sys.path.insert(0, str(ROOT / "scripts"))
    from services import Redis, free_port

    redis = Redis(tmp_path / "redis")
    redis.start()
    _, database = schema_url(database_url)
    assert trace_insights("migrate", database_url=database).returncode == 0
    topic = f"spans-{uuid.uuid4().hex[:12]}"
    settings = dict(
        kafka_bootstrap_servers=kafka_servers,
        redis_url=redis.url,
        database_url=database,
        spans_topic=topic,
        topic_partitions=4,
    )
    collector = start_collector(kafka_servers, topic)
    aggregators = [start_aggregator(consumer_group=f"g-{topic}", **settings) for _ in range(2)]
    api_port = free_port()
    api = start_process(
        ["api", "--api-port", str(api_port)], service_env(**settings), api_port, api_port
    )
    old, live = f"old-{uuid.uuid4().hex[:6]}", f"live-{uuid.uuid4().hex[:6]}"
    expected = {old: OLD, live: LIVE}
    answers: dict[str, list[tuple[float, int, bool]]] = {old: [], live: []}
    stop = threading.Event()

    def volume(experiment: str) -> tuple[int, list[str]] | None:
        try:
            reply = httpx.post(
                f"{api.api_url}{VOLUME}", json={"experiment_ids": [experiment]}, timeout=10
            )
        except httpx.HTTPError:
            return None
        if reply.status_code != 200:  # the store is down: not an answer (issue 15's 503)
            return None
        body = reply.json()
        return int(body["summary"]["count"]), body["meta"]["incomplete"]

    def poll() -> None:
        while not stop.is_set():
            for experiment in (old, live):
                answer = volume(experiment)
                if answer is not None:
                    count, incomplete = answer
                    answers[experiment].append((time.monotonic(), count, bool(incomplete)))
            time.sleep(0.05)

    try:
        for _ in range(OLD // BATCH):
            _send(collector.http_url, old, BATCH)
        wait_for(lambda: (v := volume(old)) is not None and v[0] == OLD, 120, "the old traces")
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        sent = 0
        restarted_at = 0.0
        while sent < LIVE:
            _send(collector.http_url, live, BATCH)
            sent += BATCH
            if not restarted_at and sent >= LIVE // 3:
                redis.process.kill()  # type: ignore[union-attr]
                redis.process.wait()  # type: ignore[union-attr]
                time.sleep(1.0)
                redis.start()  # the same port, empty: no persistence (derived state only)
                restarted_at = time.monotonic()
            time.sleep(0.01)

        def repaired() -> bool:
            answers_now = {e: volume(e) for e in expected}
            return all(a is not None and a == (expected[e], []) for e, a in answers_now.items())

        wait_for(repaired, 120, "the counts to equal the ground truth again, whole")
        recovered_s = time.monotonic() - restarted_at
    finally:
        stop.set()
        api.stop()
        for aggregator in aggregators:
            aggregator.terminate()
            aggregator.wait(30)
        collector.stop()
        redis.stop()
    for experiment, seen in answers.items():
        flagged = [count for _, count, incomplete in seen if incomplete]
        whole = [count for _, count, incomplete in seen if not incomplete]
        assert whole == sorted(whole), f"{experiment}: an unflagged answer went back"
        assert max(whole) <= expected[experiment], "never more than was sent"
        print(
            f"{experiment}: {len(seen)} answers, {len(flagged)} flagged incomplete "
            f"(lowest {min(flagged, default=None)}), recovered {recovered_s:.1f} s "
            "after the restart"
        )
