"""The aggregator process: one member of the consumer group, until SIGINT/SIGTERM."""

import logging
import signal
import threading

from trace_insights.aggregator.deltas import Policy
from trace_insights.aggregator.loop import Aggregator
from trace_insights.aggregator.metrics import serve
from trace_insights.aggregator.source import KafkaSource
from trace_insights.core.buckets import Resolution
from trace_insights.core.settings import Settings
from trace_insights.kafka_topic import ensure_topic
from trace_insights.stores.base import AggregateStore
from trace_insights.stores.redis import RedisStore
from trace_insights.truth.database import create_engine, migrate

log = logging.getLogger(__name__)


def policy(settings: Settings) -> Policy:
    return Policy(
        ttl_ms={
            Resolution.MINUTE: int(settings.ttl_minute_hours * 3_600_000),
            Resolution.HOUR: int(settings.ttl_hour_days * 86_400_000),
            Resolution.DAY: int(settings.ttl_day_days * 86_400_000),
        },
        tag_value_cap=settings.tag_value_cap,
    )


def open_store(settings: Settings) -> AggregateStore:
    return RedisStore(settings.require_redis(), cluster=settings.redis_cluster)


def run(settings: Settings) -> None:
    servers = settings.require_kafka()
    engine = create_engine(settings.database())
    if settings.migrate_on_start:
        migrate(engine)
    ensure_topic(
        servers.split(","),
        settings.spans_topic,
        settings.topic_partitions,
        settings.topic_replication_factor,
    )
    source = KafkaSource(
        servers,
        settings.spans_topic,
        settings.consumer_group,
        settings.max_poll_records,
        settings.consumer_instance_id,
        settings.consumer_session_timeout_ms,
    )
    store = open_store(settings)
    aggregator = Aggregator(
        source, engine, store, policy(settings), int(settings.trace_idle_timeout_s * 1000)
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    server = serve(aggregator.liveness, settings.host, settings.aggregator_port)
    log.info(
        "aggregator running",
        extra={"fields": {"group": settings.consumer_group, "port": server.server_address[1]}},
    )
    try:
        aggregator.run(stop)
    finally:
        server.shutdown()
        source.close()
        store.close()
        engine.dispose()
