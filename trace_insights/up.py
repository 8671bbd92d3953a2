"""``trace-insights up``: collector, aggregator and API in one process.

With no server URLs configured it needs nothing running: an in-process bus stands in for
Kafka, an in-memory store for Redis, SQLite (under the data directory) for PostgreSQL. The
aggregates are rebuilt from the database at start, so a restart keeps everything the
aggregator had applied; the bus continues after the offsets the database holds. Each URL
that is set (``TRACE_INSIGHTS_KAFKA_BOOTSTRAP_SERVERS``, ``…_REDIS_URL``, ``…_DATABASE_URL``)
replaces its embedded stand-in.

Durability in the embedded mode: an export is acknowledged once it is on the in-process bus;
a graceful stop drains the bus into the database first, a crash loses what was not yet
applied (seconds at most). Configure Kafka for acknowledged-means-durable.
"""

import asyncio
import logging
import threading
import time
from dataclasses import dataclass

import sqlalchemy as sa

from trace_insights.aggregator.app import policy
from trace_insights.aggregator.loop import Aggregator
from trace_insights.aggregator.source import KafkaSource, Source
from trace_insights.aggregator.truth.writer import last_offsets
from trace_insights.api.alerts.worker import AlertWorker
from trace_insights.api.app import create_app
from trace_insights.api.context import AssessmentPublisher, Context
from trace_insights.api.publisher import BusPublisher, KafkaPublisher
from trace_insights.bus import LocalBus
from trace_insights.collector.app import Collector
from trace_insights.collector.producer import BusSpanProducer, KafkaSpanProducer, SpanProducer
from trace_insights.core.settings import Settings
from trace_insights.generate import Traffic, send
from trace_insights.kafka_topic import ensure_topic
from trace_insights.serving import http_server, serve_until, stop_on_signals
from trace_insights.stores.base import AggregateStore
from trace_insights.stores.memory import MemoryStore
from trace_insights.stores.redis import RedisStore
from trace_insights.truth.database import create_engine, migrate

log = logging.getLogger(__name__)

_DRAIN_S = 30.0
DEMO_EXPERIMENT = "0"


@dataclass
class _Pipeline:
    producer: SpanProducer
    source: Source
    publisher: AssessmentPublisher
    bus: LocalBus | None


def run(settings: Settings, demo: bool = False) -> None:
    asyncio.run(_serve(settings, demo))


async def _serve(settings: Settings, demo: bool) -> None:
    engine = create_engine(settings.database())
    migrate(engine)
    store: AggregateStore
    if settings.redis_url:
        store = RedisStore(settings.redis_url, cluster=settings.redis_cluster)
    else:
        store = MemoryStore()  # rebuilt from the truth by the aggregator's repairer
    pipeline = _pipeline(settings, engine, store)
    aggregator = Aggregator(
        pipeline.source, engine, store, policy(settings), int(settings.trace_idle_timeout_s * 1000)
    )
    halt = threading.Event()
    worker = threading.Thread(
        target=aggregator.run, args=(halt,), kwargs={"poll_timeout_ms": 100},
        name="aggregator", daemon=True,
    )  # fmt: skip
    worker.start()

    def aggregating() -> list[str]:
        """The aggregator thread's readiness, reported by the API's /ready."""
        if not worker.is_alive() and not halt.is_set():
            return ["the aggregator thread has stopped"]
        return aggregator.liveness.problems()

    collector = Collector(settings, pipeline.producer)
    context = Context(settings=settings, store=store, engine=engine, publisher=pipeline.publisher,
                      checks=[aggregating])  # fmt: skip
    api = http_server(create_app(context), settings.host, settings.api_port)
    alerts = AlertWorker(context)
    alerts.start()
    signalled, shutdown = asyncio.Event(), asyncio.Event()
    stop_on_signals(signalled)
    await collector.start_grpc()
    demo_stop = threading.Event()
    demo_thread = threading.Thread(target=_demo, args=(settings, demo_stop), daemon=True)
    if demo:
        demo_thread.start()

    async def stop_demo_first() -> None:
        """The demo's last traces still reach the collector before it stops."""
        await signalled.wait()
        demo_stop.set()
        if demo:
            await asyncio.to_thread(demo_thread.join, 15)
        shutdown.set()

    stopper = asyncio.ensure_future(stop_demo_first())
    print(
        f"trace-insights up: OTLP http://{settings.host}:{settings.otlp_http_port} "
        f"(gRPC {settings.host}:{settings.otlp_grpc_port}), API "
        f"http://{settings.host}:{settings.api_port}/docs — Ctrl-C stops",
        flush=True,
    )
    try:
        await serve_until(shutdown, collector.http, api, closing=context.closing)
    finally:
        await asyncio.to_thread(alerts.stop)
        stopper.cancel()
        demo_stop.set()
        await collector.stop()
        if pipeline.bus is not None:
            await asyncio.to_thread(_drain, pipeline.bus)
        halt.set()
        await asyncio.to_thread(worker.join, 30)
        pipeline.source.close()
        pipeline.publisher.close()
        store.close()
        engine.dispose()


def _pipeline(settings: Settings, engine: sa.Engine, store: AggregateStore) -> _Pipeline:
    if settings.kafka_bootstrap_servers:
        servers = settings.kafka_bootstrap_servers
        ensure_topic(servers.split(","), settings.spans_topic, settings.topic_partitions,
                     settings.topic_replication_factor)  # fmt: skip
        producer = KafkaSpanProducer(settings)
        producer.start()
        source = KafkaSource(servers, settings.spans_topic, settings.consumer_group,
                             settings.max_poll_records, settings.consumer_instance_id,
                             settings.consumer_session_timeout_ms)  # fmt: skip
        return _Pipeline(producer, source, KafkaPublisher(settings), None)
    with engine.connect() as connection:
        held = last_offsets(connection)
    for experiment in store.experiments():  # a persistent store may be ahead of the truth
        for partition, fence in store.fences(experiment).items():
            held[partition] = max(held.get(partition, -1), fence)
    bus = LocalBus(settings.topic_partitions, {p: offset + 1 for p, offset in held.items()})
    return _Pipeline(BusSpanProducer(bus), bus, BusPublisher(bus), bus)


def _drain(bus: LocalBus) -> None:
    deadline = time.monotonic() + _DRAIN_S
    while not bus.drained() and time.monotonic() < deadline:
        time.sleep(0.05)


def _demo(settings: Settings, halt: threading.Event) -> None:
    """A trickle of realistic agent traffic through the collector, until stopped."""
    endpoint = f"http://{settings.host}:{settings.otlp_http_port}"
    traffic = Traffic(seed=None)
    token = settings.auth_token.get_secret_value() if settings.auth_token else None
    while not halt.is_set():
        try:
            send(traffic, endpoint=endpoint, protocol="http", traces=10, rate=5.0,
                 experiment_id=DEMO_EXPERIMENT, token=token)  # fmt: skip
        except Exception as exc:  # the demo must never take the pipeline down
            log.warning("demo traffic failed", extra={"fields": {"error": str(exc)}})
            halt.wait(1.0)
