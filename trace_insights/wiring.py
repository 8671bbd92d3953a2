"""Opens every backend from the settings: the one place that decides memory or Redis, the
in-process bus or Kafka, SQLite or PostgreSQL. Each entry point (the three servers, ``up`` and
the CLI's commands) asks here, so a backend choice is made the same way everywhere.

Embedded (``up``): without ``TRACE_INSIGHTS_REDIS_URL`` the aggregates live in memory (rebuilt
from the database at start), and without Kafka servers the spans travel on a ``LocalBus``.
The cluster processes require Redis and Kafka and say so when they are missing.

A service's modules are imported where it is composed, so each process loads only its own
service (the aggregator never imports the API's web stack).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from trace_insights.bus import LocalBus
from trace_insights.core.settings import Settings
from trace_insights.kafka_topic import ensure_topic
from trace_insights.stores.base import NO_FENCE, AggregateStore
from trace_insights.stores.memory import MemoryStore
from trace_insights.stores.redis import RedisStore
from trace_insights.truth.database import create_engine, migrate

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from trace_insights.aggregator.deltas import Policy
    from trace_insights.aggregator.source import Source
    from trace_insights.api.context import ChangePublisher
    from trace_insights.collector.producer import SpanProducer


def open_engine(settings: Settings, migrate_now: bool | None = None) -> sa.Engine:
    """The source of truth; migrated first when asked (``up`` always is)."""
    engine = create_engine(settings.database())
    if settings.migrate_on_start if migrate_now is None else migrate_now:
        migrate(engine)
    return engine


def open_store(settings: Settings, embedded: bool = False) -> AggregateStore:
    if settings.redis_url or not embedded:
        return RedisStore(settings.require_redis(), cluster=settings.redis_cluster)
    return MemoryStore()  # rebuilt from the truth by the aggregator's repairer


def policy(settings: Settings) -> Policy:
    """What the aggregates keep, and for how long."""
    from trace_insights.aggregator.deltas import Policy

    return Policy(
        ttl_ms=settings.retention_ms(),
        tag_value_cap=settings.tag_value_cap,
        tool_name_cap=settings.tool_name_cap,
    )


def ensure_spans_topic(settings: Settings) -> str:
    """The Kafka servers, once the spans topic exists."""
    servers = settings.require_kafka()
    ensure_topic(
        servers.split(","),
        settings.spans_topic,
        settings.topic_partitions,
        settings.topic_replication_factor,
    )
    return servers


def open_source(settings: Settings, bus: LocalBus | None = None) -> Source:
    """What an aggregator reads: the bus, else a member of the Kafka consumer group."""
    from trace_insights.aggregator.source import KafkaSource

    if bus is not None:
        return bus
    return KafkaSource(
        ensure_spans_topic(settings),
        settings.spans_topic,
        settings.consumer_group,
        settings.max_poll_records,
        settings.consumer_instance_id,
        settings.consumer_session_timeout_ms,
    )


def open_producer(settings: Settings, bus: LocalBus | None = None) -> SpanProducer:
    """Where the collector writes spans, started."""
    from trace_insights.collector.producer import BusSpanProducer, KafkaSpanProducer

    if bus is not None:
        return BusSpanProducer(bus)
    producer = KafkaSpanProducer(settings)
    producer.start()
    return producer


def open_publisher(settings: Settings, bus: LocalBus | None = None) -> ChangePublisher:
    """Where the API sends assessments."""
    from trace_insights.api.publisher import BusPublisher, KafkaPublisher

    return BusPublisher(bus) if bus is not None else KafkaPublisher(settings)


def open_bus(settings: Settings, engine: sa.Engine, store: AggregateStore) -> LocalBus | None:
    """``up``'s in-process bus when no Kafka servers are set, resuming past what the database
    and the store already hold (a persistent store may be ahead of the truth)."""
    from trace_insights.aggregator.truth.writer import last_offsets

    if settings.kafka_bootstrap_servers:
        return None
    with engine.connect() as connection:
        held = last_offsets(connection)
    for experiment in store.experiments():
        for partition, fence in store.fences(experiment).items():
            held[partition] = max(held.get(partition, NO_FENCE), fence)
    return LocalBus(settings.topic_partitions, {p: offset + 1 for p, offset in held.items()})


def run_collector(settings: Settings) -> None:
    from trace_insights.collector import app as collector_app

    collector_app.run(
        settings, open_producer(settings)
    )  # the collector closes it once it has flushed


def run_aggregator(settings: Settings) -> None:
    from trace_insights.aggregator import app as aggregator_app

    with contextlib.ExitStack() as opened:  # closed in reverse, each whatever the others do
        engine = open_engine(settings)
        opened.callback(engine.dispose)
        store = open_store(settings)
        opened.callback(store.close)
        source = open_source(settings)
        opened.callback(source.close)
        aggregator_app.run(settings, source, engine, store, policy(settings))


def run_api(settings: Settings) -> None:
    from trace_insights.api import server
    from trace_insights.api.context import Context

    with contextlib.ExitStack() as opened:
        engine = open_engine(settings)
        opened.callback(engine.dispose)
        store = open_store(settings)
        opened.callback(store.close)
        publisher = open_publisher(settings)
        opened.callback(publisher.close)
        spans = open_span_receiver(settings)
        opened.callback(spans.close)  # after the server stopped: flushes what Kafka owes
        context = Context(
            settings=settings, store=store, engine=engine, publisher=publisher, spans=spans.app
        )
        server.run(context)


@dataclass
class SpanReceiver:
    """The collector's OTLP/HTTP receiver over its own producer, for a process that serves it
    beside something else (the API: MLflow's client logs spans to its tracking server)."""

    app: ASGIApp
    close: Callable[[], None]


def open_span_receiver(settings: Settings) -> SpanReceiver:
    from trace_insights.collector.ingest import Ingestor
    from trace_insights.collector.otlp_http import create_app

    producer = open_producer(settings)
    return SpanReceiver(create_app(Ingestor.over(settings, producer)), producer.close)
