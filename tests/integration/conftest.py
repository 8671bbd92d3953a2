"""Fixtures of the integration tests."""

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import (
    Running,
    free_ports,
    schema_url,
    service_env,
    start_aggregator,
    start_collector,
    start_process,
    start_up,
    trace_insights,
)

IDLE_S = 3  # a rootless trace is finalized after this much silence (tests wait that long)
# the test deployments deliver webhooks to receivers on this machine


@pytest.fixture(params=["services", "up"])
def deployment(request: pytest.FixtureRequest, tmp_path) -> Iterator[Running]:
    with deployed(request.param, request, tmp_path) as running:
        yield running


@contextlib.contextmanager
def deployed(kind: str, request: pytest.FixtureRequest, path: Path) -> Iterator[Running]:
    """``up`` over ``path``, or the cluster processes (collector, aggregator, API) on the
    test servers with a topic and a schema of their own."""
    if kind == "up":
        running = start_up(
            path / "data", service_env(trace_idle_timeout_s=IDLE_S, webhook_allow_private=True)
        )
        yield running
        assert running.stop() == 0, "up stops cleanly on SIGINT"
        return
    servers = request.getfixturevalue("kafka_servers")
    redis_url = request.getfixturevalue("redis_url")
    _, database = schema_url(request.getfixturevalue("database_url"))
    assert trace_insights("migrate", database_url=database).returncode == 0
    topic = f"spans-{uuid.uuid4().hex[:12]}"
    settings = dict(
        kafka_bootstrap_servers=servers,
        redis_url=redis_url,
        database_url=database,
        spans_topic=topic,
        topic_partitions=4,
        trace_idle_timeout_s=IDLE_S,
        webhook_allow_private=True,
    )
    collector = start_collector(servers, topic)
    aggregator = start_aggregator(consumer_group=f"g-{topic}", **settings)
    api_port = free_ports()[0]
    api = start_process(
        ["api", "--api-port", str(api_port)], service_env(**settings), api_port, api_port
    )
    yield Running(api.process, api.api_url, collector.http_url)
    assert api.stop() == 0
    aggregator.terminate()
    aggregator.wait(30)
    collector.stop()
